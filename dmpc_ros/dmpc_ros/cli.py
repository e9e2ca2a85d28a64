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
    print(f"dmpc demo: ROS_DOMAIN_ID={reservation.domain_id}, discovery limited to localhost")
    module = [sys.executable, "-m", "dmpc_ros.ros.smoke"]
    with ProcessGroup() as group:
        listener = group.start("listener", module + ["listener", "--count", str(count)], env)
        group.start("talker", module + ["talker", "--rate", "5"], env)
        try:
            code = group.wait(listener, timeout=timeout)
        except Exception:
            print(f"dmpc demo: the listener received fewer than {count} plans within {timeout:.0f} s", file=sys.stderr)
            return 1
    reservation.release()
    print(f"dmpc demo: listener exited with {code}")
    return code


def run_simulation(args: argparse.Namespace) -> int:
    """`dmpc sim`: in-process closed loop of a scenario; summary table, summary.json, trajectory.npz, plots."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from .scenarios import ScenarioError, load_scenario
    from .sim import InMemoryNetwork, SimulationSettings, simulate
    from .sim.plots import plot_result

    console = Console()
    try:
        scenario = load_scenario(args.scenario)
        overrides = {k: v for k, v in (("algorithm", args.algorithm), ("max_iterations", args.iterations),
                                       ("solver", args.solver)) if v is not None}
        if args.steps is not None:
            overrides["steps"] = args.steps
        scenario = scenario.with_overrides(**overrides)
    except ScenarioError as error:
        console.print(f"[red]dmpc sim: {error}[/red]")
        return 2
    output = Path(args.output or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{scenario.name}-{scenario.controller.algorithm}")
    design, plant = scenario.design(), scenario.plant()

    def run(algorithm: str, label: str, compare: bool):
        settings = SimulationSettings(
            algorithm, scenario.steps, scenario.controller.stopping, scenario.controller.solver,
            scenario.controller.weights, compare,
            InMemoryNetwork(default_delay=scenario.network_delay, drop_probability=scenario.drop_probability,
                            seed=scenario.network_seed),
            scenario.disturbance())
        with Progress(TextColumn(f"{label:>11}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=not console.is_terminal) as progress:
            task = progress.add_task(label, total=scenario.steps)
            return simulate(design, plant, scenario.initial_state, settings,
                            lambda k, total: progress.update(task, completed=k))

    algorithm = scenario.controller.algorithm
    result = run(algorithm, algorithm, compare=not args.no_reference)
    reference = None
    if not args.no_reference:
        reference = result if algorithm == "centralized" else run("centralized", "reference", compare=False)
    summary = result.summary(scenario.name, reference.closed_loop_cost if reference else None)
    result.save(output, summary)
    plots = plot_result(result, plant, output, scenario.name)

    table = Table(title=f"{scenario.name} — {algorithm}, {scenario.num_agents} agents, N = {design.horizon}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("closed-loop cost", f"{summary['closed_loop_cost']:.6g}"),
        ("centralized closed-loop cost", "—" if reference is None else f"{summary['reference_cost']:.6g}"),
        ("cost gap", "—" if summary["closed_loop_cost_gap"] is None else f"{100 * summary['closed_loop_cost_gap']:+.4f} %"),
        ("max constraint violation", f"{summary['max_constraint_violation']:.3g}"),
        ("iterations mean / max", f"{summary['iterations']['mean']:.2f} / {summary['iterations']['max']}"),
        ("agent solve time median / p95", "—" if summary["solve_time"]["median"] is None else
         f"{1e6 * summary['solve_time']['median']:.0f} µs / {1e6 * summary['solve_time']['p95']:.0f} µs"),
        ("max input error vs centralized", "—" if summary["max_input_error"] is None else f"{summary['max_input_error']:.3g}"),
        ("messages / bytes per step", f"{summary['messages_per_step']:.1f} / {summary['bytes_per_step']:.0f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"results: {output}/ (summary.json, trajectory.npz, trajectory.csv, {', '.join(p.name for p in plots)})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmpc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the main demo")
    demo.add_argument("--count", type=int, default=3, help="plans the listener waits for")
    demo.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    sim = commands.add_parser("sim", help="simulate a scenario in-process (no ROS)")
    sim.add_argument("scenario", help="scenario name (config/<name>.yaml) or path to a YAML file")
    sim.add_argument("--algorithm", help="override controller.algorithm")
    sim.add_argument("--iterations", type=int, help="override controller.max_iterations")
    sim.add_argument("--solver", help="override controller.solver (daqp | osqp)")
    sim.add_argument("--steps", type=int, help="override simulation.steps")
    sim.add_argument("--output", help="output directory (default: runs/<timestamp>-<scenario>-<algorithm>)")
    sim.add_argument("--no-reference", action="store_true", help="skip the centralized reference run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return smoke_demo(args.count, args.timeout)
    if args.command == "sim":
        return run_simulation(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
