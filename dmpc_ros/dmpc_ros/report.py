"""`dmpc plot RUN_DIR_OR_BAG`: the standard report (the PNGs `dmpc sim` and `dmpc run` write) from an output
folder (summary.json + trajectory.npz) or from a run's MCAP bag alone (states, inputs and statuses as recorded,
the scenario named in the bag's `dmpc_ros` metadata or the scenario.yaml beside it)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .scenarios import Scenario
from .scenarios.source import load_source
from .sim.results import SimulationResult, load_result

BAG_METADATA = "dmpc_ros"   # MCAP metadata record the run recorder writes: scenario source, overrides


def result_from_records(scenario: Scenario, x: np.ndarray, u: np.ndarray, statuses: list) -> SimulationResult:
    """The result object `dmpc sim` produces, from a run's plant trajectory (x: T+1 × n, u: T × m) and the
    agents' AgentStatus messages (rclpy or decoded-bag objects: only their fields are read)."""
    design, plant = scenario.design(with_laws=False), scenario.plant()
    cost = design.cost()
    T, M = u.shape[0], scenario.num_agents
    result = SimulationResult.empty(scenario.controller.algorithm, T, design.horizon, plant.n_x, plant.n_u, M,
                                    scenario.controller.max_iterations, plant.sample_time)
    result.x[:], result.u[:] = x, u
    result.tolerance = scenario.controller.tolerance
    for k in range(T):
        result.stage_cost[k] = cost.stage(x[k], u[k], k)
        result.violation[k] = plant.constraint_violation(x[k], u[k])
    result.violation[T] = plant.constraint_violation(x[T])
    per_step: dict[int, list] = {}
    for status in statuses:
        if status.step < T:
            per_step.setdefault(status.step, []).append(status)
    for k in range(T):
        found = per_step.get(k, [])
        result.iterations[k] = max((s.iterations for s in found), default=0)
        result.agent_solve_times[k] = [[s.solve_time / max(s.iterations, 1)] for s in found] or None
        for s in found:
            if s.agent_id < M:
                result.infeasible[k, s.agent_id], result.solver_failures[k, s.agent_id] = (s.infeasible_problems,
                                                                                           s.solver_failures)
                result.fallbacks[k, s.agent_id] = s.fallbacks
                result.fallback_input[k, s.agent_id] = s.input_source != 0   # AgentStatus.INPUT_SOLVED
                result.capped[k, s.agent_id] = getattr(s, "capped", False)   # (bags recorded before it: absent)
                result.residual[k, s.agent_id] = getattr(s, "residual", 0.0)
                for name, value in zip(s.counter_names, s.counter_values):   # the scheme's own counters
                    result.counter(name)[k, s.agent_id] = value
    result.messages_missing = int(sum(s.messages_missing for s in statuses))
    return result


def run_source(source: str, folder: Path) -> str:
    """The source a run names, or the scenario.yaml `dmpc run` copied into its folder when that path has moved
    (a shipped name or a factory is kept)."""
    beside = folder / "scenario.yaml"
    moved = source.endswith((".yaml", ".yml")) and not Path(source).is_file()
    return str(beside) if beside.is_file() and (moved or not source) else source


def scenario_of_bag(bag: Path, metadata: dict) -> Scenario:
    """The run's scenario: the bag's metadata names its source (and overrides); a scenario.yaml beside the bag
    stands in for a source that has moved."""
    source = run_source(metadata.get("scenario", ""), bag.parent)
    if not source:
        raise ValueError(f"{bag}: names no scenario (no '{BAG_METADATA}' metadata, no scenario.yaml beside it)")
    overrides = json.loads(metadata.get("overrides", "{}"))
    return load_source(source).with_overrides(**overrides)


def result_from_bag(bag: Path) -> tuple[SimulationResult, Scenario]:
    """Plant states (SubsystemState), inputs (ControlInput) and statuses of a run bag, step by step: the steps
    with every agent's state and input and the state after it (all of a completed run: the plant also publishes
    the state after its last step)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with bag.open("rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        metadata = next((dict(m.metadata) for m in reader.iter_metadata() if m.name == BAG_METADATA), {})
        scenario = scenario_of_bag(bag, metadata)
        states: dict[int, dict[int, np.ndarray]] = {}
        inputs: dict[int, dict[int, np.ndarray]] = {}
        statuses = []
        for _, channel, _, message in reader.iter_decoded_messages():
            leaf = channel.topic.rsplit("/", 1)[-1]
            if leaf == "state":
                states.setdefault(message.step, {})[message.agent_id] = np.asarray(message.state, float)
            elif leaf == "control":
                inputs.setdefault(message.step, {}).setdefault(message.agent_id, np.asarray(message.input, float))
            elif leaf == "status":
                statuses.append(message)
    M = scenario.num_agents
    T = 0
    while len(states.get(T, {})) == M and len(inputs.get(T, {})) == M and len(states.get(T + 1, {})) == M:
        T += 1
    if T == 0:
        raise ValueError(f"{bag}: has no complete step (every agent's state and input, and the next state)")
    x = np.array([np.concatenate([states[k][i] for i in range(M)]) for k in range(T + 1)])
    u = np.array([np.concatenate([inputs[k][i] for i in range(M)]) for k in range(T)])
    return result_from_records(scenario.with_overrides(steps=T), x, u, statuses), scenario


def plot_report(result: SimulationResult, scenario: Scenario, output: Path,
                reference_stage_cost: np.ndarray | None = None) -> list[Path]:
    """The report's PNGs: states and inputs, convergence, the tubes (robust mode) and the family's own plots."""
    from .sim.plots import plot_disturbances, plot_result, plot_tubes

    plots = plot_result(result, scenario.plant(), output, scenario.name, reference_stage_cost)
    if scenario.tubes is not None and result.nominal_x is not None:
        plots.append(plot_tubes(result, scenario.plant(), scenario.tubes, output, scenario.name))
    if scenario.scripted_disturbances:
        plots.append(plot_disturbances(result, scenario, output))
    return plots + scenario.family.plots(scenario, result, output)


def render(target: Path, output: Path | None = None) -> list[Path]:
    """The report's PNGs for an output folder or a bag, written to `output` (default: the folder, or the bag's)."""
    if target.is_dir() and (target / "trajectory.npz").is_file():
        result, reference_stage_cost = load_result(target)
        summary = json.loads((target / "summary.json").read_text())
        source = run_source(summary.get("source") or summary["scenario"], target)
        scenario = load_source(source).with_overrides(steps=result.steps)
        return plot_report(result, scenario, output or target, reference_stage_cost)
    bag = target / "run.mcap" if target.is_dir() else target
    if not bag.is_file():
        raise ValueError(f"{target}: is neither an output folder (summary.json, trajectory.npz) nor a run bag (.mcap)")
    result, scenario = result_from_bag(bag)
    return plot_report(result, scenario, output or bag.parent)


def fleet_figures(scenario: Scenario, trajectories: list[dict], start_time: float) -> dict:
    """Figures of a robot run from the bases' true trajectories (fake_robot output: t [UNIX s], x, y, yaw):
    the worst distance between any two robots, the tracking error ‖p_i − p̄_i(t)‖ against the scenario's
    reference path (RMS over the run, and its largest value in the last second), on the first robot's clock."""
    model = scenario.model
    base = scenario.family.robot_base(scenario)
    times = np.asarray(trajectories[0]["t"])
    positions = np.stack([np.column_stack([np.interp(times, r["t"], r["x"]), np.interp(times, r["t"], r["y"])])
                          for r in trajectories], axis=1)                        # T × M × 2
    M = positions.shape[1]
    pairs = [(i, j) for i in range(M) for j in range(i + 1, M)]
    distances = np.array([np.linalg.norm(positions[:, i] - positions[:, j], axis=1) for i, j in pairs])
    running = (times >= start_time) & (times <= start_time + scenario.steps * scenario.sample_time)
    n_x = model.agents[0].n_x
    reference = np.array([model.reference_at(t - start_time)[0].reshape(M, n_x)[:, list(base.position)]
                          for t in times[running]])
    error = np.linalg.norm(positions[running] - reference, axis=2)
    last = times[running] >= times[running][-1] - 1.0
    return {"worst_distance": float(distances.min()), "rms_tracking_error": float(np.sqrt(np.mean(error ** 2))),
            "final_tracking_error": float(error[last].max())}
