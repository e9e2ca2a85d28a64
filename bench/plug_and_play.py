"""Plug-and-play figures (issue 28.5): the shipped team-change scenarios in-process, at several loss rates.

For each scenario (platoon_plug: a vehicle joins at the tail, another leaves the middle, a third is refused;
formation_plug: a robot joins) and each drop probability of the in-memory network, one row per stretch between
applied changes: the change that opened it, the minimum gap or distance, the string-stability ratio (after a leave:
from the vehicle that closes up, down the platoon), infeasible local problems, repairs of the seeded candidate at
the restarts, and the largest constraint violation. The baseline row is the scenario without its changes.

    python bench/plug_and_play.py [--loss 0 0.1 0.3] [--scenarios platoon_plug formation_plug]

With --ros, each scenario (lossless) runs over ROS instead, in lock-step (`dmpc run --iteration-timeout 30`: real
processes, the plant as the head of the team topics, joiners' nodes started during the run; --hosts 3: split over
three network hosts) beside `dmpc sim`: wall time, the largest difference of the stretches' trajectories, whether
the announcements are the same, and the figures the ROS run wrote into summary.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


def over_ros(name: str, hosts: int = 1) -> None:
    """`dmpc run` of `name` (lock-step) against `dmpc sim`: one row. hosts > 1: split over that many network hosts
    (hosts/: namespaces on a bridge, static peers, multicast dropped; needs root), plant and manager on the first,
    the agent nodes (joiners included) in equal shares."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        if hosts > 1:
            code, message = split(name, hosts, Path(folder))
        else:
            run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "run", name, "--iteration-timeout", "30",
                                  "--output", folder], capture_output=True, text=True, timeout=1800)
            code, message = run.returncode, run.stderr.strip().splitlines()[-1:]
        wall = time.monotonic() - started
        if code != 0:
            print(f"| {name} | failed ({code}): {message} | | | | | |")
            return
        simulated = simulate_team(load_scenario(name))
        pieces = [piece for stretch in simulated.stretches for piece in stretch.pieces]
        ros = np.load(Path(folder) / "team_trajectory.npz")
        gap = max(max(np.abs(ros[f"x_{p}"] - piece.x).max(), np.abs(ros[f"u_{p}"] - piece.u).max())
                  for p, piece in enumerate(pieces))
        team = json.loads((Path(folder) / "summary.json").read_text())["team_changes"]
        same = team["announcements"] == simulated.summary()["announcements"]
        overall = team["overall"]
        near = overall.get("min_gap", overall.get("min_distance"))
        where = f" on {hosts} hosts" if hosts > 1 else ""
        print(f"| {name}{where} | {simulated.stretches[-1].start + simulated.stretches[-1].steps} | {wall:.0f} | "
              f"{gap:.1e} | {'same' if same else 'DIFFERENT'} | {fine(near)} | "
              f"{fine(overall.get('string_stability_ratio'))} | {cell(overall['max_constraint_violation'])} |")


def split(name: str, hosts: int, output: Path) -> tuple[int, str]:
    """`name` split over `hosts` network hosts: (the first failed host's exit code or 0, its last line)."""
    from dmpc_ros.hosts.loss import block_multicast, ensure_iptables
    from dmpc_ros.hosts.sandbox import HostSandbox, unavailable
    from dmpc_ros.hosts.team import split_run
    from dmpc_ros.ros.environment import reserve_domain_id
    from dmpc_ros.scenarios.node_specs import member_count

    reason = unavailable() or ensure_iptables()
    if reason:
        return 1, reason
    agents = [f"agent_{i}" for i in range(member_count(load_scenario(name)))]
    share = -(-len(agents) // hosts)
    placement = {f"h{h + 1}": ",".join((["plant", "lifecycle_manager"] if h == 0 else []) +
                                       agents[h * share:(h + 1) * share]) for h in range(hosts)}
    reservation = reserve_domain_id()
    try:
        with HostSandbox(hosts) as sandbox:
            block_multicast(sandbox)
            runs = split_run(sandbox, name, placement, output, reservation.domain_id,
                             flags=("--iteration-timeout", "30"), timeout=1200)
    finally:
        reservation.release()
    failed = [run for run in runs.values() if run.returncode != 0]
    return (failed[0].returncode or 1, failed[0].output.strip().splitlines()[-1:]) if failed else (0, "")


def fine(value) -> str:
    return "—" if value is None else f"{value:.4g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    parser.add_argument("--scenarios", nargs="+", default=["platoon_plug", "formation_plug"])
    parser.add_argument("--ros", action="store_true", help="also run each scenario over ROS (lock-step)")
    parser.add_argument("--hosts", type=int, default=1, help="with --ros: split over this many network hosts")
    args = parser.parse_args()
    if args.ros:
        print("| scenario over ROS (lock-step) | steps | wall [s] | max diff. ROS − sim | announcements | "
              "min gap / distance [m] | string-stability ratio | max violation |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.scenarios:
            over_ros(name, args.hosts)
        return 0
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
