"""The public Python API (re-exported by `import dmpc_ros`): build a coupled system in code or load a scenario,
simulate it under any scheme, compare with centralized MPC, save results and plots, run it over ROS 2.

    import dmpc_ros as dmpc
    system = dmpc.LinearNetwork([...agents...], sample_time=0.1, time="continuous")
    scenario = dmpc.scenario(system, controller={"algorithm": "jacobi", "horizon": 20},
                             simulation={"steps": 60, "initial_state": [[...], ...]})
    result = dmpc.simulate(scenario)                        # or dmpc.simulate(scenario, "admm")
    dmpc.save(result, scenario, "runs/mine", dmpc.reference(scenario))
    dmpc.run_ros("my_file.py:my_scenario", "runs/mine-ros")   # the nodes call the same factory
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .coordination.negotiator import DEFAULT_ITERATION_TIMEOUT
from .report import plot_report
from .scenarios import Scenario, parse_scenario
from .scenarios.parameters import OVERRIDES
from .scenarios.source import is_factory, load_source
from .scenarios.team_run import TeamRun
from .scenarios.team_run import simulate_team as run_team
from .sim import InMemoryNetwork, SimulationSettings
from .sim import simulate as simulate_design
from .sim.plant_inputs import InputRules
from .sim.results import SimulationResult


def scenario(model: object, *, controller: dict, simulation: dict | None = None, network: dict | None = None,
             name: str = "scenario", description: str = "") -> Scenario:
    """A scenario around a model built in Python (e.g. a LinearNetwork); the controller, simulation and network
    mappings take the keys of a scenario file's sections and are validated alike (ScenarioError naming the
    field). `simulation.initial_state` may be an array of the stacked state."""
    data = {"name": name, "description": description, "model": model, "controller": controller}
    data.update({k: v for k, v in (("simulation", simulation), ("network", network)) if v is not None})
    return parse_scenario(data, source=name)


def load(source: str) -> Scenario:
    """A shipped name, a YAML path, or a factory module:function / file.py:function."""
    return load_source(source)


def simulation_settings(scenario: Scenario, algorithm: str, compare: bool,
                        iteration_timeout: float = DEFAULT_ITERATION_TIMEOUT,
                        input_rate_limit: float = 0.0, plan_delay: float = 0.0) -> SimulationSettings:
    """The in-process closed loop of the scenario's controller, network and disturbances under `algorithm`; the
    scheme's own settings travel opaque (those of the scenario's scheme; another scheme gets its defaults)."""
    scheme_settings = scenario.controller.scheme_settings if algorithm == scenario.controller.algorithm else None
    return SimulationSettings(
        algorithm, scenario.steps, scenario.controller.stopping, scenario.controller.solver,
        scenario.controller.weights, compare,
        InMemoryNetwork(default_latency=scenario.network_latency, drop_probability=scenario.drop_probability,
                        seed=scenario.network_seed, outage_probability=scenario.outage_probability,
                        max_outage_steps=scenario.max_outage_steps, hosts=scenario.hosts,
                        link_loss=scenario.link_loss, loss_model=scenario.loss_model,
                        retransmit_delay=scenario.retransmit_delay),
        scenario.disturbance(), scheme_settings, scenario.strict, iteration_timeout, scenario.input_disturbance(),
        InputRules(rate_limit=input_rate_limit), plan_delay)


def for_algorithm(scenario: Scenario, algorithm: str | None) -> Scenario:
    """The scenario with `algorithm` (None: its own), validated like the file."""
    if algorithm is None or algorithm == scenario.controller.algorithm:
        return scenario
    return scenario.with_overrides(algorithm=algorithm)


def simulate(scenario: Scenario, algorithm: str | None = None, *, compare_centralized: bool = False,
             progress: Callable[[int, int], None] | None = None,
             iteration_timeout: float = DEFAULT_ITERATION_TIMEOUT, input_rate_limit: float = 0.0,
             plan_delay: float = 0.0) -> SimulationResult:
    """The closed loop in-process under `algorithm` (default: the scenario's); with compare_centralized the
    centralized optimum is also solved at every visited state (input error, cost gap per iteration).
    `iteration_timeout` [s, simulated]: how long an agent waits for a late plan (network.latency) before using a
    substitute, the rule and default of the ROS agent node. `input_rate_limit`: the plant's (sim/plant_inputs.py).
    `plan_delay` [s, simulated]: every agent holds a received plan this long (the agent parameter)."""
    scenario = for_algorithm(scenario, algorithm)
    settings = simulation_settings(scenario, scenario.controller.algorithm, compare_centralized, iteration_timeout,
                                   input_rate_limit, plan_delay)
    return simulate_design(scenario.design(), scenario.plant(), scenario.initial_state, settings, progress)


def simulate_team(scenario: Scenario, *, progress: Callable[[int, int], None] | None = None,
                  iteration_timeout: float = DEFAULT_ITERATION_TIMEOUT, input_rate_limit: float = 0.0) -> TeamRun:
    """The closed loop of a scenario with `team_changes:` (scenarios/team_run.py): stretches between the change
    steps, each change applied only when its shifted candidate is feasible, else refused with the reason."""
    return run_team(scenario, lambda stretch: simulation_settings(stretch, stretch.controller.algorithm, False,
                                                                  iteration_timeout, input_rate_limit), progress)


def save_team(run: TeamRun, scenario: Scenario, output: str | Path, console=None) -> dict:
    """Write team_changes.json into `output`, print the announcements and a table of each stretch's figures (min
    gap or distance, string-stability ratio, feasibility counts); return the summary."""
    import json

    output = Path(output)
    summary = run.summary()
    summary["scenario"], summary["source"] = scenario.name, scenario.source
    output.mkdir(parents=True, exist_ok=True)
    (output / "team_changes.json").write_text(json.dumps(summary, indent=1))
    print_team(summary, scenario, output, console)
    return summary


def print_team(summary: dict, scenario: Scenario, output: Path, console=None, suffix: str = "") -> None:
    """The announcements and the table of each stretch's figures of a team summary (`TeamRun.summary`; a ROS run's
    team_changes.json)."""
    from rich.console import Console
    from rich.table import Table

    from .printable import readable
    from .scenarios.team_run import announcement_of
    from .summary_table import fit_title

    console = console or Console()
    noun = scenario.family.member_noun
    for entry in summary["announcements"]:
        console.print(announcement_of(entry).line(noun), markup=False, highlight=False, soft_wrap=True)
    columns = {"min_gap": "min gap [m]", "min_distance": "min distance [m]",
               "string_stability_ratio": "string stab. ratio", "string_stability_from": "ratio from agent",
               "final_formation_error": "final formation error [m]",
               "max_constraint_violation": "max viol.", "infeasible_problems": "infeasible",
               "first_step_fallbacks": "repairs at restarts"}
    keys = [k for k in columns if any(k in s for s in summary["stretches"])]
    title = fit_title([f"{readable(scenario.name)} — {scenario.controller.algorithm}", f"team changes{suffix}"],
                      console.width - 4)
    table = Table(title=title, min_width=len(title) + 4)   # the title on one line
    for column in ["steps", "team"] + [columns[k] for k in keys]:
        table.add_column(column, justify="right")
    for stretch in summary["stretches"]:
        cells = [f"{stretch['start']}–{stretch['start'] + stretch['steps']}", ",".join(map(str, stretch["team"]))]
        cells += ["—" if stretch.get(k) is None else f"{stretch[k]:.3g}" for k in keys]
        table.add_row(*cells)
    console.print(table)
    console.print("through the changes: " + ", ".join(f"{k.replace('_', ' ')} {v:.4g}"
                                                      for k, v in summary["overall"].items()), highlight=False)
    console.print(f"results: {output}/ (team_changes.json)")


def reference(scenario: Scenario, algorithm: str | None = None) -> SimulationResult:
    """Centralized MPC in closed loop on the problem `algorithm` solves (ADMM's separable terminal cost
    included), the baseline a distributed run is compared with."""
    scenario = for_algorithm(scenario, algorithm)
    return simulate_design(scenario.design(), scenario.plant(), scenario.initial_state,
                           simulation_settings(scenario, "centralized", False))


def run_ros(scenario_or_source: Scenario | str, output: str | Path, **options) -> SimulationResult:
    """The scenario over ROS 2 (one process per node, lock-step by default; options as run_scenario's: mode,
    namespace, domain_id, timeout, iteration_timeout, ...). The nodes rebuild the scenario from its source, so
    a Python-built one must come from a factory (module:function or file.py:function); overrides applied to it
    (with_overrides) travel as node parameters. Raises RuntimeError if the run fails."""
    from .ros.runner import run_scenario

    if isinstance(scenario_or_source, str):
        source, built = scenario_or_source, load_source(scenario_or_source)
        overrides = {}
    else:
        built, source = scenario_or_source, scenario_or_source.source
        if not (is_factory(source) or source.endswith((".yaml", ".yml"))):
            raise ValueError(f"scenario '{built.name}' was built in this process; the ROS nodes can only rebuild "
                             f"it from a factory: pass 'file.py:function' (a function returning the scenario)")
        overrides = changed_fields(load_source(source), built)
    outcome = run_scenario(built, source, Path(output), overrides=overrides, **options)
    if outcome.code != 0:
        raise RuntimeError(f"dmpc run of {built.name} failed: {outcome.message}")
    return outcome.result


def changed_fields(original: Scenario, changed: Scenario) -> dict:
    """The OVERRIDES fields in which `changed` differs from `original`."""
    values = {}
    for name, (where, _) in OVERRIDES.items():   # controller fields on the settings, the others on the scenario
        old = getattr(original.controller if where == "controller" else original, name)
        new = getattr(changed.controller if where == "controller" else changed, name)
        if old != new:
            values[name] = new
    return values


def save(result: SimulationResult, scenario: Scenario, output: str | Path, reference: SimulationResult | None = None,
         console=None, title_suffix: str = "") -> dict:
    """Write summary.json (with the cost gap to `reference`, a centralized run), trajectory.npz/.csv and the
    plots into `output`; print the summary table (to `console`, a rich Console; default stdout); return the
    summary."""
    from rich.console import Console
    from rich.table import Table

    from .printable import readable
    from .summary_table import fit_title, summary_rows

    output = Path(output)
    console = console or Console()

    summary = result.summary(scenario.name, reference)
    summary["scenario_metrics"] = scenario.metrics(result.x, result.u)
    summary["max_constraint_violation"] = max(summary["max_constraint_violation"],
                                              summary["scenario_metrics"].get("constraint_violation", 0.0))
    if scenario.tubes is not None and result.nominal_x is not None:   # how full the tubes got: max |x − x̄| / radius
        radii = np.concatenate([z.radii() for z in scenario.tubes.tubes])
        summary["scenario_metrics"]["tube_fill"] = float(np.max(np.abs(result.x[:-1] - result.nominal_x) / radii))
    summary["source"] = scenario.source
    reference_stage_cost = None if reference is None or reference is result else reference.stage_cost
    result.save(output, summary, reference_stage_cost)
    plots = plot_report(result, scenario, output, reference_stage_cost)
    parts = [f"{readable(scenario.name)} — {result.algorithm}{title_suffix}", f"{scenario.num_agents} agents",
             f"N = {scenario.controller.horizon}"]
    title = fit_title(parts, console.width - 4)   # on one line: the table at least as wide (rich wraps at its width)
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summary_rows(summary, result.algorithm, result.stopped):
        table.add_row(name, value)
    console.print(table)
    files = ["summary.json", "trajectory.npz", "trajectory.csv"] + [p.name for p in plots]
    if (output / "run.mcap").exists():
        files.append("run.mcap")
    console.print(f"results: {output}/ ({', '.join(files)})", soft_wrap=True)
    runs = [("this run", result)]
    if reference is not None and reference is not result:
        runs.append(("the centralized reference", reference))
    for label, run in runs:
        warning = run.warning()
        if warning:
            print(f"warning ({label}): {warning}", file=sys.stderr, flush=True)
    return summary


