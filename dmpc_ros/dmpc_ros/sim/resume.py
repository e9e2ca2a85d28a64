"""What a respawned node resumes from (issue 28, crash and rejoin): the plant's step and trajectory, an agent's last
final plan, kept in a folder (`resume_dir`) every step.

Why files: DDS keeps a TRANSIENT_LOCAL topic's history in the writer, so a killed process's last states and plans
die with it; a later reader gets nothing from a dead writer. A respawn restarts the process on the same computer, so
a small file written atomically (a temporary file, then `os.replace`) each step is what survives a SIGKILL. Reading
refuses, by returning None with the reason, a file of another run's shape (the caller then starts cold).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..coordination.plan import Plan

PLANT_FILE = "plant.npz"


def agent_file(agent_id: int) -> str:
    return f"agent_{agent_id}.npz"


def _write(path: Path, **arrays) -> None:
    """np.savez into a temporary file beside `path`, then renamed over it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as stream:
        np.savez(stream, **arrays)
    os.replace(temporary, path)


def _read(path: Path) -> dict | None:
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError):
        return None


@dataclass(frozen=True)
class PlantCheckpoint:
    """The plant after `step` steps: states x(0..step), inputs u(0..step−1), the steady-clock times the states went
    out, and its counts per agent: late inputs and steps on the safe input."""

    step: int
    x: np.ndarray
    u: np.ndarray
    wall_time: np.ndarray
    late_by_agent: np.ndarray
    safe_steps: np.ndarray

    def save(self, folder: str | Path) -> None:
        _write(Path(folder) / PLANT_FILE, step=self.step, x=self.x[: self.step + 1], u=self.u[: self.step],
               wall_time=self.wall_time[: self.step + 1], late_by_agent=self.late_by_agent,
               safe_steps=self.safe_steps)

    @staticmethod
    def load(folder: str | Path, n_x: int, n_u: int, steps: int, agents: int) -> tuple["PlantCheckpoint | None", str]:
        """The checkpoint in `folder` for a plant of these sizes and this run's length, or (None, why not)."""
        data = _read(Path(folder) / PLANT_FILE)
        if data is None:
            return None, "no checkpoint"
        try:
            step = int(data["step"])
            x, u = np.asarray(data["x"], float), np.asarray(data["u"], float)
            ok = 0 <= step <= steps and x.shape == (step + 1, n_x) and u.shape == (step, n_u) and \
                data["late_by_agent"].shape == data["safe_steps"].shape == (agents,) and np.all(np.isfinite(x)) \
                and np.all(np.isfinite(u))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            return None, "the checkpoint is of another run (sizes or steps differ)"
        return PlantCheckpoint(step, x, u, np.asarray(data["wall_time"], float),
                               np.asarray(data["late_by_agent"], int), np.asarray(data["safe_steps"], int)), ""


def save_plan(folder: str | Path, plan: Plan) -> None:
    """An agent's plan (its final plan of a step), for the agent's next incarnation."""
    _write(Path(folder) / agent_file(plan.agent), agent=plan.agent, step=plan.step, iteration=plan.iteration,
           states=plan.states, inputs=plan.inputs, cost=plan.cost, feasible=plan.feasible, converged=plan.converged,
           final=plan.final)


def load_plan(folder: str | Path, agent: int, horizon: int, n_x: int, n_u: int) -> Plan | None:
    """Agent `agent`'s kept plan, if there is one of its sizes with finite values (else None: a cold start)."""
    data = _read(Path(folder) / agent_file(agent))
    if data is None:
        return None
    try:
        states, inputs = np.asarray(data["states"], float), np.asarray(data["inputs"], float)
        if int(data["agent"]) != agent or states.shape != (horizon + 1, n_x) or inputs.shape != (horizon, n_u) or \
                not (np.all(np.isfinite(states)) and np.all(np.isfinite(inputs))):
            return None
        return Plan(agent=agent, step=int(data["step"]), iteration=int(data["iteration"]), states=states,
                    inputs=inputs, cost=float(data["cost"]), feasible=bool(data["feasible"]),
                    converged=bool(data["converged"]), final=bool(data["final"]))
    except (KeyError, TypeError, ValueError):
        return None
