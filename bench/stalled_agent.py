"""One stalled agent in a real-time run: what it costs the others.

Runs `dmpc run SCENARIO --mode real_time` (its own ROS domain, localhost discovery), stops one agent process with
SIGSTOP for a few seconds in the middle of the run, lets it go on (SIGCONT), and prints from the run's outputs: the
inputs the plant received after their step (late), the plans the other agents replaced after a timeout (missing),
and the steps in which each agent's input was late.

    python bench/stalled_agent.py [--scenario mass_spring] [--steps 150] [--victim 2] [--stop-after 4] [--stall 5]
                                  [--plan-qos reliable|best_effort|best_effort_deadline]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from side_run import run_beside

HERE = Path(__file__).resolve().parent
DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


def victim_pid(victim: int, output: Path, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", f"__node:=agent_{victim} .*{output}"], capture_output=True,
                               text=True).stdout.split()
        if len(found) == 1:
            return int(found[0])
        time.sleep(0.2)
    raise SystemExit(f"agent_{victim}'s process not found within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="mass_spring")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--victim", type=int, default=2)
    parser.add_argument("--stop-after", type=float, default=2.0, help="seconds after the nodes are active [s]")
    parser.add_argument("--stall", type=float, default=5.0, help="how long the victim is stopped [s]")
    parser.add_argument("--plan-qos", default="best_effort", help="the plans' QoS (dmpc run --plan-qos)")
    args = parser.parse_args()
    output = Path(tempfile.mkdtemp(prefix="dmpc-stalled-")) / "run"
    command = DMPC + ["run", args.scenario, "--mode", "real_time", "--steps", str(args.steps), "--output",
                      str(output), "--no-reference", "--plan-qos", args.plan_qos]

    def stall(domain: int, stop) -> None:   # inside the run, not its bring-up (which takes 10-20 s here)
        pid = victim_pid(args.victim, output)
        time.sleep(args.stop_after)
        print(f"stopping agent_{args.victim} (pid {pid}) for {args.stall:g} s", flush=True)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(args.stall)
        os.kill(pid, signal.SIGCONT)

    code, log = run_beside(command, stall, timeout=900)
    plant = np.load(output / "plant.npz")
    summary_missing = sum(1 for line in log.splitlines() if "no plan from" in line)
    print(f"\nscenario {args.scenario}, real time, plans {args.plan_qos}, {int(plant['completed_steps'])} of "
          f"{args.steps} steps, "
          f"agent_{args.victim} stopped {args.stall:g} s")
    print("| figure | value |\n|---|---|")
    print(f"| inputs that reached the plant after their step (late_inputs) | {int(plant['late_inputs'])} |")
    per_agent = ", ".join(f"agent {i}: {n}" for i, n in enumerate(plant["late_inputs_per_agent"]))
    print(f"| late inputs per agent | {per_agent} |")
    print(f"| inputs refused by the plant | {int(plant['refused_inputs'])} |")
    summary = json.loads((output / "summary.json").read_text())
    print(f"| plans substituted (messages_missing) | {summary['messages_missing']} |")
    deadlines = summary["counters"].get("plan_deadlines", "—")
    print(f"| missed plan deadlines (plan_qos best_effort_deadline) | {deadlines} |")
    print(f"| 'no plan from' warnings of the other agents (throttled, ≤ 1/s each) | {summary_missing} |")
    wall = np.diff(plant["wall_time"])
    print(f"| plant period [ms]: median / max | {1e3 * np.median(wall):.1f} / {1e3 * np.max(wall):.1f} |")
    print(f"\noutputs: {output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
