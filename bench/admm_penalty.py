"""Benchmark: ADMM negotiation iterations against tolerance and penalty strategy, on the peer chain and the shipped
scenarios (the ADMM problem: separable terminal cost; the gap is to the centralized optimum of that problem).

Strategies (controller.admm): a fixed penalty ρ with over-relaxation α ∈ {1, 1.6}; residual balancing per edge
(Boyd et al. 2011, §3.4.1) from ρ, every 5th iteration or every iteration; and Nesterov momentum per edge with
restart (Goldstein et al. 2014, Alg. 8). Columns: mean and max iterations per step (cap 100), closed-loop gap, and
mean iterations relative to the former default (ρ = 0.3, α = 1.6); the default chosen from this table is
"balancing from ρ=0.3 α=1" (every 5th iteration). Cases run in a process pool (one per core).
Usage: python bench/admm_penalty.py [--cases chain_16 mass_spring platoon formation] [--tolerances 1e-4]
                                    [--steps 30]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STRATEGIES = {   # name → AdmmSettings fields
    **{f"fixed ρ={rho:g} α={alpha:g}": dict(penalty=rho, over_relaxation=alpha, residual_balancing=False)
       for rho, alpha in ((0.1, 1.0), (0.3, 1.0), (0.3, 1.6), (1.0, 1.6))},
    **{f"balancing from ρ={rho:g} α={alpha:g}": dict(penalty=rho, over_relaxation=alpha, residual_balancing=True)
       for rho, alpha in ((0.3, 1.0), (0.3, 1.6), (1.0, 1.0), (1.0, 1.6))},   # every 5th iteration (the default)
    "balancing every iteration from ρ=1 α=1": dict(penalty=1.0, over_relaxation=1.0, residual_balancing=True,
                                                  balancing_interval=1),
    **{f"nesterov ρ={rho:g}": dict(penalty=rho, over_relaxation=1.0, residual_balancing=False, acceleration=True)
       for rho in (0.1, 0.3)},
}
FORMER_DEFAULT = "fixed ρ=0.3 α=1.6"
CAP = 100


def problem(case: str, steps: int):
    """(design, plant, x0) of a case: chain_<M> (bench/scaling.py's peer chain) or a shipped scenario."""
    if case.startswith("chain_"):
        sys.path.insert(0, str(HERE))
        from scaling import chain_design
        design, plant, x0, _ = chain_design(int(case.split("_")[1]))
        return design, plant, x0
    from dmpc_ros.scenarios import load_scenario
    scenario = load_scenario(case).with_overrides(algorithm="admm", steps=steps)
    return scenario.design(), scenario.plant(), scenario.initial_state


def run(case: str, tolerance: float, strategy: str, steps: int) -> dict:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    from dmpc_ros.coordination import AdmmSettings, StoppingRule
    from dmpc_ros.sim import SimulationSettings, simulate

    design, plant, x0 = problem(case, steps)
    settings = SimulationSettings("admm", steps, StoppingRule(CAP, tolerance),
                                  scheme_settings=AdmmSettings(**STRATEGIES[strategy]))
    result = simulate(design, plant, x0, settings)
    reference = simulate(design.for_algorithm("admm"), plant, x0, SimulationSettings("centralized", steps))
    return dict(case=case, tolerance=tolerance, strategy=strategy, mean=float(np.mean(result.iterations)),
                max=int(np.max(result.iterations)),
                gap=(result.closed_loop_cost - reference.closed_loop_cost) / reference.closed_loop_cost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["chain_16", "mass_spring", "platoon", "formation"])
    parser.add_argument("--tolerances", type=float, nargs="+", default=[1e-4])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    jobs = list(itertools.product(args.cases, args.tolerances, args.strategies))
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        futures = [pool.submit(run, case, tol, strategy, args.steps) for case, tol, strategy in jobs]
        rows = []
        for done, future in enumerate(futures, 1):
            rows.append(future.result())
            print(f"[{done}/{len(jobs)}] {rows[-1]}", file=sys.stderr, flush=True)
    default = {(r["case"], r["tolerance"]): r["mean"] for r in rows if r["strategy"] == FORMER_DEFAULT}
    print("case | tolerance | strategy | mean iter. | max | gap | vs former default")
    print("--- | --- | --- | --- | --- | --- | ---")
    for r in rows:
        base = default.get((r["case"], r["tolerance"]))
        ratio = f"{r['mean'] / base:.2f}" if base else "—"
        print(f"{r['case']} | {r['tolerance']:g} | {r['strategy']} | {r['mean']:.1f} | {r['max']}"
              f"{'*' if r['max'] >= CAP else ''} | {100 * r['gap']:+.4f} % | {ratio}")
    print(f"\n* hit the cap of {CAP} iterations at least once")


if __name__ == "__main__":
    main()
