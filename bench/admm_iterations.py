"""Benchmark: does ADMM get better with more negotiation iterations? The closed-loop cost gap to centralized MPC (the
ADMM problem: separable terminal cost) against the iteration limit, with the scenario's own ADMM settings (the
defaults unless its controller.admm section says otherwise) and tolerance, on every shipped scenario where admm
runs, on the systems of the stress suite (`stress:<name>`, bench/stress_systems/) and on the load-frequency stress
system (bench/stress_systems/load_frequency.py, with a 0.25 pu step: lfc_stress). Also counts the steps whose
final iterate the warm-start safeguard rejected and the failed local solves.
To compare code versions run it twice with another dmpc_ros first on PYTHONPATH (bench/RESULTS.md, "ADMM against
the iteration limit").
Usage: python bench/admm_iterations.py [--cases mass_spring formation lfc_stress] [--limits 10 20 30 50 100]
                                       [--steps 25] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import importlib
import pkgutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "dmpc_ros" / "config"
STRESS = "lfc_stress"
SUITE = "stress:"   # prefix of the stress suite's systems


def scenario(case: str, steps: int):
    """The scenario of a case under admm: a shipped name, or the LFC stress system (its own steps)."""
    import dmpc_ros as dmpc

    if case == STRESS:
        sys.path.insert(0, str(HERE))
        from stress_systems.load_frequency import scenario as lfc
        return lfc(load_step=0.25, input_range=0.05, frequency_range=0.01, steps=40)
    if case.startswith(SUITE):   # a system of bench/stress_systems/ (bench/stress.py), at most `steps` steps
        sys.path.insert(0, str(HERE))
        base = importlib.import_module(f"stress_systems.{case[len(SUITE):]}").scenario()
        return base.with_overrides(algorithm="admm", steps=min(base.steps, steps))
    base = dmpc.load(case)
    return base.with_overrides(algorithm="admm", steps=min(base.steps, steps))


def admm_cases() -> list[str]:
    """The shipped scenarios admm accepts (the scheme's own checks refuse the others), and the stress system."""
    import dmpc_ros as dmpc
    from dmpc_ros.scenarios import ScenarioError

    cases = []
    for path in sorted(CONFIG.glob("*.yaml")):
        try:
            dmpc.load(path.stem).with_overrides(algorithm="admm")
        except (ScenarioError, ValueError) as error:
            print(f"{path.stem}: admm not run ({str(error).splitlines()[0][:100]})", file=sys.stderr)
            continue
        cases.append(path.stem)
    sys.path.insert(0, str(HERE))
    import stress_systems
    for module in sorted(m.name for m in pkgutil.iter_modules(stress_systems.__path__)):
        try:
            scenario(SUITE + module, 1)
        except (ScenarioError, ValueError) as error:
            print(f"{SUITE}{module}: admm not run ({str(error).splitlines()[0][:100]})", file=sys.stderr)
            continue
        cases.append(SUITE + module)
    return cases + [STRESS]


def run(case: str, limit: int | None, steps: int) -> dict:
    """One closed loop (limit None: the centralized reference of the ADMM problem)."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    import numpy as np

    import dmpc_ros as dmpc

    base = scenario(case, steps)
    if limit is None:
        return dict(case=case, limit=None, cost=dmpc.reference(base, "admm").closed_loop_cost)
    result = dmpc.simulate(base.with_overrides(max_iterations=limit))
    failures = result.failures()
    rejected = float(result.counters["warm_start_applied"].sum()) if "warm_start_applied" in result.counters else 0
    return dict(case=case, limit=limit, cost=result.closed_loop_cost, rejected=int(rejected),
                failed=failures["infeasible_problems"] + failures["solver_failures"],
                iterations=float(np.mean(result.iterations)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+")
    parser.add_argument("--limits", type=int, nargs="+", default=[10, 20, 30, 50, 100])
    parser.add_argument("--steps", type=int, default=25, help="closed-loop steps of a shipped scenario (at most)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cases = args.cases or admm_cases()
    jobs = [(case, limit) for case in cases for limit in [None, *args.limits]]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run, case, limit, args.steps) for case, limit in jobs]
        rows = []
        for done, future in enumerate(futures, 1):
            rows.append(future.result())
            print(f"[{done}/{len(jobs)}] {rows[-1]}", file=sys.stderr, flush=True)
    reference = {r["case"]: r["cost"] for r in rows if r["limit"] is None}
    print("case | " + " | ".join(f"gap at {limit}" for limit in args.limits))
    print("--- | " + " | ".join("---" for _ in args.limits))
    for case in cases:
        cells = []
        for r in (r for r in rows if r["case"] == case and r["limit"] is not None):
            gap = 100 * (r["cost"] / reference[case] - 1.0)
            notes = [f"{r['rejected']} ws" if r["rejected"] else "", f"{r['failed']} failed" if r["failed"] else ""]
            note = ", ".join(n for n in notes if n)
            cells.append(f"{gap:+.4f} %" + (f" ({note})" if note else ""))
        print(f"{case} | " + " | ".join(cells))
    print("\nws: steps × agents that applied the warm start (safeguard); failed: failed local solves")


if __name__ == "__main__":
    main()
