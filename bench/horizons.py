"""Benchmark (issue 29): cooperative DMPC with dissimilar control horizons (scheme `horizons`) against centralized
MPC on the linear chains, with the terminal set on (the setting of the paper's guarantees).

For each case: the closed-loop cost J = Σ_k ℓ(x(k), u(k)) and its gap to centralized MPC, the decision variables per
iteration (Σ_i of N_c,i·n_u,i, +1 per agent with a tail factor α_i; centralized: N·n_u), the iterations per step and
the mean time of one problem (8). Horizon sets: equal-long (N_c = N), equal-short, dissimilar sets of the same total
as an equal one, and the dynamic reduction (Section III-C) from N_c = N.
Usage: python bench/horizons.py [--cases mass_spring three_masses three_mass_horizons] [--steps 40] [--iterations 30]
                                [--figures] [--nonlinear-heatmap] [--terminal-set]
--figures: bench/horizons.png (solve times of (8) per N_c, horizon traces) and bench/horizons_heatmap.png (J over
(N_c,1, N_c,2) on the three-mass chain, N_c,3 = 8: the paper's Fig. 2, on the linear chain).
--nonlinear-heatmap: only the heat map of the nonlinear scenario three_mass_horizons (IPOPT agents, N = 24, grid
NONLINEAR_GRID, N_c,3 = 8, from the scenario's initial state): bench/horizons_heatmap_nonlinear.png and its table.
--terminal-set: only the verified terminal set of three_mass_horizons (controller.terminal_set: true) and closed
loops with it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

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
        "dynamic from 20, ε = 1e-4": {"dynamic": True, "reduction_tolerance": 1e-4},
        "dynamic from 20, ε = 1e-3": {"dynamic": True, "reduction_tolerance": 1e-3},
        "dynamic from 20, ε = 0.01": {"dynamic": True, "reduction_tolerance": 0.01},
    }),
    "three_masses": ({"count": 3}, {
        "equal N_c = 20 (= N)": {},
        "equal N_c = 8": {"control_horizon": 8},
        "equal N_c = 4": {"control_horizon": 4},
        "dissimilar 2, 8, 2": {"control_horizon": [2, 8, 2]},
        "dissimilar 8, 2, 2": {"control_horizon": [8, 2, 2]},
        "dissimilar 2, 2, 8": {"control_horizon": [2, 2, 8]},
        "dynamic from 20, ε = 1e-4": {"dynamic": True, "reduction_tolerance": 1e-4},
        "dynamic from 20, ε = 0.01": {"dynamic": True, "reduction_tolerance": 0.01},
    }),
    "three_mass_horizons": ({"source": "three_mass_horizons"}, {   # nonlinear: IPOPT agents, N = 24
        "equal N_c = 24 (= N)": {},
        "equal N_c = 20": {"control_horizon": 20},
        "equal N_c = 16": {"control_horizon": 16},
        "equal N_c = 12": {"control_horizon": 12},
        "equal N_c = 8": {"control_horizon": 8},
        "equal N_c = 4": {"control_horizon": 4},
        "dissimilar 4, 12, 8": {"control_horizon": [4, 12, 8]},
        "dissimilar 12, 4, 8": {"control_horizon": [12, 4, 8]},
        "dynamic from 24, ε = 0.01": {"dynamic": True, "reduction_tolerance": 0.01},
    }),
}
GRID = (2, 4, 8, 12, 16, 20)   # N_c,1 and N_c,2 of the heat map (three_masses, N_c,3 = 8): the paper's Fig. 2
NONLINEAR_GRID = (4, 8, 12, 16)   # the same on three_mass_horizons (N = 24; 1–3 min per closed loop)
HEAT_MAPS = {False: ("three_masses", GRID, "horizons_heatmap.png"),
             True: ("three_mass_horizons", NONLINEAR_GRID, "horizons_heatmap_nonlinear.png")}


def scenario_of(case: str, steps: int, iterations: int, terminal_set: bool = False):
    """config/mass_spring_horizons.yaml (4 masses, terminal set on), or its first three masses (three_masses), or
    three_mass_horizons (terminal_set: with the verified nonlinear terminal set)."""
    import copy

    from dmpc_ros.scenarios import parse_scenario, scenario_path
    from dmpc_ros.scenarios.yaml_file import read_yaml

    data = copy.deepcopy(read_yaml(scenario_path(CASES[case][0].get("source", "mass_spring_horizons"))))
    data["controller"].update(max_iterations=iterations, tolerance=1e-8)
    if terminal_set:
        data["controller"]["terminal_set"] = True
    data["controller"].pop("horizons")
    data["simulation"]["steps"] = steps
    if CASES[case][0].get("count") == 3:
        masses = data["model"]["masses"]
        masses.update(count=3, mass=masses["mass"][:3], spring_to_wall=[1.0, 0.0, 1.0])
        data["simulation"]["initial_state"] = data["simulation"]["initial_state"][:3]
    return parse_scenario(data, source=case)


def closed_loop(scenario, section: dict, steps: int, iterations: int):
    """One closed loop of `horizons` with the settings `section` of controller.horizons."""
    from dmpc_ros.coordination import StoppingRule
    from dmpc_ros.coordination.scheme import scheme_of
    from dmpc_ros.sim import SimulationSettings, simulate

    chosen = scheme_of("horizons").parse_settings(section)
    return simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                    SimulationSettings("horizons", steps, StoppingRule(iterations, 1e-8), scheme_settings=chosen))


def centralized_cost(scenario, steps: int):
    from dmpc_ros.sim import SimulationSettings, simulate

    return simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                    SimulationSettings("centralized", steps))


def run(case: str, steps: int, iterations: int) -> tuple[list[tuple], dict]:
    """The table rows of a case and its runs by label (for the figures)."""
    scenario = scenario_of(case, steps, iterations)
    design = scenario.design()
    reference = centralized_cost(scenario, steps)
    rows = [(case, "centralized", reference.closed_loop_cost, 0.0, design.horizon * design.system.n_u, 1.0,
             float("nan"), float(np.max(reference.violation)))]
    runs = {}
    for label, section in CASES[case][1].items():
        result = runs[label] = closed_loop(scenario, section, steps, iterations)
        variables = result.counter("decision_variables").sum(axis=1)   # per step: Σ_i of the last problem (8)
        solves = [t for step in result.agent_solve_times for agent in step for t in agent]
        gap = 100.0 * (result.closed_loop_cost / reference.closed_loop_cost - 1.0)
        rows.append((case, label, result.closed_loop_cost, gap, float(np.mean(variables)),
                     float(np.mean(result.iterations)), 1e3 * float(np.median(solves)),
                     float(np.max(result.violation))))
    return rows, runs


def heat_map(steps: int, iterations: int, nonlinear: bool = False) -> None:
    """The paper's Fig. 2: J over (N_c,1, N_c,2) with N_c,3 = 8 (table and PNG), on the linear three-mass chain or
    on the nonlinear scenario three_mass_horizons."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case, grid, name = HEAT_MAPS[nonlinear]
    scenario = scenario_of(case, steps, iterations)
    reference = centralized_cost(scenario, steps).closed_loop_cost
    J = np.zeros((len(grid), len(grid)))
    for (r, a), (c, b) in ((p, q) for p in enumerate(grid) for q in enumerate(grid)):
        J[r, c] = closed_loop(scenario, {"control_horizon": [a, b, 8]}, steps, iterations).closed_loop_cost
        print(f"N_c = ({a}, {b}, 8): J = {J[r, c]:.6f}", flush=True)
    print(f"\nJ over (N_c,1 rows, N_c,2 columns), N_c,3 = 8, {case}, {steps} steps; centralized {reference:.6f}")
    print("| N_c,1 \\ N_c,2 | " + " | ".join(map(str, grid)) + " |")
    print("|---" * (len(grid) + 1) + "|")
    digits = 6 if nonlinear else 4   # the nonlinear differences are in the fourth decimal
    for a, row in zip(grid, J):
        print(f"| {a} | " + " | ".join(f"{v:.{digits}f}" for v in row) + " |")
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    image = axes.imshow(J, origin="lower", cmap="viridis")
    axes.set_xticks(range(len(grid)), grid)
    axes.set_yticks(range(len(grid)), grid)
    axes.set_xlabel("N_c,2")
    axes.set_ylabel("N_c,1")
    for (r, c), v in np.ndenumerate(J):
        axes.text(c, r, f"{v:.{digits - 2}f}", ha="center", va="center", fontsize=6 if nonlinear else 7, color="w")
    axes.set_title(f"closed-loop J, {case}, N_c,3 = 8 (centralized {reference:.{digits - 2}f})", fontsize=9)
    figure.colorbar(image)
    figure.tight_layout()
    figure.savefig(HERE / name, dpi=120)


TERMINAL_SETS = {"equal N_c = 24 (= N)": {}, "dissimilar 4, 12, 8": {"control_horizon": [4, 12, 8]},
                 "equal N_c = 4": {"control_horizon": 4}}


def terminal_study(steps: int, iterations: int) -> None:
    """The nonlinear terminal set (mpc/terminal_region.py) of three_mass_horizons: its numbers, then closed loops
    with it (J, repairs after step 0, the largest V_f(x_N)/c of the applied plans on the agents' model)."""
    import time

    from dmpc_ros.coordination.nonlinear_horizons import NonlinearHorizons

    scenario = scenario_of("three_mass_horizons", steps, iterations, terminal_set=True)
    started = time.perf_counter()
    model = NonlinearHorizons(scenario.design())
    built, region = time.perf_counter() - started, model.region
    box = np.sqrt(region.level * np.diag(np.linalg.inv(region.P)))
    print(f"terminal set: level c = {region.level:.4f} (sets alone allow {region.level_of_sets:.4f}), margin κ = "
          f"{region.margin}, L_φ = {region.lipschitz:.4f}, {region.samples} samples, built in {built:.2f} s; "
          f"bounding box ±" + ", ".join(f"{w:.3f}" for w in box))
    print("| horizons | closed-loop J | repairs after step 0 | max V_f(x_N)/c | max violation |")
    print("|---|---|---|---|---|")
    for label, section in TERMINAL_SETS.items():
        result = closed_loop(scenario, section, steps, iterations)
        ends = [region.value(model.predict(result.x[k], result.plan_inputs[k].ravel())[-1]) / region.level
                for k in range(steps)]
        print(f"| {label} | {result.closed_loop_cost:.4f} | {int(result.counter('repairs')[1:].sum())} | "
              f"{max(ends):.4f} | {float(np.max(result.violation)):.1e} |", flush=True)


def figures(runs: dict) -> None:
    """Fig. 3 (solve times of (8) per equal N_c) and Fig. 5 (horizon traces of the dynamic runs), mass_spring."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    equal = {label.split("= ")[1].split(" ")[0]: result for label, result in runs.items() if label.startswith("equal")}
    times = [[1e3 * t for step in r.agent_solve_times for agent in step for t in agent] for r in equal.values()]
    left.boxplot(times, tick_labels=list(equal), showfliers=False)
    left.set_xlabel("N_c (every agent)")
    left.set_ylabel("one problem (8) [ms]")
    left.set_title("solve times of (8), mass_spring", fontsize=9)
    for label, result in runs.items():
        if label.startswith("dynamic"):
            trace = result.counter("control_horizon")
            for agent in range(trace.shape[1]):
                right.step(range(trace.shape[0]), trace[:, agent], where="post",
                           label=f"agent {agent}, {label.split(', ')[1]}")
    right.set_xlabel("step")
    right.set_ylabel("N_c,i at the step's last solve")
    right.set_title("dynamic horizons (Section III-C), mass_spring", fontsize=9)
    right.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(HERE / "horizons.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["mass_spring", "three_masses"], choices=list(CASES),
                        help="three_mass_horizons: the nonlinear benchmark (IPOPT agents, minutes per run)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--figures", action="store_true", help="also bench/horizons.png and the heat map")
    parser.add_argument("--nonlinear-heatmap", action="store_true",
                        help="only the heat map of three_mass_horizons (bench/horizons_heatmap_nonlinear.png)")
    parser.add_argument("--terminal-set", action="store_true",
                        help="only the nonlinear terminal set of three_mass_horizons and closed loops with it")
    args = parser.parse_args()
    if args.terminal_set:
        terminal_study(args.steps, args.iterations)
        return
    if args.nonlinear_heatmap:
        heat_map(args.steps, args.iterations, nonlinear=True)
        return
    print("| case | horizons | closed-loop J | gap to centralized | decision variables / iteration | iterations / "
          "step | one (8), median [ms] | max violation |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        rows, runs = run(case, args.steps, args.iterations)
        for name, label, cost, gap, variables, iterations, ms, violation in rows:
            print(f"| {name} | {label} | {cost:.4f} | {gap:+.3f} % | {variables:.1f} | {iterations:.1f} | "
                  f"{ms:.2f} | {violation:.1e} |", flush=True)
        if args.figures and case == "mass_spring":
            figures(runs)
    if args.figures:
        heat_map(args.steps, args.iterations)


if __name__ == "__main__":
    main()
