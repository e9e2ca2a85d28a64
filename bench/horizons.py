"""Benchmark (issue 29): cooperative DMPC with dissimilar control horizons (scheme `horizons`) against centralized
MPC on the linear chains, with the terminal set on (the setting of the paper's guarantees).

For each case: the closed-loop cost J = Σ_k ℓ(x(k), u(k)) and its gap to centralized MPC, the decision variables per
iteration (Σ_i of N_c,i·n_u,i, +1 per agent with a tail factor α_i; centralized: N·n_u), the iterations per step and
the mean time of one problem (8). Horizon sets: equal-long (N_c = N), equal-short, dissimilar sets of the same total
as an equal one, and the dynamic reduction (Section III-C) from N_c = N.
Usage: python bench/horizons.py [--cases mass_spring three_masses] [--steps 40] [--iterations 30]
"""
from __future__ import annotations

import argparse

import numpy as np

CASES = {
    # name: (chain overrides, horizon sets to compare: label → settings of controller.horizons)
    "mass_spring": ({}, {
        "equal N_c = 20 (= N)": {},
        "equal N_c = 12": {"control_horizon": 12},
        "equal N_c = 8": {"control_horizon": 8},
        "equal N_c = 4": {"control_horizon": 4},
        "equal N_c = 2": {"control_horizon": 2},
        "dissimilar 4, 12, 4, 12": {"control_horizon": [4, 12, 4, 12]},
        "dissimilar 12, 4, 12, 4": {"control_horizon": [12, 4, 12, 4]},
        "dissimilar 2, 6, 10, 14": {"control_horizon": [2, 6, 10, 14]},
        "dominant, equal N_c = 8": {"control_horizon": 8, "supervisor": "dominant"},
        "dynamic from 20, ε = 0.01": {"dynamic": True, "reduction_tolerance": 0.01},
        "dynamic from 20, ε = 0.1": {"dynamic": True, "reduction_tolerance": 0.1},
    }),
    "three_masses": ({"count": 3}, {
        "equal N_c = 20 (= N)": {},
        "equal N_c = 8": {"control_horizon": 8},
        "equal N_c = 4": {"control_horizon": 4},
        "dissimilar 2, 8, 2": {"control_horizon": [2, 8, 2]},
        "dissimilar 8, 2, 2": {"control_horizon": [8, 2, 2]},
        "dissimilar 2, 2, 8": {"control_horizon": [2, 2, 8]},
        "dynamic from 20, ε = 0.01": {"dynamic": True, "reduction_tolerance": 0.01},
    }),
}


def scenario_of(case: str, steps: int, iterations: int):
    """config/mass_spring_horizons.yaml (4 masses, terminal set on), or its first three masses (three_masses)."""
    import copy

    from dmpc_ros.scenarios import parse_scenario, scenario_path
    from dmpc_ros.scenarios.yaml_file import read_yaml

    data = copy.deepcopy(read_yaml(scenario_path("mass_spring_horizons")))
    data["controller"].update(max_iterations=iterations, tolerance=1e-8)
    data["controller"].pop("horizons")
    data["simulation"]["steps"] = steps
    if CASES[case][0].get("count") == 3:
        masses = data["model"]["masses"]
        masses.update(count=3, mass=masses["mass"][:3], spring_to_wall=[1.0, 0.0, 1.0])
        data["simulation"]["initial_state"] = data["simulation"]["initial_state"][:3]
    return parse_scenario(data, source=case)


def run(case: str, steps: int, iterations: int) -> list[tuple]:
    from dmpc_ros.coordination import StoppingRule
    from dmpc_ros.coordination.scheme import scheme_of
    from dmpc_ros.sim import SimulationSettings, simulate

    scenario = scenario_of(case, steps, iterations)
    parse_settings = scheme_of("horizons").parse_settings
    design, plant, x0 = scenario.design(), scenario.plant(), scenario.initial_state
    N, n_u = design.horizon, design.system.n_u
    reference = simulate(design, plant, x0, SimulationSettings("centralized", steps))
    rows = [(case, "centralized", reference.closed_loop_cost, 0.0, N * n_u, 1.0, float("nan"),
             float(np.max(reference.violation)))]
    for label, section in CASES[case][1].items():
        chosen = parse_settings(section)
        result = simulate(design, plant, x0, SimulationSettings("horizons", steps, StoppingRule(iterations, 1e-8),
                                                                scheme_settings=chosen))
        variables = result.counter("decision_variables").sum(axis=1)   # per step: Σ_i of the last problem (8)
        solves = [t for step in result.agent_solve_times for agent in step for t in agent]
        gap = 100.0 * (result.closed_loop_cost / reference.closed_loop_cost - 1.0)
        rows.append((case, label, result.closed_loop_cost, gap, float(np.mean(variables)),
                     float(np.mean(result.iterations)), 1e3 * float(np.mean(solves)), float(np.max(result.violation))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()
    print("| case | horizons | closed-loop J | gap to centralized | decision variables / iteration | iterations / "
          "step | one (8) [ms] | max violation |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        for name, label, cost, gap, variables, iterations, ms, violation in run(case, args.steps, args.iterations):
            print(f"| {name} | {label} | {cost:.4f} | {gap:+.3f} % | {variables:.1f} | {iterations:.1f} | "
                  f"{ms:.2f} | {violation:.1e} |", flush=True)


if __name__ == "__main__":
    main()

