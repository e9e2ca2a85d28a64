"""Benchmark (issue 29, "a control horizon for every scheme"): closed-loop cost, QP size and QP time against
`controller.control_horizon` N_c, both tails (`hold`, `terminal`), on mass_spring (N = 20) and the platoon (N = 25).

For each (case, scheme, tail, N_c): the closed-loop cost J = Σ_k ℓ(x(k), u(k)) and its gap to the centralized MPC
with every input free (N_c = N), run in the same invocation on the same plant; the decision variables of one
agent's QP (summed over the agents; centralized: the free inputs of its QP), steps with a failed solve (a terminal
tail that cannot keep the limits makes the QP infeasible and the previous plan, shifted, is applied), the mean
iterations, the median of each agent's QP solve and of its whole agent call (begin_step and iterates), and the
one-core step: Σ over the agents of their whole calls in a step (median over steps), also against the centralized
MPC's step (N_c = N, Clarabel) timed in the same invocation.
Usage: python bench/control_horizon.py [--cases mass_spring platoon] [--schemes gauss_seidel jacobi admm centralized]
                                       [--horizons 2 4 8 12 20] [--steps 40]
       python bench/control_horizon.py --explicit   (θ size, variables and regions of the explicit schemes' mpQPs)
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import yaml

from dmpc_ros.scenarios.schema import parse_scenario, scenario_path
from dmpc_ros.sim import SimulationSettings, simulate


def scenario_of(case: str, steps: int, algorithm: str, horizon: int | None, tail: str):
    data = yaml.safe_load(scenario_path(case).read_text())
    data["controller"]["algorithm"] = algorithm
    if horizon is not None:
        data["controller"].update(control_horizon=horizon, control_tail=tail)
    data["simulation"]["steps"] = steps
    return parse_scenario(data, str(scenario_path(case)))


def qp_variables(scenario) -> int:
    """Σ_i of one agent's QP variables (N_c,i·n_u,i with the held or terminal tail substituted)."""
    design, N = scenario.design(), scenario.controller.horizon
    horizons = scenario.controller.control_horizons
    return sum(sub.n_u * (N if horizons is None else horizons.of(i, N))
               for i, sub in enumerate(design.system.subsystems))


def closed_loop(scenario):
    started = time.perf_counter()
    result = simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                      SimulationSettings(scenario.controller.algorithm, scenario.steps, scenario.controller.stopping,
                                         scheme_settings=scenario.controller.scheme_settings))
    return result, time.perf_counter() - started


def medians(result) -> tuple[float, float, float]:
    """Medians [ms] of the agents' QP solves and whole calls over the run (every agent, every step), and of the
    one-core step: Σ of every agent's whole calls in a step (what agents sharing one core wait for)."""
    solves = [t for step in result.agent_solve_times for agent in step for t in agent]
    calls = [t for step in result.agent_call_times for agent in step for t in agent]
    steps = [sum(t for agent in step for t in agent) for step in result.agent_call_times]
    median = lambda values: 1e3 * float(np.median(values)) if values else float("nan")   # noqa: E731
    return median(solves), median(calls), median(steps)


def explicit_sizes(horizon_sets: list[list[int] | None]) -> None:
    """The explicit schemes' offline problems per control-horizon set on the paper plants (facet_two_plants): θ
    entries, variables and regions per agent (built into a temporary cache, not the user's)."""
    import os
    import tempfile

    from dmpc_ros.scenarios.explicit_cache import agent_problems, build
    os.environ["DMPC_EXPLICIT_CACHE"] = tempfile.mkdtemp(prefix="dmpc-explicit-")
    print("| control horizons | θ entries, variables per agent | regions per agent | mpQP + facets [s] |")
    print("|---|---|---|---|")
    for horizons in horizon_sets:
        data = yaml.safe_load(scenario_path("facet_two_plants").read_text())
        if horizons is not None:
            data["controller"]["control_horizon"] = horizons
        design = parse_scenario(data, str(scenario_path("facet_two_plants"))).design(with_laws=False)
        sizes = [(e.problem.num_parameters, e.problem.num_variables) for e in agent_problems(design)]
        solutions = build(design, log=lambda line: None)
        print(f"| {'N_c = N' if horizons is None else ', '.join(map(str, horizons))} | "
              f"{', '.join(map(str, sizes))} | {', '.join(str(len(s.regions)) for s in solutions)} | "
              f"{sum(s.build_time + s.adjacency_time for s in solutions):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["mass_spring", "platoon"])
    parser.add_argument("--schemes", nargs="+", default=["centralized", "gauss_seidel", "jacobi", "admm"])
    parser.add_argument("--horizons", nargs="+", type=int, default=[2, 4, 8, 12])
    parser.add_argument("--tails", nargs="+", default=["hold", "terminal"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--explicit", action="store_true", help="only the explicit schemes' offline sizes")
    args = parser.parse_args()
    if args.explicit:
        explicit_sizes([None, [2, 2], [2, 1], [1, 1]])
        return
    print("| case | scheme | tail | N_c | J | gap to centralized N_c = N | QP variables (Σ agents) | failed solves | "
          "iterations (mean) | QP solve median [ms] | agent call median [ms] | one-core step median [ms] | "
          "one-core step / centralized step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        base = scenario_of(case, args.steps, "centralized", None, "hold")
        N = base.controller.horizon
        reference, _ = closed_loop(base)
        J_ref, step_ref = reference.closed_loop_cost, medians(reference)[2]   # the baseline, this invocation
        for scheme in args.schemes:
            for tail in args.tails:
                for horizon in [N] + [h for h in args.horizons if h < N]:
                    if tail == "terminal" and horizon == N and "hold" in args.tails:
                        continue   # N_c = N is the same problem for both tails
                    try:
                        scenario = scenario_of(case, args.steps, scheme, horizon, tail)
                    except ValueError:   # ScenarioError: the scheme does not honour this tail (said once)
                        print(f"| {case} | {scheme} | {tail} | < {N} | refused (`dmpc sim` says why) |" + " |" * 8)
                        break
                    print(f"  {case} {scheme} {tail} N_c={horizon} …", file=sys.stderr, flush=True)
                    result, _ = closed_loop(scenario)
                    J = result.closed_loop_cost
                    solve, call, step = medians(result)
                    failed = int(np.sum(result.fallbacks.sum(axis=1) > 0)) if result.fallbacks.size else 0
                    print(f"| {case} | {scheme} | {tail} | {horizon} | {J:.4f} | {100 * (J - J_ref) / J_ref:+.3f} % | "
                          f"{qp_variables(scenario)} | {failed}/{args.steps} | {result.iterations.mean():.1f} | "
                          f"{solve:.3f} | {call:.3f} | {step:.3f} | {step / step_ref:.2f} |", flush=True)


if __name__ == "__main__":
    main()
