"""Benchmark: a team split over three network hosts (hosts/: namespaces on a bridge, static peers, multicast dropped)
with packet loss on every inter-host link (iptables statistic match), against the same team with no loss.

For each scenario, mode (lock_step, real_time), loss rate and plan transport it prints one row:
  plans      reliable (fast repair: 20 ms heartbeats, the default across computers), reliable with Fast DDS's own
             3 s heartbeat (--repair-period 0), best_effort;
  steps      the steps done in the run's time limit (a stalled run does fewer);
  step [s]   median and max wall time per plant step (lock-step: how long the team took to decide);
  viol       max constraint violation; outside U: applied inputs outside the input set; NaN: non-finite inputs;
  cost       closed-loop cost against the loss-free run of the same mode and transport;
  missing    neighbour plans substituted after the agent's timeout (AgentStatus.messages_missing, summed);
  late       inputs that reached the plant after their step (real time);
  outage     tube mode: the longest run of steps an agent went without a required neighbour's plan of the step
             (counter stale_plan_steps) against the fault bound D (controller.tube.missed_steps);
  dropped    packets the hosts' loss rules dropped.
The kernel has no netem, so the links lose packets but add no delay; delay is the agents' own plan hold (plan_delay).
Usage: python bench/faults.py [--scenarios platoon_robust platoon] [--modes lock_step real_time]
                              [--losses 0 0.1 0.3] [--plans reliable stock best_effort] [--steps 40]
Needs root (network namespaces, iptables: installed with apt-get when missing).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dmpc_ros.coordination.safe_input import InputGuard
from dmpc_ros.hosts.loss import block_multicast, drop_counts, ensure_iptables, set_link_loss
from dmpc_ros.hosts.sandbox import HostSandbox, unavailable
from dmpc_ros.hosts.team import split_run
from dmpc_ros.ros.environment import reserve_domain_id
from dmpc_ros.scenarios.source import load_source

PLANS = {"reliable": ("--plan-qos", "reliable"), "stock": ("--plan-qos", "reliable", "--repair-period", "0"),
         "best_effort": ("--plan-qos", "best_effort")}
PLANS_TEXT = {"reliable": "reliable, 20 ms repair", "stock": "reliable, Fast DDS 3 s", "best_effort": "best effort"}


def placement(agents: int, hosts: int = 3) -> dict[str, str]:
    """Agents in contiguous blocks over the hosts; h1 also runs the plant and the lifecycle manager."""
    blocks = np.array_split(np.arange(agents), hosts)
    text = [f"agent_{b[0]}-{b[-1]}" if len(b) > 1 else f"agent_{b[0]}" for b in blocks]
    return {f"h{k + 1}": ("plant,lifecycle_manager," if k == 0 else "") + t for k, t in enumerate(text)}


def outside_input_set(scenario, u: np.ndarray) -> int:
    """Applied plant-wide inputs (rows of u) outside some agent's input set."""
    guards = [InputGuard.of(s) for s in scenario.plant().subsystems]
    count, start = 0, 0
    for guard in guards:
        H, h = guard.rows(None)
        part = u[:, start:start + guard.size]
        start += guard.size
        if H.size:
            count += int(np.sum(np.max(part @ H.T - h, axis=1) > 1e-9))
    return count


def one_run(sandbox: HostSandbox, name: str, mode: str, loss: float, plans: str, steps: int, folder: Path,
            domain_id: int, timeout: float) -> dict:
    scenario = load_source(name)
    set_link_loss(sandbox, loss)
    before = drop_counts(sandbox)
    runs = split_run(sandbox, name, placement(scenario.num_agents), folder, domain_id, timeout=timeout,
                     flags=("--no-reference", "--steps", str(steps), "--mode", mode, *PLANS[plans]))
    after = drop_counts(sandbox)
    dropped = sum(after[h]["loss"] - before[h]["loss"] for h in after)
    row = {"scenario": name, "mode": mode, "loss": loss, "plans": plans, "dropped": dropped,
           "exit": {h: r.returncode for h, r in runs.items()}}
    if not (folder / "summary.json").is_file():
        return {**row, "steps": 0}
    summary = json.loads((folder / "summary.json").read_text())
    trajectory, plant = np.load(folder / "trajectory.npz"), np.load(folder / "plant.npz")
    u = trajectory["u"]
    wall = np.diff(plant["wall_time"]) if plant["wall_time"].size > 1 else np.zeros(1)
    stale = trajectory["counter_stale_plan_steps"] if "counter_stale_plan_steps" in trajectory.files else None
    return {**row, "steps": int(u.shape[0]), "cost": summary["closed_loop_cost"],
            "violation": summary["max_constraint_violation"], "nan": int(np.sum(~np.isfinite(u))),
            "outside": outside_input_set(scenario, u), "missing": summary["messages_missing"],
            "late": summary["late_inputs"], "step_median": float(np.median(wall[1:] if wall.size > 1 else wall)),
            "step_max": float(np.max(wall[1:] if wall.size > 1 else wall)),
            "outage": None if stale is None else int(stale.max()),
            "bound": fault_bound(scenario)}


def fault_bound(scenario) -> int | None:
    """D of a tube-mode scenario (controller.tube.missed_steps); None for nominal DMPC."""
    tubes = scenario.design().tubes
    return None if tubes is None or tubes.compatibility is None else tubes.compatibility.missed_steps


def table(rows: list[dict]) -> str:
    lines = ["| scenario | mode | loss | plans | steps | step [s] median / max | viol | outside U | NaN | cost vs 0 % "
             "| missing | late | outage / D | dropped |", "|" + "---|" * 14]
    base = {(r["scenario"], r["mode"], r["plans"]): r.get("cost") for r in rows if r["loss"] == 0 and r["steps"]}
    for r in rows:
        if not r["steps"]:
            lines.append(f"| {r['scenario']} | {r['mode']} | {r['loss']:.0%} | {PLANS_TEXT[r['plans']]} | 0 "
                         f"(exit {r['exit']}) | | | | | | | | | {r['dropped']} |")
            continue
        zero = base.get((r["scenario"], r["mode"], r["plans"]))
        cost = f"{100 * (r['cost'] / zero - 1):+.2f} %" if zero else "—"
        outage = "—" if r["outage"] is None else f"{r['outage']} / {r['bound']}"
        lines.append(f"| {r['scenario']} | {r['mode']} | {r['loss']:.0%} | {PLANS_TEXT[r['plans']]} | {r['steps']} "
                     f"| {r['step_median']:.3f} / {r['step_max']:.2f} | {r['violation']:.1e} | {r['outside']} "
                     f"| {r['nan']} | {cost} | {r['missing']} | {r['late']} | {outage} | {r['dropped']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=["platoon_robust", "platoon"])
    parser.add_argument("--modes", nargs="+", default=["lock_step", "real_time"], choices=("lock_step", "real_time"))
    parser.add_argument("--losses", nargs="+", type=float, default=[0.0, 0.1, 0.3])
    parser.add_argument("--plans", nargs="+", default=list(PLANS), choices=list(PLANS))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=120.0, help="per run [s]: a stalled run is cut there")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--keep", help="keep every run's output folder under this folder (default: removed)")
    args = parser.parse_args()
    reason = unavailable() or ensure_iptables()
    if reason:
        print(f"bench/faults.py: cannot run: {reason}", file=sys.stderr)
        return 2
    rows = []
    reservation = reserve_domain_id()
    combos = [(s, m, p, loss) for s in args.scenarios for m in args.modes for p in args.plans for loss in args.losses]
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as scratch, HostSandbox(3) as sandbox:
            tmp = args.keep or scratch
            block_multicast(sandbox)
            for k, (name, mode, plans, loss) in enumerate(combos):
                folder = Path(tmp) / f"run{k}"
                row = one_run(sandbox, name, mode, loss, plans, args.steps, folder, reservation.domain_id,
                              args.timeout)
                rows.append(row)
                print(f"[{k + 1}/{len(combos)}, {time.monotonic() - started:.0f} s] {name} {mode} {plans} "
                      f"loss {loss:.0%}: {row['steps']} steps", file=sys.stderr, flush=True)
    finally:
        reservation.release()
    print(f"\n{len(args.scenarios)} scenario(s) over 3 network hosts (static peers, multicast dropped), "
          f"{args.steps} steps, loss on every inter-host link\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
