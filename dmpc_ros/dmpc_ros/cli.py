"""The `dmpc` command: demo, in-process simulation and ROS runs of DMPC scenarios."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .process_group import ProcessGroup
from .ros.environment import reserve_domain_id, ros_environment


def smoke_demo(count: int, timeout: float) -> int:
    """Two nodes in separate processes exchange PredictedTrajectory messages; print what they exchanged."""
    reservation = reserve_domain_id()
    env = ros_environment(reservation.domain_id)
    print(f"dmpc smoke: ROS_DOMAIN_ID={reservation.domain_id}, discovery limited to localhost")
    module = [sys.executable, "-m", "dmpc_ros.ros.smoke"]
    with ProcessGroup() as group:
        listener = group.start("listener", module + ["listener", "--count", str(count)], env)
        group.start("talker", module + ["talker", "--rate", "5"], env)
        try:
            code = group.wait(listener, timeout=timeout)
        except Exception:
            print(f"dmpc smoke: the listener received fewer than {count} plans within {timeout:.0f} s", file=sys.stderr)
            return 1
    reservation.release()
    print(f"dmpc smoke: listener exited with {code}")
    return code


def load_with_overrides(args: argparse.Namespace, console):
    """(path, scenario with the command line's overrides), or None after printing why it cannot be used."""
    from .scenarios import ScenarioError, load_scenario, scenario_path

    overrides = {k: v for k, v in (("algorithm", args.algorithm), ("max_iterations", args.iterations),
                                   ("solver", args.solver), ("steps", args.steps)) if v is not None}
    try:
        path = scenario_path(args.scenario)
        return path, load_scenario(str(path)).with_overrides(**overrides)
    except ScenarioError as error:
        console.print(f"[red]dmpc {args.command}: {error}[/red]")
        return None


def simulation_settings(scenario, algorithm: str, compare: bool):
    from .sim import InMemoryNetwork, SimulationSettings

    return SimulationSettings(
        algorithm, scenario.steps, scenario.controller.stopping, scenario.controller.solver,
        scenario.controller.weights, compare,
        InMemoryNetwork(default_delay=scenario.network_delay, drop_probability=scenario.drop_probability,
                        seed=scenario.network_seed, outage_probability=scenario.outage_probability,
                        max_outage_steps=scenario.max_outage_steps),
        scenario.disturbance(), scenario.controller.admm)


def simulate_with_progress(scenario, algorithm: str, label: str, compare: bool, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .sim import simulate

    with Progress(TextColumn(f"{label:>11}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task(label, total=scenario.steps)
        return simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                        simulation_settings(scenario, algorithm, compare),
                        lambda k, total: progress.update(task, completed=k))


def report(result, scenario, reference, output: Path, console, title_suffix: str = "") -> dict:
    """Write summary.json, trajectory.npz/.csv and plots; print the summary table; return the summary."""
    import numpy as np
    from rich.table import Table

    from .sim.plots import plot_result, plot_tubes

    summary = result.summary(scenario.name, reference.closed_loop_cost if reference else None)
    summary["scenario_metrics"] = scenario.metrics(result.x, result.u)
    if scenario.tubes is not None and result.nominal_x is not None:   # how full the tubes got: max |x − x̄| / radius
        radii = np.concatenate([z.radii() for z in scenario.tubes.tubes])
        summary["scenario_metrics"]["tube_fill"] = float(np.max(np.abs(result.x[:-1] - result.nominal_x) / radii))
    result.save(output, summary)
    plots = plot_result(result, scenario.plant(), output, scenario.name)
    if scenario.tubes is not None and result.nominal_x is not None:
        plots.append(plot_tubes(result, scenario.plant(), scenario.tubes, output, scenario.name))
    plots.extend(scenario.family.plots(scenario, result, output))
    table = Table(title=f"{scenario.name} — {result.algorithm}{title_suffix}, {scenario.num_agents} agents, N = {scenario.controller.horizon}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    median, p95 = summary["solve_time"]["median"], summary["solve_time"]["p95"]
    rows = [
        ("closed-loop cost", f"{summary['closed_loop_cost']:.6g}"),
        ("centralized closed-loop cost", "—" if reference is None else f"{summary['reference_cost']:.6g}"),
        ("cost gap", "—" if summary["closed_loop_cost_gap"] is None else f"{100 * summary['closed_loop_cost_gap']:+.4f} %"),
        ("max constraint violation", f"{summary['max_constraint_violation']:.3g}"),
        ("iterations mean / max", f"{summary['iterations']['mean']:.2f} / {summary['iterations']['max']}"),
        ("agent solve time median / p95", "—" if median is None else f"{1e6 * median:.0f} µs / {1e6 * p95:.0f} µs"),
        ("max input error vs centralized", "—" if summary["max_input_error"] is None else f"{summary['max_input_error']:.3g}"),
        ("messages / bytes per step", f"{summary['messages_per_step']:.1f} / {summary['bytes_per_step']:.0f}"),
    ]
    for name, value in summary["scenario_metrics"].items():
        text = "—" if value is None else (", ".join(f"{v:.3g}" for v in value) if isinstance(value, list) else f"{value:.4g}")
        rows.append((name.replace("_", " "), text))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    files = ["summary.json", "trajectory.npz", "trajectory.csv"] + [p.name for p in plots]
    if (output / "run.mcap").exists():
        files.append("run.mcap")
    console.print(f"results: {output}/ ({', '.join(files)})")
    return summary


def default_output(scenario, command: str) -> Path:
    return Path(f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{command}-{scenario.name}-{scenario.controller.algorithm}")


def run_simulation(args: argparse.Namespace) -> int:
    """`dmpc sim`: in-process closed loop of a scenario; summary table, summary.json, trajectory.npz, plots."""
    from rich.console import Console

    console = Console()
    loaded = load_with_overrides(args, console)
    if loaded is None:
        return 2
    _, scenario = loaded
    output = Path(args.output) if args.output else default_output(scenario, "sim")
    algorithm = scenario.controller.algorithm
    result = simulate_with_progress(scenario, algorithm, algorithm, not args.no_reference, console)
    reference = None
    if not args.no_reference:
        reference = result if algorithm == "centralized" else \
            simulate_with_progress(scenario, "centralized", "reference", False, console)
    report(result, scenario, reference, output, console)
    return 0


def run_ros(args: argparse.Namespace) -> int:
    """`dmpc run`: the scenario over ROS 2, one OS process per node; same output contract as `dmpc sim`."""
    from rich.console import Console

    from .ros.runner import run_scenario

    console = Console()
    loaded = load_with_overrides(args, console)
    if loaded is None:
        return 2
    path, scenario = loaded
    if scenario.controller.algorithm == "centralized":
        console.print("[red]dmpc run: controller.algorithm 'centralized' has no agents to run over ROS; "
                      "use `dmpc sim` or a distributed algorithm[/red]")
        return 2
    output = Path(args.output) if args.output else default_output(scenario, "run")
    output.mkdir(parents=True, exist_ok=True)
    effective = output / "scenario_input.yaml"
    effective.write_text(path.read_text())
    if any(v is not None for v in (args.algorithm, args.iterations, args.solver, args.steps)):
        import yaml
        data = yaml.safe_load(path.read_text())
        for key, value in (("algorithm", args.algorithm), ("max_iterations", args.iterations), ("solver", args.solver)):
            if value is not None:
                data["controller"][key] = value
        if args.steps is not None:
            data.setdefault("simulation", {})["steps"] = args.steps
        effective.write_text(yaml.safe_dump(data, sort_keys=False))
    outcome = run_scenario(scenario, effective, output, mode=args.mode, namespace=args.namespace,
                           domain_id=args.domain_id, localhost_only=not args.network, timeout=args.timeout,
                           death_grace=args.death_grace, iteration_timeout=args.iteration_timeout)
    if outcome.code != 0:
        console.print(f"[red]dmpc run: {outcome.message}[/red]")
        return outcome.code
    reference = None if args.no_reference else simulate_with_progress(scenario, "centralized", "reference", False, console)
    report(outcome.result, scenario, reference, output, console, title_suffix=f" over ROS ({args.mode})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmpc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    smoke = commands.add_parser("smoke", help="two nodes exchange PredictedTrajectory messages over DDS")
    smoke.add_argument("--count", type=int, default=3, help="plans the listener waits for")
    smoke.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    for name, help_text in (("sim", "simulate a scenario in-process (no ROS)"),
                            ("run", "run a scenario over ROS 2, one process per node")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("scenario", help="scenario name (config/<name>.yaml) or path to a YAML file")
        command.add_argument("--algorithm", help="override controller.algorithm")
        command.add_argument("--iterations", type=int, help="override controller.max_iterations")
        command.add_argument("--solver", help="override controller.solver (daqp | osqp)")
        command.add_argument("--steps", type=int, help="override simulation.steps")
        command.add_argument("--output", help="output directory (default: runs/<timestamp>-<command>-<scenario>-<algorithm>)")
        command.add_argument("--no-reference", action="store_true", help="skip the centralized reference run")
        if name == "run":
            command.add_argument("--mode", choices=("lock_step", "real_time"), default="lock_step")
            command.add_argument("--namespace", default="/dmpc", help="ROS namespace of the run's nodes and topics")
            command.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: a free one, reserved for the run)")
            command.add_argument("--network", action="store_true",
                                 help="discover peers on the subnet (real robots) instead of localhost only")
            command.add_argument("--timeout", type=float, default=600.0, help="abort the run after this many seconds")
            command.add_argument("--iteration-timeout", type=float, default=2.0,
                                 help="agents' wait for a neighbour's plan before using its last one [s]")
            command.add_argument("--death-grace", type=float, default=3.0,
                                 help="keep the others running this long after a node dies, then stop [s]")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"smoke": lambda: smoke_demo(args.count, args.timeout), "sim": lambda: run_simulation(args),
                "run": lambda: run_ros(args)}
    return handlers[args.command]()


if __name__ == "__main__":
    sys.exit(main())
