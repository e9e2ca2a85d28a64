"""Benchmark: coordination schemes on the three scenarios (mass-spring chain, platoon, formation) at 4, 16 and 64
agents, each against the centralized MPC of the same problem run in the same process.

Every distributed run uses the scenario file's settings (at most `max_iterations` negotiation iterations: 10 for
the chain, 20 for the platoon and the formation; tolerance 1e-6) and reports:
  iter. to 1e-3     median and worst over steps of the first iteration whose assembled plan's plant-wide cost is
                    within 1e-3 (relative) of the centralized optimum at that state ('>20': not within the cap);
  cost gap          closed-loop cost relative to the centralized closed loop (the issue's goal: |gap| ≤ 1 % for
                    ADMM and Jacobi at ≤ 20 iterations);
  call / solve      per-agent whole iterate call and QP solve time, medians (DAQP);
  messages, kB      plans sent per step (one per receiving agent) and their size;
  one-core, crit.   Σ over all agents' whole calls per step, and the critical path (parallel: Σ over iterations of
                    the slowest call; Gauss-Seidel: the sum along the sequence; bench/timing.py), each divided by
                    the step time of the hand-built sparse OSQP MPC (bench/sparse_osqp.py, warm-started) in the
                    same run; the formation, whose collision rows change every step, has no OSQP baseline and is
                    divided by the Clarabel centralized solve time (marked "C").
Scaled scenarios: the chain keeps its per-mass parameters (uniform masses, walls at both ends); the platoon
repeats the default time constants; the formation puts the robots on a circle (ring graph, 1.2 m apart) that
reconfigures into a line, with the centre known (no consensus phase). ADMM solves each scenario's problem with
the separable terminal cost; its gap is against the centralized MPC of that problem.
Size 0 runs the scenario file as it is (the default scenario: 4 masses, 6 vehicles, 6 robots with the
consensus phase, each file's own steps).
Usage: python bench/scenarios.py [--sizes 0 4 16 64] [--scenarios mass_spring platoon formation]
                                [--algorithms jacobi admm ...] [--steps 30]
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from coordination import iterations_to  # bench/coordination.py
from sparse_osqp import closed_loop   # bench/sparse_osqp.py
from timing import call_samples, per_step_critical_path, per_step_one_core   # bench/timing.py
from dmpc_ros.scenarios import ScenarioError, parse_scenario, scenario_path
from dmpc_ros.sim import SimulationSettings, simulate

ALGORITHMS = ("jacobi", "gauss_seidel", "admm", "noncooperative", "decentralized")
STEPS = {"mass_spring": 40, "platoon": 60, "formation": 80}


def scaled(name: str, M: int, steps: int | None = None) -> dict:
    """The scenario file `name` with M agents (see the module docstring); M = 0: the file unchanged (its own
    agents and steps: the default scenario). `steps` overrides the number of steps."""
    data = copy.deepcopy(yaml.safe_load(scenario_path(name).read_text()))
    data["simulation"]["steps"] = steps or (data["simulation"]["steps"] if M == 0 else STEPS[name])
    if M == 0:
        return data
    if name == "mass_spring":
        masses = data["model"]["masses"]
        masses.update(count=M, mass=1.0, spring_to_wall=[1.0 if i in (0, M - 1) else 0.0 for i in range(M)])
        data["simulation"]["initial_state"] = [[float(0.5 * np.cos(1.3 * i)), 0.0] for i in range(M)]
    elif name == "platoon":
        vehicles = data["model"]["vehicles"]
        vehicles["time_constant"] = [vehicles["time_constant"][i % len(vehicles["time_constant"])] for i in range(M)]
        vehicles["count"] = M
    else:
        robots = data["model"]["robots"]
        radius = max(1.5, 1.2 / (2 * np.sin(np.pi / M)))
        angles = 2 * np.pi * np.arange(M) / M
        circle = np.column_stack([radius * np.cos(angles), radius * np.sin(angles)])
        order = np.argsort(np.argsort(circle[:, 1]))        # line keeps the robots' vertical order
        line = np.column_stack([np.zeros(M), 1.2 * (order - (M - 1) / 2)])
        robots.update(count=M, shape=circle.round(4).tolist(), shape_after=line.round(4).tolist(), graph="ring")
        data["model"]["centre"] = "known"
        jitter = np.random.default_rng(0).uniform(-0.2, 0.2, (M, 2))
        data["simulation"]["initial_state"] = [[*(circle[i] + jitter[i]).round(4).tolist(), 0.0, 0.0] for i in range(M)]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--scenarios", nargs="+", default=list(STEPS))
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--steps", type=int, help="override the number of closed-loop steps (long 64-agent runs)")
    args = parser.parse_args()
    console = Console(width=160)
    table = Table(title="coordination schemes on the three scenarios "
                        "(each file's max_iterations: chain 10, platoon and formation 20)")
    for column in ("scenario", "M", "algorithm", "iter. to 1e-3 (median / max)", "cost gap", "call median",
                   "solve median", "messages", "kB/step", "one-core", "crit."):
        table.add_column(column, justify="right")
    with Progress(console=console) as progress:
        separable_kinds = sorted({algorithm == "admm" for algorithm in args.algorithms})   # references needed
        task = progress.add_task("benchmark", total=len(args.scenarios) * len(args.sizes)
                                 * (len(args.algorithms) + len(separable_kinds)))
        for name in args.scenarios:
            for M in args.sizes:
                started = time.perf_counter()
                base = parse_scenario(scaled(name, M, args.steps))
                plant, references = base.plant(), {}
                for separable in separable_kinds:
                    progress.update(task, description=f"{name} M={M}: centralized")
                    scenario = base.with_overrides(algorithm="admm" if separable else "jacobi")
                    references[separable] = simulate(scenario.design(), plant, scenario.initial_state,
                                                     SimulationSettings("centralized", scenario.steps))
                    progress.advance(task)
                central = float(np.median(next(iter(references.values())).centralized_solve_time))
                reference_design = base.with_overrides(algorithm="jacobi").design()
                step_baseline, mark = central, " C"
                if reference_design.collision is None:
                    step_baseline, mark = float(np.median(closed_loop(reference_design, plant, base.initial_state,
                                                                 base.steps)["step_times"])), ""
                size = str(M) if M else f"{base.design().system.num_agents} (file)"
                table.add_row(name, size, "centralized (Clarabel)", "—", "0", "", f"{1e3 * central:.2f} ms", "0", "0",
                              f"{central / step_baseline:.3g}{mark}", "")
                for algorithm in args.algorithms:
                    progress.update(task, description=f"{name} M={M}: {algorithm}")
                    try:
                        scenario = base.with_overrides(algorithm=algorithm)
                    except ScenarioError as error:   # e.g. decentralized formation: no collision planes
                        table.add_row("", "", algorithm, "not allowed", "", "", "", "", "", "")
                        console.log(f"{name} M={size} {algorithm}: {error}")
                        progress.advance(task)
                        continue
                    settings = SimulationSettings(algorithm, scenario.steps, scenario.controller.stopping,
                                                  scheme_settings=scenario.controller.scheme_settings,
                                                  compare_centralized=True)
                    result = simulate(scenario.design(), plant, scenario.initial_state, settings)
                    baseline = references[algorithm == "admm"]
                    reached = iterations_to(result, 1e-3)
                    cap = scenario.controller.max_iterations
                    shown = [f">{cap}" if np.isinf(v) else f"{v:.0f}" for v in (np.median(reached), np.max(reached))]
                    times = result.solve_time_samples()
                    gap = (result.closed_loop_cost - baseline.closed_loop_cost) / baseline.closed_loop_cost
                    critical = np.median(per_step_critical_path(result, algorithm == "gauss_seidel"))
                    row = ("", "", algorithm, " / ".join(shown), f"{100 * gap:+.3f} %",
                           f"{1e6 * np.median(call_samples(result)):.0f} µs", f"{1e6 * np.median(times):.0f} µs",
                           f"{np.mean(result.messages):.0f}", f"{np.mean(result.bytes) / 1e3:.1f}",
                           f"{np.median(per_step_one_core(result)) / step_baseline:.3g}{mark}",
                           f"{critical / step_baseline:.3g}{mark}")
                    table.add_row(*row)
                    console.log(f"{name} M={size} " + " | ".join(row[2:]))   # partial results survive an interrupt
                    progress.advance(task)
                console.log(f"{name} M = {M} done in {time.perf_counter() - started:.0f} s")
    console.print(table)


if __name__ == "__main__":
    main()
