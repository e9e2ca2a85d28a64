"""Benchmark: coordination algorithms on mass-spring chains of growing size, against centralized MPC.

For M masses (default 4, 16, 64), N = 20, every algorithm runs the same closed loop and is compared with the
centralized MPC run in the same process:
  iterations to 1e-4  median and worst over steps of the first iteration p whose assembled plan has a
                      plant-wide cost within 1e-4 (relative) of the centralized optimum at that state
                      (0: the warm start already is; '>P': never within the cap);
  cost gap            closed-loop cost relative to the centralized closed loop;
  call / solve median per-agent whole iterate call and QP solve time (DAQP; Jacobi also with OSQP up to 16 masses);
  messages, kB        plans sent per step (one per receiving agent) and their size;
  one-core / OSQP    Σ over all agents' whole calls per step (bench/timing.py; the cost on one core) divided by
                      the step time of a hand-built sparse OSQP MPC (bench/sparse_osqp.py: built once, updated,
                      warm-started), both measured in this run;
  critical / OSQP     the critical path (parallel: Σ over iterations of the slowest whole call; Gauss-Seidel: the
                      sum along the sequence) divided by the same OSQP step time.
The centralized rows give both baselines' step times: dmpc_ros's Clarabel MPC (the cost reference) and OSQP.
ADMM splits the cost by agent, so it solves the problem with the separable terminal cost Σ x_i,N' P_ii x_i,N;
its gap and iterations are measured against the centralized MPC of that same problem (run separately).
Usage: python bench/coordination.py [--sizes 4 16 64] [--steps 40] [--iterations 300]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dmpc_ros.coordination import ControllerDesign, StoppingRule
from dmpc_ros.models import mass_spring_chain
from dmpc_ros.mpc.reference import ReferenceTrajectory
from dmpc_ros.sim import SimulationSettings, simulate
from sparse_osqp import closed_loop   # bench/sparse_osqp.py
from timing import call_samples, per_step_critical_path, per_step_one_core   # bench/timing.py

ALGORITHMS = ("jacobi", "gauss_seidel", "admm", "noncooperative", "decentralized")
OSQP_UP_TO = 16  # also run Jacobi with the OSQP back end for chains up to this size (DAQP is the default)


def chain_case(M: int, horizon: int, separable: bool = False):
    chain = mass_spring_chain(M, mass=1.0, spring=1.0, damper=0.2, force_limit=1.0, position_limit=1.0,
                              velocity_limit=0.8)
    model = chain.discrete(0.1, coupling_tolerance=1e-6)
    design = ControllerDesign(model, np.diag(np.tile([10.0, 1.0], M)), 0.1 * np.eye(M), horizon,
                              ReferenceTrajectory.constant(np.zeros(2 * M), np.zeros(M)),
                              separable_terminal_cost=separable)
    x0 = np.zeros(2 * M)
    x0[0::2] = 0.5 * np.cos(1.3 * np.arange(M))
    return design, chain.discrete(0.1, coupling_tolerance=0.0), x0


def iterations_to(result, tolerance: float) -> list[float]:
    gaps = (np.abs(result.cost_per_iteration - result.centralized_cost[:, None])
            / np.abs(result.centralized_cost[:, None]))
    reached = []
    for k in range(result.steps):
        hits = np.flatnonzero(gaps[k] <= tolerance)
        reached.append(float(hits[0]) if hits.size else np.inf)
    return reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=300, help="iteration cap per step")
    args = parser.parse_args()
    console = Console(width=150)
    table = Table(title=f"coordination on mass-spring chains (N = {args.horizon}, {args.steps} steps)")
    for column in ("M", "algorithm", "iter. to 1e-4 (median / max)", "cost gap", "call median", "solve median",
                   "messages", "kB/step", "one-core / OSQP", "critical / OSQP"):
        table.add_column(column, justify="right")
    with Progress(console=console, transient=True) as progress:
        runs = [(algorithm, "daqp") for algorithm in ALGORITHMS]
        task = progress.add_task("benchmark", total=len(args.sizes) * (len(runs) + 2))
        for M in args.sizes:
            design, plant, x0 = chain_case(M, args.horizon)
            progress.update(task, description=f"M = {M}: centralized")
            started = time.perf_counter()
            reference = simulate(design, plant, x0, SimulationSettings("centralized", args.steps))
            central_time = float(np.median(reference.centralized_solve_time))
            osqp_time = float(np.median(closed_loop(design, plant, x0, args.steps)["step_times"]))
            progress.advance(task)
            table.add_row(str(M), "centralized (Clarabel)", "—", "0", "", f"{1e3 * central_time:.2f} ms", "0", "0",
                          f"{central_time / osqp_time:.3g}", "")
            table.add_row("", "centralized (OSQP)", "—", "", "", f"{1e3 * osqp_time:.2f} ms", "0", "0", "1", "")
            separable_design, _, _ = chain_case(M, args.horizon, separable=True)
            separable_reference = None
            for algorithm, backend in runs + ([("jacobi", "osqp")] if M <= OSQP_UP_TO else []):
                progress.update(task, description=f"M = {M}: {algorithm} ({backend})")
                if algorithm == "admm":
                    separable_reference = separable_reference or simulate(
                        separable_design, plant, x0, SimulationSettings("centralized", args.steps))
                cap = 1 if algorithm == "decentralized" else args.iterations
                result = simulate(separable_design if algorithm == "admm" else design, plant, x0, SimulationSettings(
                    algorithm, args.steps, StoppingRule(cap, 1e-9), backend, compare_centralized=True))
                baseline = separable_reference if algorithm == "admm" else reference
                reached = iterations_to(result, 1e-4)
                shown = [f">{cap}" if np.isinf(v) else f"{v:.0f}" for v in (np.median(reached), np.max(reached))]
                times = result.solve_time_samples()
                gap = (result.closed_loop_cost - baseline.closed_loop_cost) / baseline.closed_loop_cost
                table.add_row(
                    "", algorithm if backend == "daqp" else f"{algorithm} (osqp)", " / ".join(shown),
                    f"{100 * gap:+.3f} %", f"{1e6 * np.median(call_samples(result)):.0f} µs",
                    f"{1e6 * np.median(times):.0f} µs",
                    f"{np.mean(result.messages):.0f}", f"{np.mean(result.bytes) / 1e3:.1f}",
                    f"{np.median(per_step_one_core(result)) / osqp_time:.3g}",
                    f"{np.median(per_step_critical_path(result, algorithm == 'gauss_seidel')) / osqp_time:.3g}",
                )
                progress.advance(task)
            console.log(f"M = {M} done in {time.perf_counter() - started:.0f} s")
    console.print(table)


if __name__ == "__main__":
    main()
