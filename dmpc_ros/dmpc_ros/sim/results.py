"""The tidy result of a closed-loop run: arrays per step, summary metrics, npz/CSV/JSON/PNG output."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SimulationResult:
    algorithm: str
    sample_time: float
    x: np.ndarray                  # (T+1) × n_x, agents stacked in order
    u: np.ndarray                  # T × n_u
    plan_states: np.ndarray        # T × (N+1) × n_x: the plan applied at each step
    plan_inputs: np.ndarray        # T × N × n_u
    plan_cost: np.ndarray          # T: plant-wide cost of the applied plan
    iterations: np.ndarray         # T
    cost_per_iteration: np.ndarray  # T × (P+1): plant-wide cost of the assembled plans after iteration p
    centralized_cost: np.ndarray   # T: optimal cost at the same state (NaN if not computed)
    centralized_solve_time: np.ndarray  # T [s]
    input_error: np.ndarray        # T: ‖U − U*‖ / ‖U*‖ versus the centralized optimum (NaN if not computed)
    stage_cost: np.ndarray         # T: ℓ(x(k), u(k)) of the real closed loop
    violation: np.ndarray          # T+1: largest constraint violation at step k [constraint units]
    messages: np.ndarray           # T: plans sent per step (one per receiving agent)
    bytes: np.ndarray              # T
    agent_solve_times: list = field(default_factory=list)  # [k][agent] → list of solve times [s]
    agent_call_times: list = field(default_factory=list)   # [k][agent] → whole calls (begin_step, iterates) [s]
    communication: dict = field(default_factory=dict)      # agent → agents whose plans it uses
    late_inputs: int = 0                                    # inputs that missed their step (ROS runs)
    messages_missing: int = 0                               # plans substituted after a deadline (ROS runs)
    nominal_x: np.ndarray | None = None                     # T × n_x: tube mode's nominal states x̄(k)

    @staticmethod
    def empty(algorithm: str, T: int, N: int, n: int, m: int, agents: int, max_iterations: int,
              sample_time: float) -> "SimulationResult":
        nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
        return SimulationResult(
            algorithm, sample_time, nan(T + 1, n), nan(T, m), nan(T, N + 1, n), nan(T, N, m), nan(T),
            np.zeros(T, int), nan(T, max_iterations + 1), nan(T), nan(T), nan(T), nan(T), np.zeros(T + 1),
            np.zeros(T, int), np.zeros(T, int), [None] * T, [None] * T,
        )

    @property
    def steps(self) -> int:
        return self.u.shape[0]

    @property
    def t(self) -> np.ndarray:
        return np.arange(self.steps + 1) * self.sample_time

    @property
    def closed_loop_cost(self) -> float:
        return float(np.sum(self.stage_cost))

    def solve_time_samples(self) -> np.ndarray:
        return np.array([s for step in self.agent_solve_times if step for agent in step for s in agent])

    def summary(self, scenario: str, reference_cost: float | None) -> dict:
        times = self.solve_time_samples()
        gap = (self.closed_loop_cost - reference_cost) / abs(reference_cost) if reference_cost else None
        return {
            "scenario": scenario,
            "algorithm": self.algorithm,
            "steps": self.steps,
            "sample_time": self.sample_time,
            "closed_loop_cost": self.closed_loop_cost,
            "reference_cost": reference_cost,
            "closed_loop_cost_gap": gap,
            "max_constraint_violation": float(np.max(self.violation)),
            "iterations": {"mean": float(np.mean(self.iterations)), "max": int(np.max(self.iterations))},
            "solve_time": {"median": float(np.median(times)) if times.size else None,
                           "p95": float(np.percentile(times, 95)) if times.size else None},
            "messages_per_step": float(np.mean(self.messages)),
            "bytes_per_step": float(np.mean(self.bytes)),
            "max_input_error": None if np.all(np.isnan(self.input_error)) else float(np.nanmax(self.input_error)),
            "communication": {str(k): v for k, v in self.communication.items()},
            "late_inputs": self.late_inputs,
            "messages_missing": self.messages_missing,
        }

    def save(self, directory: Path, summary: dict) -> None:
        """summary.json, trajectory.npz (t, x, u + per-step records), trajectory.csv."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        np.savez_compressed(
            directory / "trajectory.npz", t=self.t, x=self.x, u=self.u, plan_states=self.plan_states,
            plan_inputs=self.plan_inputs, iterations=self.iterations, cost_per_iteration=self.cost_per_iteration,
            centralized_cost=self.centralized_cost, input_error=self.input_error, stage_cost=self.stage_cost,
            violation=self.violation, messages=self.messages, bytes=self.bytes,
        )
        with (directory / "trajectory.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["t"] + [f"x{i}" for i in range(self.x.shape[1])]
                            + [f"u{i}" for i in range(self.u.shape[1])])
            for k in range(self.steps + 1):
                u = self.u[k] if k < self.steps else np.full(self.u.shape[1], np.nan)
                writer.writerow([f"{self.t[k]:.6g}"] + [f"{v:.10g}" for v in self.x[k]] + [f"{v:.10g}" for v in u])
