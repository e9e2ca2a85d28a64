"""The summary of a robot run (robot mode: no plant node, so no summary.json of its own), computed sans-IO from what
the run recorded: the bases' true trajectories (fake_robot's robot_<i>.npz: t [UNIX s], x, y, yaw, v, omega) and,
when a bag holds them, the agents' AgentStatus messages (deadline misses and watchdog stops per step).

The trajectories are sampled at the steps' times t_k = start_time + k Δt into the model's state (the robot base's
pose mapping), so the scenario's own metrics (minimum neighbour distance, formation error, ...) apply unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .scenarios import Scenario

ROBOT_SUMMARY = "robot_summary.json"


def fleet_trajectory(scenario: Scenario, trajectories: list[dict],
                     start_time: float) -> tuple[np.ndarray, np.ndarray]:
    """x ((T+1) × n_x) and u (T × n_u) of the fleet at t_k = start_time + k Δt, k ≤ T: each robot's pose
    interpolated (heading unwrapped first), its (v, ω) the last one commanded before t_k; T the steps the
    trajectories cover (at most the scenario's)."""
    base = scenario.family.robot_base(scenario)
    if base is None:
        raise ValueError(f"scenario {scenario.name}: its model has no robot base (no robot mode)")
    model, dt = scenario.model, scenario.sample_time
    end = min(float(np.max(r["t"])) for r in trajectories)
    T = int(min(scenario.steps, np.floor((end - start_time) / dt + 1e-4)))   # UNIX times: ~1e-7 s rounding
    if T < 1 or len(trajectories) != scenario.num_agents:
        raise ValueError(f"the trajectories ({len(trajectories)} robots) do not cover a step of scenario "
                         f"{scenario.name} ({scenario.num_agents} robots) from start time {start_time:.3f}")
    times = start_time + dt * np.arange(T + 1)
    x, u = np.zeros((T + 1, model.n_x)), np.zeros((T, model.n_u))
    for i, record in enumerate(trajectories):
        t = np.asarray(record["t"], float)
        yaw = np.interp(times, t, np.unwrap(np.asarray(record["yaw"], float)))
        px, py = np.interp(times, t, record["x"]), np.interp(times, t, record["y"])
        states = model.state_slice(i)
        for k in range(T + 1):
            x[k, states] = base.state(states.stop - states.start, px[k], py[k], yaw[k])
        held = np.clip(np.searchsorted(t, times[:-1], side="right") - 1, 0, t.size - 1)
        inputs = model.input_slice(i)
        u[:, inputs.start + base.speed] = np.asarray(record["v"], float)[held]
        u[:, inputs.start + base.turn_rate] = np.asarray(record["omega"], float)[held]
    return x, u


def robot_summary(scenario: Scenario, trajectories: list[dict], start_time: float,
                  statuses: Iterable | None = None) -> dict:
    """The figures of a robot run: steps covered, the closest any two robots came (over the whole recording, not
    just at the steps), the scenario's metrics at the steps (formation error, neighbour distance, its required
    limit), and, given the agents' statuses, the deadline misses and watchdog stops summed (None without)."""
    x, u = fleet_trajectory(scenario, trajectories, start_time)
    times = np.asarray(trajectories[0]["t"], float)
    positions = np.stack([np.column_stack([np.interp(times, r["t"], r["x"]), np.interp(times, r["t"], r["y"])])
                          for r in trajectories], axis=1)
    M = positions.shape[1]
    closest = min(float(np.min(np.linalg.norm(positions[:, i] - positions[:, j], axis=1)))
                  for i in range(M) for j in range(i + 1, M))
    found = list(statuses) if statuses is not None else None
    return {
        "scenario": scenario.name, "steps": int(u.shape[0]), "start_time": start_time,
        "min_distance_any_pair": closest,
        "scenario_metrics": scenario.metrics(x, u),
        "deadline_misses": None if found is None else int(sum(s.deadline_misses for s in found)),
        "watchdog_stops": None if found is None else int(sum(s.watchdog_stops for s in found)),
    }
