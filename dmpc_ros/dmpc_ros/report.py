"""`dmpc plot RUN_DIR_OR_BAG`: the standard report (the PNGs `dmpc sim` and `dmpc run` write) from an output
folder (summary.json + trajectory.npz) or from a run's MCAP bag alone (states, inputs and statuses as recorded,
the scenario named in the bag's `dmpc_ros` metadata or the scenario.yaml beside it)."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bag import (RANGES_SHOWN, STEP_TOPICS, BagContents, decoded_messages, gap_lines, missing_steps, read_bag,
                  repair_bag, step_ranges)
from .progress import phase
from .scenarios import Scenario
from .scenarios.source import load_source
from .sim.results import SimulationResult, load_result

BAG_METADATA = "dmpc_ros"   # MCAP metadata record the run recorder writes: scenario source, overrides


def result_from_records(scenario: Scenario, x: np.ndarray, u: np.ndarray, statuses: list) -> SimulationResult:
    """The result object `dmpc sim` produces, from a run's plant trajectory (x: T+1 × n, u: T × m) and the
    agents' AgentStatus messages (rclpy or decoded-bag objects: only their fields are read)."""
    with phase("the run's records"):   # the design's set-up again, after the run: named so
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
    result.messages_late = int(sum(s.messages_late for s in statuses))
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


def plot_note(line: str) -> None:
    """A note of `dmpc plot` on standard error."""
    print(f"dmpc plot: {line}", file=sys.stderr, flush=True)


@dataclass
class RunBag:
    """What a run bag holds of the plant and the agents: per step and agent the first state and input recorded, the
    statuses, the steps each state/input/status topic has, and the bag's records (torn or not)."""

    states: dict[int, dict[int, np.ndarray]]
    inputs: dict[int, dict[int, np.ndarray]]
    statuses: list
    steps: dict[str, set[int]]
    contents: BagContents

    @property
    def gaps(self) -> dict[str, tuple[list[int], int]]:
        """Per topic the steps it misses (bag.missing_steps)."""
        return missing_steps(self.steps)


def read_run_bag(bag: Path) -> RunBag:
    """States (SubsystemState), inputs (ControlInput) and statuses of a run bag, read in streaming mode, so a torn
    bag gives what its complete records hold (bag.read_bag; NotABag, a ValueError, for another kind of file)."""
    contents = read_bag(bag)
    states: dict[int, dict[int, np.ndarray]] = {}
    inputs: dict[int, dict[int, np.ndarray]] = {}
    statuses, steps = [], {}
    for topic, message in decoded_messages(contents, tuple(STEP_TOPICS)):
        steps.setdefault(topic, set()).add(message.step)
        leaf = topic.rsplit("/", 1)[-1]
        if leaf == "state":
            states.setdefault(message.step, {}).setdefault(message.agent_id, np.asarray(message.state, float))
        elif leaf == "control":
            inputs.setdefault(message.step, {}).setdefault(message.agent_id, np.asarray(message.input, float))
        else:
            statuses.append(message)
    return RunBag(states, inputs, statuses, steps, contents)


def plant_trajectory(scenario: Scenario, states: dict, inputs: dict) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The plant's x (T+1 × n) and u (T × m) from recorded states and inputs (step → agent → vector): T is
    the last step with a recorded state such that every earlier step has every agent's input. A state the record
    lacks is recomputed from the step before with the scenario's plant model and its (deterministic) disturbances,
    exactly as the plant node computed it; x(0) defaults to the initial state. Returns x, u and the recomputed
    steps."""
    plant, disturbance = scenario.plant(), scenario.plant_disturbance()
    M = scenario.num_agents
    last = max((k for k, found in states.items() if found), default=-1)
    T = 0
    while T < min(last, scenario.steps) and len(inputs.get(T, {})) == M:
        T += 1
    x = np.zeros((T + 1, plant.n_x))
    u = np.array([np.concatenate([inputs[k][i] for i in range(M)]) for k in range(T)]).reshape(T, plant.n_u)
    recomputed = []
    for k in range(T + 1):
        x[k] = scenario.initial_state if k == 0 else disturbance.step(plant, x[k - 1], u[k - 1], k - 1)
        found = states.get(k, {})
        for i, value in found.items():
            if 0 <= i < M and value.size == plant.state_slice(i).stop - plant.state_slice(i).start:
                x[k, plant.state_slice(i)] = value
        if len(found) < M:
            recomputed.append(k)
    return x, u, recomputed


def bag_notes(bag: Path, run: RunBag, repaired: Path | None = None) -> list[str]:
    """The lines `dmpc plot` (and `dmpc run`) say about a bag: torn and where its repaired copy is, and the steps
    each topic misses."""
    notes = []
    if not run.contents.complete:
        notes.append(run.contents.torn_text(bag) + (f"; a repaired copy is in {repaired}" if repaired else
                                                    f"; repair it with `dmpc bag repair {bag}`"))
    return notes + gap_lines(run.gaps)


def result_from_bag(bag: Path, say: Callable[[str], None] | None = None) -> tuple[SimulationResult, Scenario]:
    """The result of a run bag (a torn one too: then a repaired copy is written beside it): the plant's trajectory
    (plant_trajectory) and the statuses. `say` gets one line each on a torn bag, the steps a topic misses, the states
    recomputed and a trajectory cut short by a missing input."""
    say = say or plot_note
    run = read_run_bag(bag)
    repaired = None
    if not run.contents.complete:
        repaired = bag.with_name(bag.stem + ".repaired.mcap")
        try:
            repair_bag(bag, repaired)
        except OSError:   # a read-only folder: say how to repair it elsewhere instead
            repaired = None
    for line in bag_notes(bag, run, repaired):
        say(line)
    scenario = scenario_of_bag(bag, run.contents.metadata.get(BAG_METADATA, {}))
    x, u, recomputed = plant_trajectory(scenario, run.states, run.inputs)
    T = u.shape[0]
    if T == 0:
        raise ValueError(f"{bag}: has no complete step (every agent's input, and a state after it)")
    if recomputed:
        say(f"states of steps {step_ranges(recomputed, RANGES_SHOWN)} recomputed with the plant model from the step "
            "before")
    last = max(k for k, found in run.states.items() if found)
    if T < min(last, scenario.steps):
        say(f"drawing steps 0-{T} of the 0-{last} recorded: step {T} lacks an agent's input")
    return result_from_records(scenario.with_overrides(steps=T), x, u, run.statuses), scenario


def plot_report(result: SimulationResult, scenario: Scenario, output: Path,
                reference_stage_cost: np.ndarray | None = None) -> list[Path]:
    """The report's PNGs: states and inputs, convergence, the tubes (robust mode), the per-agent counter traces
    (sim/plot_counters.py: a scheme's control horizons) and the family's own plots."""
    from .sim.plot_counters import plot_counter_traces
    from .sim.plots import plot_disturbances, plot_result, plot_tubes

    reference = scenario.reference_trajectory(scenario.prediction_model())   # every family's setpoints or path
    plots = plot_result(result, scenario.plant(), output, scenario.name, reference_stage_cost, reference)
    plots += plot_counter_traces(result, output, scenario.name, [sub.name for sub in scenario.plant().subsystems])
    if scenario.tubes is not None and result.nominal_x is not None:
        plots.append(plot_tubes(result, scenario.plant(), scenario.tubes, output, scenario.name))
    if scenario.scripted_disturbances:
        plots.append(plot_disturbances(result, scenario, output))
    return plots + scenario.family.plots(scenario, result, output)


def render(target: Path, output: Path | None = None, say: Callable[[str], None] | None = None) -> list[Path]:
    """The report's PNGs for an output folder or a bag, written to `output` (default: the folder, or the bag's);
    `say` gets the notes on a bag (result_from_bag; default: stderr, "dmpc plot: " first)."""
    if target.is_dir() and (target / "trajectory.npz").is_file():
        result, reference_stage_cost = load_result(target)
        summary = json.loads((target / "summary.json").read_text())
        source = run_source(summary.get("source") or summary["scenario"], target)
        scenario = load_source(source).with_overrides(steps=result.steps)
        return plot_report(result, scenario, output or target, reference_stage_cost)
    bag = target / "run.mcap" if target.is_dir() else target
    if not bag.is_file():
        raise ValueError(f"{target}: is neither an output folder (summary.json, trajectory.npz) nor a run bag (.mcap)")
    result, scenario = result_from_bag(bag, say)
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


def render_robots(folder: Path, source: str, start_time: float, output: Path | None = None) -> tuple[list[Path], dict]:
    """A robot run's report from the bases' trajectories in `folder` (robot_<i>.npz, fake_robot's `output:=`) and
    the agents' statuses of a run.mcap beside them, if any: robot_summary.json (fleet_summary.robot_summary) and
    the report's PNGs of the fleet sampled at the steps (states and inputs, setpoints, paths)."""
    from .fleet_summary import ROBOT_SUMMARY, fleet_trajectory, robot_summary

    scenario = load_source(source)
    trajectories = [dict(np.load(folder / f"robot_{i}.npz")) for i in range(scenario.num_agents)
                    if (folder / f"robot_{i}.npz").is_file()]
    statuses = read_run_bag(folder / "run.mcap").statuses if (folder / "run.mcap").is_file() else None
    summary = robot_summary(scenario, trajectories, start_time, statuses)
    summary["source"] = source
    output = output or folder
    output.mkdir(parents=True, exist_ok=True)
    (output / ROBOT_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    x, u = fleet_trajectory(scenario, trajectories, start_time)
    scenario = scenario.with_overrides(steps=u.shape[0])
    return plot_report(result_from_records(scenario, x, u, statuses or []), scenario, output), summary
