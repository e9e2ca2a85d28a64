"""Plug-and-play figures (issue 28.5): the shipped team-change scenarios in-process, at several loss rates.

For each scenario (platoon_plug: a vehicle joins at the tail, another leaves the middle, a third is refused;
formation_plug: a robot joins) and each drop probability of the in-memory network, one row per stretch between
applied changes: the change that opened it, the minimum gap or distance, the string-stability ratio (after a leave:
from the vehicle that closes up, down the platoon), infeasible local problems, repairs of the seeded candidate at
the restarts, and the largest constraint violation. The baseline row is the scenario without its changes.

    python bench/plug_and_play.py [--loss 0 0.1 0.3] [--scenarios platoon_plug formation_plug]
"""
from __future__ import annotations

import argparse
import copy

from dmpc_ros.api import simulate, simulate_team
from dmpc_ros.scenarios import load_scenario, parse_scenario, scenario_path
from dmpc_ros.scenarios.yaml_file import read_yaml


def with_loss(name: str, loss: float, changes: bool = True):
    data = copy.deepcopy(read_yaml(scenario_path(name)))
    data.setdefault("network", {})["drop_probability"] = loss
    if not changes:
        data.pop("team_changes")
    return parse_scenario(data, str(scenario_path(name)))


def cell(value) -> str:
    return "—" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    parser.add_argument("--scenarios", nargs="+", default=["platoon_plug", "formation_plug"])
    args = parser.parse_args()
    print("| scenario | loss | stretch | opened by | team | min gap / distance [m] | string-stability ratio | "
          "infeasible | repairs at restarts | max violation |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.scenarios:
        load_scenario(name)   # refuses a broken file before any run
        for loss in args.loss:
            base = with_loss(name, loss, changes=False)
            result = simulate(base)
            metrics = base.metrics(result.x, result.u)
            near = metrics.get("min_gap", metrics.get("min_distance"))
            print(f"| {name} (no changes) | {loss:g} | 0–{base.steps} | — | {base.num_agents} agents "
                  f"| {cell(near)} | "
                  f"{cell(metrics.get('string_stability_ratio'))} | {int(result.infeasible.sum())} | — | "
                  f"{cell(float(result.violation.max()))} |")
            scenario = with_loss(name, loss)
            run = simulate_team(scenario)
            summary = run.summary()
            applied = [a for a in run.announcements if a.accepted]
            for k, stretch in enumerate(summary["stretches"]):
                opened = "start" if k == 0 else f"{applied[k - 1].kind} of {applied[k - 1].member} " \
                                                f"at step {applied[k - 1].step}"
                near = stretch.get("min_gap", stretch.get("min_distance"))
                ratio = stretch.get("string_stability_ratio")
                if ratio is not None and "string_stability_from" in stretch:
                    ratio_text = f"{ratio:.3g} (from agent {stretch['string_stability_from']})"
                else:
                    ratio_text = cell(ratio)
                print(f"| {name} | {loss:g} | {stretch['start']}–{stretch['start'] + stretch['steps']} | {opened} | "
                      f"{','.join(map(str, stretch['team']))} | {cell(near)} | {ratio_text} | "
                      f"{stretch['infeasible_problems']} | {stretch['first_step_fallbacks']} | "
                      f"{cell(stretch['max_constraint_violation'])} |")
            for announcement in run.announcements:
                if not announcement.accepted:
                    print(f"|  {name} | {loss:g} | refused | {announcement.reason} | | | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
