"""Benchmark: how the distributed schemes scale with the number of agents, timed honestly, against a strong
centralized baseline run on the same problem.

Families: the peer chain problem (M masses, N = 20, Q = I, R = 0.1 I, DARE terminal cost, force/position/velocity
limits), and the platoon and formation scenarios scaled to M agents (bench/scenarios.py `scaled`). Each case runs in
its own process (clean peak memory) with OPENBLAS_NUM_THREADS=1. Columns per scheme:
  one-core      Σ over agents of their whole begin_step/iterate calls per step (median over steps): the cost when
                the agents share one core;
  critical      the critical path per step: parallel schemes Σ over iterations of the slowest call, Gauss-Seidel
                the sum along the sequence (= one-core);
  call / QP     per-agent whole iterate call and QP solve, median and p95, and their median ratio;
  iter.         mean negotiation iterations per step;
  peak MB       peak resident memory of the process (design, agents, run);
  gap           closed-loop cost relative to the OSQP baseline's closed loop (ADMM: of the separable-terminal problem);
  vs OSQP       one-core step time / OSQP step time (< 1: the distributed step is cheaper on one core); where
                there is no OSQP baseline (the formation's collision rows change every step) gap and ratio are
                to the Clarabel MPC, marked C (ADMM's separable-terminal problem has no Clarabel row: —).
Baselines: `osqp` is a hand-built sparse MPC (bench/sparse_osqp.py; set up once, bounds and linear term updated,
warm-started); `clarabel` is dmpc_ros's centralized MPC. Both are timed per step (update + solve).
Writes bench/scaling.png (log-log time per step vs M, one panel per family) with its rows as scaling.json, and
prints the table.
Usage: python bench/scaling.py [--family chain platoon formation] [--sizes 4 16 64 256 1024]
                               [--schemes gauss_seidel admm jacobi] [--steps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = {"chain": [4, 16, 64, 256, 1024], "platoon": [4, 16, 64, 256], "formation": [4, 16, 64, 256]}
SCHEMES = ("gauss_seidel", "admm", "jacobi")
CLARABEL_UP_TO = 256   # the project's centralized MPC is also timed up to this size
JACOBI_UP_TO = 1024    # Jacobi above: not run (step bound matrix-free above N·n_u = 1500: parallel_step_sparse)


def chain_design(M: int, horizon: int = 20):
    """(design, plant, x0, stopping) of the peer chain problem."""
    from dmpc_ros.coordination import ControllerDesign, StoppingRule
    from dmpc_ros.models import mass_spring_chain
    from dmpc_ros.mpc.reference import ReferenceTrajectory

    chain = mass_spring_chain(M, mass=1.0, spring=1.0, damper=0.2, force_limit=1.0, position_limit=1.0,
                              velocity_limit=0.8)
    design = ControllerDesign(chain.discrete(0.1, coupling_tolerance=1e-6), np.eye(2 * M), 0.1 * np.eye(M), horizon,
                              ReferenceTrajectory.constant(np.zeros(2 * M), np.zeros(M)))
    x0 = np.zeros(2 * M)
    x0[0::2] = 0.5 * np.cos(1.3 * np.arange(M))
    return design, chain.discrete(0.1, coupling_tolerance=0.0), x0, StoppingRule(50, 1e-4)


def scenario_design(family: str, M: int, steps: int, scheme: str):
    from scenarios import scaled   # bench/scenarios.py

    from dmpc_ros.scenarios import parse_scenario

    name = {"platoon": "platoon", "formation": "formation"}[family]
    algorithm = scheme if scheme in SCHEMES else "gauss_seidel"
    scenario = parse_scenario(scaled(name, M, steps)).with_overrides(algorithm=algorithm)
    controller = scenario.controller
    return scenario.design(), scenario.plant(), scenario.initial_state, controller.stopping, controller


def child(family: str, M: int, scheme: str, steps: int) -> dict:
    """One case in this process; returns its figures."""
    from dmpc_ros.sim import SimulationSettings, simulate

    import sparse_osqp
    import timing

    started = time.perf_counter()
    if family == "chain":
        design, plant, x0, stopping = chain_design(M)
        admm = None
    else:
        design, plant, x0, stopping, controller = scenario_design(family, M, steps, scheme)
        admm = controller.scheme_settings
    separable = scheme in ("admm", "osqp_separable")
    if separable:
        design = design.for_algorithm("admm")
    design.lqr   # the DARE is part of the set-up
    figures = {"family": family, "M": M, "scheme": scheme}
    if scheme.startswith("osqp"):
        if design.collision is not None:
            return {**figures, "skipped": "per-step collision rows: no parametric OSQP baseline"}
        baseline = sparse_osqp.closed_loop(design, plant, x0, steps)
        figures.update(step=float(np.median(baseline["step_times"])), cost=baseline["closed_loop_cost"],
                       statuses=baseline["statuses"])
    elif scheme == "clarabel":
        result = simulate(design, plant, x0, SimulationSettings("centralized", steps))
        figures.update(step=float(np.median(result.centralized_solve_time)), cost=result.closed_loop_cost)
    else:
        settings = SimulationSettings(scheme, steps, stopping, **({} if admm is None else {"scheme_settings": admm}))
        setup = time.perf_counter() - started
        result = simulate(design, plant, x0, settings)
        calls, solves = timing.call_samples(result), result.solve_time_samples()
        figures.update(
            setup=setup, cost=result.closed_loop_cost, iterations=float(np.mean(result.iterations)),
            one_core=float(np.median(timing.per_step_one_core(result))),
            critical=float(np.median(timing.per_step_critical_path(result, scheme == "gauss_seidel"))),
            call=timing.quantiles(calls), qp=timing.quantiles(solves),
            view=float(np.mean([len(v) for v in result.communication.values()])),
            violation=float(np.max(result.violation)))
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["wall"] = time.perf_counter() - started
    return figures


def run_case(family: str, M: int, scheme: str, steps: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(HERE))
    done = subprocess.run([sys.executable, __file__, "--child", family, str(M), scheme, str(steps)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"family": family, "M": M, "scheme": scheme, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = ("family", "M", "scheme", "one-core ms", "critical ms", "call µs (med/p95)", "QP µs (med/p95)",
            "call/QP", "iter.", "view", "peak MB", "gap", "vs OSQP")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    base = {(r["family"], r["M"], r["scheme"]): r for r in rows}
    for r in rows:
        key = (r["family"], r["M"])
        if "error" in r or "skipped" in r:
            lines.append(" | ".join([r["family"], str(r["M"]), r["scheme"], r.get("skipped") or f"failed: {r['error']}"]
                                    + [""] * (len(head) - 4)))
            continue
        if "one_core" not in r:
            lines.append(" | ".join([r["family"], str(r["M"]), r["scheme"], f"{1e3 * r['step']:.2f} (solve)", "",
                                     "", "", "", "1", "", f"{r['peak_mb']:.0f}", "0", ""]))
            continue
        reference, mark = base.get(key + ("osqp_separable" if r["scheme"] == "admm" else "osqp",), {}), ""
        if "step" not in reference and r["scheme"] != "admm":   # no OSQP baseline (formation): Clarabel, marked C
            reference, mark = base.get(key + ("clarabel",), {}), " C"
        gap = f"{100 * (r['cost'] - reference['cost']) / reference['cost']:+.3f} %{mark}" if "cost" in reference \
            else "—"
        ratio = f"{r['one_core'] / reference['step']:.2f}{mark}" if "step" in reference else "—"
        lines.append(" | ".join([
            r["family"], str(r["M"]), r["scheme"], f"{1e3 * r['one_core']:.2f}", f"{1e3 * r['critical']:.2f}",
            f"{1e6 * r['call'][0]:.0f} / {1e6 * r['call'][1]:.0f}", f"{1e6 * r['qp'][0]:.0f} / {1e6 * r['qp'][1]:.0f}",
            f"{r['call'][0] / r['qp'][0]:.1f}", f"{r['iterations']:.1f}", f"{r['view']:.1f}", f"{r['peak_mb']:.0f}",
            gap, ratio]))
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({r["family"] for r in rows})
    figure, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4.2), squeeze=False)
    for axis, family in zip(axes[0], families):
        mine = [r for r in rows if r["family"] == family and "error" not in r and "skipped" not in r]
        for scheme in sorted({r["scheme"] for r in mine}):
            points = sorted((r["M"], r.get("one_core", r.get("step"))) for r in mine if r["scheme"] == scheme)
            label = scheme if scheme in SCHEMES else f"{scheme} (centralized)"
            axis.loglog(*zip(*points), "o-" if scheme in SCHEMES else "s--", label=label)
        axis.set(title=f"{family}: time per step (one core)", xlabel="agents M", ylabel="s")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--sizes", type=int, nargs="+", help="default: chain 4..1024, platoon/formation 4..256")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=HERE / "scaling.png")
    args = parser.parse_args()
    if args.child:
        family, M, scheme, steps = args.child
        print(json.dumps(child(family, int(M), scheme, int(steps))))
        return
    rows = []
    for family in args.family:
        for M in args.sizes or SIZES[family]:
            cases = ["osqp"] + (["osqp_separable"] if "admm" in args.schemes else [])
            cases += ["clarabel"] if M <= CLARABEL_UP_TO else []
            cases += [s for s in args.schemes if s != "jacobi" or M <= JACOBI_UP_TO]
            for scheme in cases:
                started = time.perf_counter()
                rows.append(run_case(family, M, scheme, args.steps))
                print(f"[{time.perf_counter() - started:6.1f} s] {json.dumps(rows[-1])[:300]}", file=sys.stderr,
                      flush=True)
    print(table(rows))
    plot(rows, args.output)
    args.output.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"\nplot: {args.output} (rows: {args.output.with_suffix('.json')})")


if __name__ == "__main__":
    main()
