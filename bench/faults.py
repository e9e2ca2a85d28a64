"""Benchmark: a team split over three network hosts (hosts/: namespaces on a bridge, static peers, multicast dropped)
with packet loss on every inter-host link (iptables statistic match), against the same team with no loss.

For each scenario, mode (lock_step, real_time), loss rate and plan transport it prints one row:
  plans      reliable (fast repair: 20 ms heartbeats, the default across computers), reliable with Fast DDS's own
             3 s heartbeat (--repair-period 0), best_effort, best_effort_deadline (the DDS deadline policy at one
             sample time: a neighbour silent that long is given up for the step at once in real time);
  steps      the steps done in the run's time limit (a stalled run does fewer);
  step [s]   median and max wall time per plant step (lock-step: how long the team took to decide);
  viol       max constraint violation; outside U: applied inputs outside the input set; NaN: non-finite inputs;
  cost       closed-loop cost against the loss-free run of the same mode and transport, and what `dmpc sim`
             predicts with the same hosts and link loss (sim/network.py: best-effort plans lost, reliable ones late);
  missing    neighbour plans substituted after the agent's timeout (AgentStatus.messages_missing, summed);
  deadlines  best_effort_deadline: the middleware's missed-deadline events on plan topics (counter plan_deadlines);
  late       inputs that reached the plant after their step (real time);
  outage     tube mode: the longest run of steps an agent went without a required neighbour's plan of the step
             (counter plan_outage_steps) against the fault bound D (controller.tube.missed_steps);
  dropped    packets the hosts' loss rules dropped.
The kernel has no netem, so the links lose packets but add no delay; delay is the agents' own plan hold (plan_delay).
Usage: python bench/faults.py [--scenarios platoon_robust platoon] [--modes lock_step real_time]
                              [--losses 0 0.1 0.3] [--plans reliable stock best_effort] [--steps 40]
       python bench/faults.py --scenarios platoon_robust --vehicles 24 --agents-per-process 8   # at scale
Needs root (network namespaces, iptables: installed with apt-get when missing).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
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
         "best_effort": ("--plan-qos", "best_effort"), "best_effort_deadline": ("--plan-qos", "best_effort_deadline")}
PLANS_TEXT = {"reliable": "reliable, 20 ms repair", "stock": "reliable, Fast DDS 3 s", "best_effort": "best effort",
              "best_effort_deadline": "best effort + deadline Δt"}


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


def platoon_of(vehicles: int, name: str, folder: Path) -> str:
    """The platoon scenario `name` with `vehicles` vehicles (every time constant 0.45 s; a tube scenario's disturbance
    bound a fifth of platoon_robust's), written into `folder`."""
    from dmpc_ros.scenarios.schema import scenario_path

    text = scenario_path(name).read_text()
    text = re.sub(r"count: \d+", f"count: {vehicles}", text, count=1)
    text = re.sub(r"time_constant: \[[^\]]*\]", "time_constant: 0.45", text, count=1)
    # tubes grow along the chain: a long tube platoon needs a smaller disturbance set to leave room for inputs
    text = re.sub(r"disturbance_bound: \{[^}]*\}", "disturbance_bound: {v: 0.002, a: 0.01}", text, count=1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_{vehicles}.yaml"
    path.write_text(text)
    return str(path)


def one_run(sandbox: HostSandbox, name: str, mode: str, loss: float, plans: str, steps: int, folder: Path,
            domain_id: int, timeout: float, per_process: int = 1) -> dict:
    scenario = load_source(name)
    set_link_loss(sandbox, loss)
    before = drop_counts(sandbox)
    runs = split_run(sandbox, name, placement(scenario.num_agents), folder, domain_id, timeout=timeout,
                     flags=("--no-reference", "--steps", str(steps), "--mode", mode, *PLANS[plans],
                            "--agents-per-process", str(per_process)))
    after = drop_counts(sandbox)
    dropped = sum(after[h]["loss"] - before[h]["loss"] for h in after)
    row = {"scenario": f"{scenario.name} ({scenario.num_agents})", "mode": mode, "loss": loss, "plans": plans,
           "dropped": dropped, "exit": {h: r.returncode for h, r in runs.items()}}
    if not (folder / "summary.json").is_file():
        return {**row, "steps": 0}
    summary = json.loads((folder / "summary.json").read_text())
    trajectory, plant = np.load(folder / "trajectory.npz"), np.load(folder / "plant.npz")
    u = trajectory["u"]
    wall = np.diff(plant["wall_time"]) if plant["wall_time"].size > 1 else np.zeros(1)
    stale = trajectory["counter_plan_outage_steps"] if "counter_plan_outage_steps" in trajectory.files else None
    deadlines = int(np.sum(trajectory["counter_plan_deadlines"])) if "counter_plan_deadlines" in trajectory.files \
        else None
    row |= sim_prediction(name, scenario.num_agents, mode, loss, plans, steps, folder / "sim")
    return {**row, "steps": int(u.shape[0]), "cost": summary["closed_loop_cost"],
            "violation": summary["max_constraint_violation"], "nan": int(np.sum(~np.isfinite(u))),
            "outside": outside_input_set(scenario, u), "missing": summary["messages_missing"],
            "late": summary["late_inputs"], "step_median": float(np.median(wall[1:] if wall.size > 1 else wall)),
            "step_max": float(np.max(wall[1:] if wall.size > 1 else wall)),
            "outage": None if stale is None else int(stale.max()), "deadlines": deadlines,
            "bound": fault_bound(scenario)}


def sim_prediction(source: str, agents: int, mode: str, loss: float, plans: str, steps: int, folder: Path) -> dict:
    """`dmpc sim` with the same hosts and loss on the links between them (sim/network.py: best_effort plans are lost,
    reliable ones late): its cost and substituted plans, the prediction printed beside the ROS run. The in-process
    agents take no simulated time to compute, so it predicts the network's part, not the machine's."""
    hosts = "/".join(",".join(str(a) for a in block) for block in np.array_split(np.arange(agents), 3))
    model = "reliable" if plans in ("reliable", "stock") else "best_effort"
    command = [sys.executable, "-m", "dmpc_ros.cli", "sim", source, "--steps", str(steps), "--no-reference",
               "--output", str(folder), "--hosts", hosts, "--link-loss", str(loss), "--loss-model", model]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode not in (0, 3) or not (folder / "summary.json").is_file():
        return {"sim_cost": None, "sim_missing": None, "sim_error": (done.stderr or done.stdout).strip()[-200:]}
    summary = json.loads((folder / "summary.json").read_text())
    return {"sim_cost": summary["closed_loop_cost"], "sim_missing": summary["messages_missing"],
            "sim_violation": summary["max_constraint_violation"]}


def fault_bound(scenario) -> int | None:
    """D of a tube-mode scenario (controller.tube.missed_steps); None for nominal DMPC."""
    tubes = scenario.design().tubes
    return None if tubes is None or tubes.compatibility is None else tubes.compatibility.missed_steps


def relative(value: float | None, zero: float | None) -> str:
    return f"{100 * (value / zero - 1):+.2f} %" if value is not None and zero else "—"


def table(rows: list[dict]) -> str:
    lines = ["| scenario | mode | loss | plans | steps | step [s] median / max | viol | outside U | NaN | cost vs 0 % "
             "| dmpc sim: cost vs 0 % | missing (sim) | deadlines | late | outage / D | dropped |", "|" + "---|" * 16]
    base = {(r["scenario"], r["mode"], r["plans"]): r.get("cost") for r in rows if r["loss"] == 0 and r["steps"]}
    done = {(r["scenario"], r["mode"], r["plans"]): r["steps"] for r in rows if r["loss"] == 0}
    sim_base = {(r["scenario"], r["mode"], r["plans"]): r.get("sim_cost") for r in rows if r["loss"] == 0}
    for r in rows:
        if not r["steps"]:
            lines.append(f"| {r['scenario']} | {r['mode']} | {r['loss']:.0%} | {PLANS_TEXT[r['plans']]} | 0 "
                         f"(exit {r['exit']}) | | | | | | | | | | {r['dropped']} |")
            continue
        key = (r["scenario"], r["mode"], r["plans"])
        cost, sim_cost = relative(r["cost"], base.get(key)), relative(r.get("sim_cost"), sim_base.get(key))
        if r["steps"] != done.get(key, r["steps"]):   # a stalled run's cost covers fewer steps: not comparable
            cost = f"— ({r['steps']} steps)"
        outage = "—" if r["outage"] is None else f"{r['outage']} / {'—' if r['bound'] is None else r['bound']}"
        lines.append(f"| {r['scenario']} | {r['mode']} | {r['loss']:.0%} | {PLANS_TEXT[r['plans']]} | {r['steps']} "
                     f"| {r['step_median']:.3f} / {r['step_max']:.2f} | {r['violation']:.1e} | {r['outside']} "
                     f"| {r['nan']} | {cost} | {sim_cost} | {r['missing']} ({r.get('sim_missing', '—')}) "
                     f"| {'—' if r.get('deadlines') is None else r['deadlines']} | {r['late']} | {outage} "
                     f"| {r['dropped']} |")
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
    parser.add_argument("--vehicles", type=int, help="platoon scenarios with this many vehicles (e.g. 24)")
    parser.add_argument("--agents-per-process", type=int, default=1, help="agents hosted per process on each host")
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
                source = platoon_of(args.vehicles, name, Path(tmp) / "scenarios") if args.vehicles else name
                row = one_run(sandbox, source, mode, loss, plans, args.steps, folder, reservation.domain_id,
                              args.timeout, args.agents_per_process)
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
