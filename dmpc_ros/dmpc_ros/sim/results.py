"""The tidy result of a closed-loop run: arrays per step, summary metrics, npz/CSV/JSON/PNG output."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..coordination.consensus import CONSENSUS_ITERATIONS
from ..coordination.negotiator import OUTAGE_COUNTER
from ..coordination.scheme import scheme_of

STRICT_EXIT = 3   # exit code of a run that strict mode ended at a step without a solution (dmpc sim and run)
COUNTER_PREFIX = "counter_"   # trajectory.npz: the scheme's counters, one array per name
# per-step values whose sum means nothing: a margin (its worst is in failures()) and the longest neighbour silence
# (coordination/negotiator.OUTAGE_COUNTER; its maximum is summary.json's longest_plan_outage)
NOT_SUMMED = frozenset({"fallback_state_margin", OUTAGE_COUNTER, CONSENSUS_ITERATIONS})
GAP_TOLERANCE = 1e-6   # |relative cost gap| below which the gap is 0 within the solvers' accuracy (no note)


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
    refused_inputs: int = 0                                 # inputs the plant refused: outside U_i (plant_inputs)
    plant_inputs: dict = field(default_factory=dict)        # the plant's guard: PlantInputs.counts() (per agent)
    messages_missing: int = 0                               # plans substituted after a deadline (ROS runs)
    messages_late: int = 0       # … arrived after all, or used from an earlier iteration (AgentStatus.messages_late)
    nominal_x: np.ndarray | None = None                     # T × n_x: tube mode's nominal states x̄(k)
    # per step and controller (each agent; the centralized controller is one): what went wrong (base.StepStatistics)
    infeasible: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), int))       # local problems infeasible
    solver_failures: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), int))  # other failed solves
    fallbacks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), int))        # fallbacks of any kind
    fallback_input: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))  # applied input not solved
    reference_failed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))     # T: centralized solve failed
    counters: dict = field(default_factory=dict)   # the scheme's counters by name: T × controllers (StepStatistics)
    # per step and controller: stopped at the iteration limit without meeting the tolerance, and the scheme's
    # convergence measure left at the last iteration (StepStatistics.capped, .residual)
    capped: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    residual: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    iteration_limit: int = 0                                # controller.max_iterations of the run (0: unknown)
    tolerance: float | None = None                          # controller.tolerance of the run
    stopped: str = ""                                       # why the run ended early (strict mode, a node died)
    bag_missing_steps: dict = field(default_factory=dict)   # ROS runs: topic → steps run.mcap lacks (bag.gap_summary)
    respawns: dict = field(default_factory=dict)   # ROS runs with a respawn policy: process → times started again
    # ROS runs with authentication: {"plans_refused": {reason: n}, "inputs_refused": {reason: n}} (auth.REASONS)
    authentication: dict | None = None

    @staticmethod
    def empty(algorithm: str, T: int, N: int, n: int, m: int, controllers: int, max_iterations: int,
              sample_time: float) -> "SimulationResult":
        nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
        counts = lambda: np.zeros((T, controllers), int)  # noqa: E731
        return SimulationResult(
            algorithm, sample_time, nan(T + 1, n), nan(T, m), nan(T, N + 1, n), nan(T, N, m), nan(T),
            np.zeros(T, int), nan(T, max_iterations + 1), nan(T), nan(T), nan(T), nan(T), np.zeros(T + 1),
            np.zeros(T, int), np.zeros(T, int), [None] * T, [None] * T, infeasible=counts(),
            solver_failures=counts(), fallbacks=counts(), fallback_input=np.zeros((T, controllers), bool),
            reference_failed=np.zeros(T, bool), capped=np.zeros((T, controllers), bool),
            residual=np.zeros((T, controllers)), iteration_limit=max_iterations,
        )

    def record_failures(self, k: int, statistics: list) -> None:
        """Step k's failure counts from each controller's StepStatistics (after it chose its input)."""
        for c, stats in enumerate(statistics):
            self.infeasible[k, c], self.solver_failures[k, c] = stats.infeasible, stats.solver_failures
            self.fallbacks[k, c], self.fallback_input[k, c] = stats.fallbacks, stats.fallback_input
            self.capped[k, c], self.residual[k, c] = stats.capped, stats.residual
            for name, value in stats.counters.items():
                self.counter(name)[k, c] = value

    def longest_outage(self) -> int | None:
        """The most steps in a row any agent went without a plan from one of its neighbours (None: not recorded)."""
        values = self.counters.get(OUTAGE_COUNTER)
        return None if values is None or values.size == 0 else int(np.max(values))

    def counter(self, name: str) -> np.ndarray:
        """The per-step, per-controller values of one of the scheme's counters (zeros until reported)."""
        if name not in self.counters:
            self.counters[name] = np.zeros(self.infeasible.shape)
        return self.counters[name]

    def counter_totals(self) -> dict[str, float]:
        """Every counter of the run's scheme (those it declares, and any reported) summed over steps and agents."""
        try:
            declared = list(scheme_of(self.algorithm).counters)
        except ValueError:   # a scheme this process does not know (a result loaded from elsewhere)
            declared = []
        names = declared + [name for name in self.counters if name not in declared]
        totals = {}
        for name in names:
            if name in NOT_SUMMED:
                continue
            total = float(self.counters[name].sum()) if name in self.counters else 0.0
            totals[name] = int(total) if total.is_integer() else total
        return totals

    def step_failed(self, k: int) -> bool:
        """A controller applied a fallback input at step k because its problem was infeasible or its solver failed."""
        return bool(np.any(self.fallback_input[k] & (self.infeasible[k] + self.solver_failures[k] > 0)))

    def failure_text(self, k: int) -> str:
        """What failed at step k, e.g. "3 infeasible local problems, 1 solver failure (agents 0, 2)"."""
        parts = [f"{int(total)} {name}{'s' if total != 1 else ''}" for total, name in
                 ((self.infeasible[k].sum(), "infeasible local problem"),
                  (self.solver_failures[k].sum(), "solver failure")) if total]
        who = np.flatnonzero(self.infeasible[k] + self.solver_failures[k])
        return f"{', '.join(parts) or 'no failure'} (controllers {', '.join(map(str, who))})"

    def truncated(self, steps: int, reason: str) -> "SimulationResult":
        """The first `steps` steps only (a run that ended early), marked with the reason."""
        T = self.steps
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and value.ndim and value.shape[0] in (T, T + 1):
                setattr(self, name, value[: steps + (value.shape[0] - T)])
            elif isinstance(value, list) and len(value) == T:
                setattr(self, name, value[:steps])
        self.counters = {name: values[:steps] for name, values in self.counters.items()}
        self.stopped = reason
        return self

    def failures(self) -> dict:
        """The summary's failure counts (summary.json "failures")."""
        failed = [k for k in range(self.steps) if self.step_failed(k)]
        on_fallback = np.flatnonzero(np.any(self.fallback_input, axis=1)) if self.fallback_input.size else []
        return {
            "infeasible_problems": int(self.infeasible.sum()),
            "solver_failures": int(self.solver_failures.sum()),
            "fallbacks": int(self.fallbacks.sum()),
            "fallback_inputs": int(self.fallback_input.sum()),
            "steps_on_fallback_input": int(len(on_fallback)),
            "failed_steps": len(failed),
            "first_failed_step": failed[0] if failed else None,
            "safety_inputs": int(self.counters["safety_inputs"].sum()) if "safety_inputs" in self.counters else 0,
            "worst_fallback_state_margin": self.worst_fallback_margin(),
            "reference_failures": int(self.reference_failed.sum()),
            "first_reference_failure": int(np.argmax(self.reference_failed)) if self.reference_failed.any() else None,
            "at_step_0": self.step_0_failures(),
        }

    def step_0_failures(self) -> dict:
        """Step 0's share of the failure counts: its warm start (no earlier plan to shift) is often infeasible and
        repaired; `repaired` says every controller applied a solved input there, so nothing failed in the loop."""
        first = slice(0, 1)
        return {"infeasible_problems": int(self.infeasible[first].sum()),
                "solver_failures": int(self.solver_failures[first].sum()),
                "fallbacks": int(self.fallbacks[first].sum()),
                "repaired": bool(self.steps and not np.any(self.fallback_input[first]))}

    def negotiation_iterations(self) -> tuple[np.ndarray, np.ndarray]:
        """Per step the negotiation iterations (the recorded ones less those the step spent agreeing on a centre
        before its negotiation: coordination/consensus.CONSENSUS_ITERATIONS) and those (zeros without consensus)."""
        rounds = self.counters.get(CONSENSUS_ITERATIONS)
        rounds = np.zeros(self.steps, int) if rounds is None or rounds.size == 0 else \
            np.max(rounds, axis=1).astype(int)
        return np.maximum(self.iterations - rounds, 0), rounds

    def iteration_cap(self) -> dict:
        """The summary's account of steps that stopped at the iteration limit without meeting the tolerance
        (summary.json "iteration_limit"): how many steps (any controller capped) and agent-steps, the first such
        step, and the largest residual left at the limit (on the tolerance's scale)."""
        steps = np.flatnonzero(np.any(self.capped, axis=1)) if self.capped.size else np.zeros(0, int)
        left = self.residual[self.capped] if self.capped.size else np.zeros(0)
        return {
            "max_iterations": self.iteration_limit or None,
            "tolerance": self.tolerance,
            "capped_steps": int(steps.size),
            "capped_agent_steps": int(self.capped.sum()),
            "first_capped_step": int(steps[0]) if steps.size else None,
            "max_residual": float(np.max(left)) if left.size else None,
        }

    def cap_text(self) -> str | None:
        """One line on steps that stopped at the iteration limit, e.g. "capped steps 37 of 200 (max residual 3e-03
        at limit 10, tolerance 1e-06) — raise controller.max_iterations"; None when no step did."""
        cap = self.iteration_cap()
        if not cap["capped_steps"]:
            return None
        return cap_line(cap["capped_steps"], self.steps, cap["max_residual"], cap["max_iterations"], cap["tolerance"],
                        cap["first_capped_step"])

    def worst_fallback_margin(self) -> float | None:
        """The smallest margin in X_i of x_i(k+1) predicted for an applied fallback input (negative: outside) over
        the run, from the guard's counters (coordination/base.SAFETY_COUNTERS); None if no fallback was checked."""
        checked = self.counters.get("checked_fallbacks")
        if checked is None or not np.any(checked > 0):
            return None
        return float(np.min(self.counters["fallback_state_margin"][checked > 0]))

    def warning(self) -> str | None:
        """One line for the end of a run when something failed (None when nothing did)."""
        f = self.failures()
        capped = self.cap_text()
        if not f["failed_steps"] and not f["steps_on_fallback_input"] and not f["reference_failures"]:
            return capped
        parts = [capped] if capped else []
        if f["failed_steps"]:
            parts.append(f"{f['failed_steps']} of {self.steps} steps applied a fallback input for want of a solution "
                         f"(first at step {f['first_failed_step']}; {f['infeasible_problems']} infeasible local "
                         f"problems, {f['solver_failures']} solver failures)")
        elif f["steps_on_fallback_input"]:
            parts.append(f"{f['steps_on_fallback_input']} of {self.steps} steps applied a fallback input "
                         f"({f['fallbacks']} fallbacks)")
        if f["reference_failures"]:
            parts.append(f"the centralized optimum at the visited states (input error) had no solution at "
                         f"{f['reference_failures']} steps (first at step {f['first_reference_failure']})")
        return "; ".join(parts) + "; see \"failures\" in summary.json"

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

    def summary(self, scenario: str, reference: "SimulationResult | None") -> dict:
        """The summary.json mapping; the cost gap against `reference` (a centralized run), explained when it is
        missing or negative (explain_gap)."""
        times = self.solve_time_samples()
        reference_cost = reference.closed_loop_cost if reference is not None else None
        gap = (self.closed_loop_cost - reference_cost) / abs(reference_cost) if reference_cost else None
        note = explain_gap(self, reference, gap)
        if note is not None and note.startswith("not computed"):
            gap = None
        return {
            "scenario": scenario,
            "algorithm": self.algorithm,
            "steps": self.steps,
            "sample_time": self.sample_time,
            "closed_loop_cost": self.closed_loop_cost,
            "reference_cost": reference_cost,
            "closed_loop_cost_gap": gap,
            "cost_gap_note": note,
            "max_constraint_violation": float(np.max(self.violation)),
            "iterations": self.iteration_summary(),
            "solve_time": {"median": float(np.median(times)) if times.size else None,
                           "p95": float(np.percentile(times, 95)) if times.size else None},
            "messages_per_step": float(np.mean(self.messages)),
            "bytes_per_step": float(np.mean(self.bytes)),
            "max_input_error": None if np.all(np.isnan(self.input_error)) else float(np.nanmax(self.input_error)),
            "communication": {str(k): v for k, v in self.communication.items()},
            "late_inputs": self.late_inputs,
            "refused_inputs": self.refused_inputs,
            "plant_inputs": self.plant_inputs or None,
            "messages_missing": self.messages_missing,
            "messages_late": self.messages_late,
            "longest_plan_outage": self.longest_outage(),
            "failures": self.failures(),
            "iteration_limit": self.iteration_cap(),
            "counters": self.counter_totals(),
            "bag_missing_steps": self.bag_missing_steps,
            "respawns": self.respawns,
            **({"authentication": self.authentication} if self.authentication is not None else {}),
            "complete": not self.stopped,
            "stopped": self.stopped or None,
        }

    def iteration_summary(self) -> dict:
        """summary.json "iterations": negotiation iterations per step (mean, max; what controller.max_iterations
        limits), and the consensus iterations apart when the scheme ran any (formation centre consensus)."""
        negotiation, rounds = self.negotiation_iterations()
        summary = {"mean": float(np.mean(negotiation)) if negotiation.size else 0.0,
                   "max": int(np.max(negotiation)) if negotiation.size else 0}
        if np.any(rounds):
            summary["consensus_iterations"] = int(rounds.sum())
        return summary

    def save(self, directory: Path, summary: dict, reference_stage_cost: np.ndarray | None = None) -> None:
        """summary.json, trajectory.npz (t, x, u + per-step records, and the centralized reference run's stage
        cost for the report), trajectory.csv."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        extra = {} if reference_stage_cost is None else {"reference_stage_cost": reference_stage_cost}
        extra.update({COUNTER_PREFIX + name: values for name, values in self.counters.items()})
        if self.nominal_x is not None:
            extra["nominal_x"] = self.nominal_x
        np.savez_compressed(
            directory / "trajectory.npz", **extra, t=self.t, x=self.x, u=self.u, plan_states=self.plan_states,
            plan_inputs=self.plan_inputs, iterations=self.iterations, cost_per_iteration=self.cost_per_iteration,
            centralized_cost=self.centralized_cost, input_error=self.input_error, stage_cost=self.stage_cost,
            violation=self.violation, messages=self.messages, bytes=self.bytes, infeasible=self.infeasible,
            solver_failures=self.solver_failures, fallbacks=self.fallbacks, fallback_input=self.fallback_input,
            reference_failed=self.reference_failed, capped=self.capped, residual=self.residual,
        )
        with (directory / "trajectory.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["t"] + [f"x{i}" for i in range(self.x.shape[1])]
                            + [f"u{i}" for i in range(self.u.shape[1])])
            for k in range(self.steps + 1):
                u = self.u[k] if k < self.steps else np.full(self.u.shape[1], np.nan)
                writer.writerow([f"{self.t[k]:.6g}"] + [f"{v:.10g}" for v in self.x[k]] + [f"{v:.10g}" for v in u])


SAVED = ("x", "u", "plan_states", "plan_inputs", "iterations", "cost_per_iteration", "centralized_cost", "input_error",
         "stage_cost", "violation", "messages", "bytes", "infeasible", "solver_failures", "fallbacks", "fallback_input",
         "reference_failed")


def load_result(directory: Path) -> tuple[SimulationResult, np.ndarray | None]:
    """The result an output folder holds (what SimulationResult.save wrote) and the reference run's stage cost."""
    summary = json.loads((directory / "summary.json").read_text())
    data = np.load(directory / "trajectory.npz")
    T = data["u"].shape[0]
    result = SimulationResult.empty(summary["algorithm"], T, data["plan_inputs"].shape[1], data["x"].shape[1],
                                    data["u"].shape[1], data["infeasible"].shape[1],
                                    data["cost_per_iteration"].shape[1] - 1, float(summary["sample_time"]))
    for name in SAVED:
        setattr(result, name, data[name])
    for name in ("capped", "residual"):   # absent in folders written before the iteration cap was recorded
        if name in data:
            setattr(result, name, data[name])
    cap = summary.get("iteration_limit") or {}
    result.iteration_limit, result.tolerance = cap.get("max_iterations") or 0, cap.get("tolerance")
    result.nominal_x = data["nominal_x"] if "nominal_x" in data else None
    result.counters = {key[len(COUNTER_PREFIX):]: data[key] for key in data.files if key.startswith(COUNTER_PREFIX)}
    result.stopped = summary.get("stopped") or ""
    return result, (data["reference_stage_cost"] if "reference_stage_cost" in data else None)


def cap_line(capped: int, steps: int, residual: float, limit: int | None, tolerance: float | None,
             first: int) -> str:
    """The console's line on steps that stopped at the iteration limit without meeting the tolerance (dmpc sim's
    warning, the ROS agent node's end-of-run log)."""
    at = f" at limit {limit}" if limit else ""
    tol = f", tolerance {tolerance:.0e}" if tolerance is not None else ""
    return (f"capped steps {capped} of {steps} (max residual {residual:.1e}{at}{tol}, first at step {first}) — raise "
            f"controller.max_iterations")


class CapRecord:
    """The steps of one agent that stopped at the iteration limit without meeting the tolerance: a warning at the
    first, a line at the end of the run (the ROS agent node's log; every one is in AgentStatus.capped)."""

    def __init__(self, limit: int, tolerance: float) -> None:
        self.limit, self.tolerance = limit, tolerance
        self.steps: list[tuple[int, float]] = []   # (step, residual)

    def note(self, step: int, statistics) -> str | None:
        """The warning for the run's first capped step, else None."""
        if not statistics.capped:
            return None
        self.steps.append((step, statistics.residual))
        return None if len(self.steps) > 1 else (
            f"step {step} stopped at the iteration limit {self.limit} with residual {statistics.residual:.1e} "
            f"(tolerance {self.tolerance:.0e}): raise controller.max_iterations; further capped steps are counted in "
            "AgentStatus.capped and at the end of the run")

    def end_line(self, steps: int) -> str | None:
        """cap_line over `steps` steps, or None when no step was capped."""
        return cap_line(len(self.steps), steps, max(r for _, r in self.steps), self.limit, self.tolerance,
                        self.steps[0][0]) if self.steps else None


def explain_gap(result: SimulationResult, reference: SimulationResult | None, gap: float | None) -> str | None:
    """Why the cost gap is not a number, or why it is negative (the distributed run cheaper than the reference)."""
    if reference is None:
        return None
    failed = reference.failures()
    if failed["failed_steps"]:
        return (f"not computed: the centralized reference had no solution at {failed['failed_steps']} steps (first at "
                f"step {failed['first_failed_step']}), so its cost is no optimum")
    if reference.stopped or result.stopped:
        return f"not computed: {'the reference' if reference.stopped else 'this run'} ended early"
    if gap is None or gap > -GAP_TOLERANCE:   # a tiny negative gap is 0 within the solvers' accuracy
        return None
    reasons = []
    mine = result.failures()
    if mine["failed_steps"]:
        reasons.append(f"this run applied fallback inputs at {mine['failed_steps']} steps")
    violation, theirs = float(np.max(result.violation)), float(np.max(reference.violation))
    if violation > theirs + 1e-6:
        reasons.append(f"it violated constraints by up to {violation:.3g} (the reference by {theirs:.3g})")
    if not reasons:
        reasons.append("centralized MPC is optimal over each horizon, not over the closed loop, so another sequence "
                       "of plans can cost less in closed loop")
    return "negative: " + "; ".join(reasons)
