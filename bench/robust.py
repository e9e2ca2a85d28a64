"""Benchmark: nominal vs tube-based robust DMPC on mass_spring_robust as the disturbance bound grows.

For each scale s of the scenario's disturbance set (W = s·W₀, W₀ = |w_p| ≤ 2 mm, |w_v| ≤ 0.02 m/s) and each
mode, `--runs` seeded closed loops with every disturbance on a vertex of W (worst case):
  violating runs    runs with any state/input constraint violated (> 1e-9);
  max violation     largest violation over all runs [constraint units];
  cost              mean closed-loop cost;
  conservatism      share of each agent's state box X_i removed by the tightening X_i ⊖ Z_i (area), mean over
                    agents; and of the input range U_i ⊖ K_i Z_i;
  step time ratio   tube / nominal wall time per control step (same algorithm, same process).
A scale whose tightened sets are empty is reported as refused (what configuration says).
Usage: python bench/robust.py [--scales 0.5 1 1.5 2 2.5] [--runs 20]
"""
from __future__ import annotations

import argparse

import numpy as np
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dmpc_ros.mpc.tubes import tighten
from dmpc_ros.scenarios import ScenarioError, parse_scenario, scenario_path
from dmpc_ros.sim.monte_carlo import closed_loop_run


def run(scenario, seed: int) -> tuple[float, float, float]:
    """(max violation, closed-loop cost, seconds per step) of one seeded run."""
    figures = closed_loop_run(scenario, seed, tube=scenario.tubes is not None)
    return figures.violation, figures.cost, figures.step_time


def conservatism(scenario) -> tuple[float, float]:
    """Mean share of the state boxes' area and of the input ranges removed by the tightening."""
    plant, family = scenario.plant(), scenario.tubes
    state, inputs = [], []
    for i, sub in enumerate(plant.subsystems):
        tight = tighten(sub, family.tubes[i], family.gains[i], i)
        width = lambda c: c.h[: c.h.size // 2] + c.h[c.h.size // 2:]  # noqa: E731  box rows: uppers, then lowers
        state.append(1.0 - np.prod(width(tight.state_constraint)) / np.prod(width(sub.state_constraint)))
        inputs.append(1.0 - np.prod(width(tight.input_constraint)) / np.prod(width(sub.input_constraint)))
    return float(np.mean(state)), float(np.mean(inputs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    console = Console(width=150)
    base = yaml.safe_load(scenario_path("mass_spring_robust").read_text())
    table = Table(title=f"nominal vs tube DMPC on mass_spring_robust ({args.runs} vertex-disturbance runs per cell)")
    for column in ("W scale", "mode", "violating runs", "max violation", "mean cost", "X removed", "U removed",
                   "step time ratio"):
        table.add_column(column, justify="right")
    with Progress(console=console) as progress:
        task = progress.add_task("robust", total=len(args.scales) * 2 * args.runs)
        for scale in args.scales:
            data = yaml.safe_load(yaml.safe_dump(base))
            data["simulation"]["disturbance_bound"] = [scale * b for b in base["simulation"]["disturbance_bound"]]
            try:
                tube = parse_scenario(data)
            except ScenarioError as error:
                console.log(f"scale {scale}: {error}")
                tube = None
            nominal_data = yaml.safe_load(yaml.safe_dump(data))
            nominal_data["controller"]["robust"] = "nominal"
            nominal_data["controller"].pop("tube", None)
            nominal = parse_scenario(nominal_data)
            times = {}
            for mode, scenario in (("nominal", nominal), ("tube", tube)):
                if scenario is None:
                    table.add_row(f"{scale:g}", mode, "refused at configuration", "", "", "", "", "", style="dim")
                    progress.advance(task, args.runs)
                    continue
                results = []
                for seed in range(args.runs):
                    progress.update(task, description=f"W × {scale:g}: {mode} run {seed}")
                    results.append(run(scenario, seed))
                    progress.advance(task)
                violations = np.array([r[0] for r in results])
                times[mode] = float(np.median([r[2] for r in results]))
                removed = conservatism(scenario) if mode == "tube" else (0.0, 0.0)
                table.add_row(f"{scale:g}", mode, f"{int(np.sum(violations > 1e-9))} / {args.runs}",
                              f"{violations.max():.3g}", f"{np.mean([r[1] for r in results]):.1f}",
                              f"{100 * removed[0]:.1f} %", f"{100 * removed[1]:.1f} %",
                              f"{times[mode] / times['nominal']:.2f}" if mode == "tube" else "1")
    console.print(table)


if __name__ == "__main__":
    main()
