"""Benchmark: the plant guards itself (sim/plant_inputs.py) in real ROS runs of `dmpc run mass_spring --mode real_time`.

Three runs, each in its own ROS domain with localhost discovery:
  forged    a rogue node publishes a ControlInput of 50 N on agent_1/control for every step (the limit is 1 N), twice
            a step so it would win over the agent's own; printed: the inputs refused (summary.json plant_inputs),
            the largest |u| applied and the largest |x|;
  killed    agent_1 is killed (SIGKILL) mid-run: the steps its last input stayed applied (the longest run of
            identical inputs of agent 1 after the kill) and the steps on the safe input, for the old rule
            (--stale-input-periods 0: held until the end) and the default (3 periods, then the terminal law);
  manager   the lifecycle manager is killed: how long until the plant process stops by itself, and its reason.
Before (f7b30e1 and earlier, measured for issue 27): the forged input was applied for 324 steps and x reached
85.7 m; a killed agent's last input stayed applied until shutdown; the plant ran all its steps without a manager.
The forged run uses mass_spring with a sample time of 0.3 s (--sample-time), the killed runs 1 s (--killed-sample-time,
agent killed 8 s after bring-up): at 0.1 s on this loaded 2-core machine most real-time inputs reached the plant
after their step before issue 27's point 5, and a late input is never applied, so there would be nothing to guard.
Usage: python bench/forged_input.py [--steps 120] [--sample-time 0.3] [--killed-sample-time 1.0]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from dmpc_ros.ros.qos import CONTROL_QOS, STATE_QOS
from dmpc_ros_msgs.msg import ControlInput, SubsystemState
from side_run import ACTIVE, DOMAIN, RunOutputs, run_beside

FORGED = 50.0   # [N] against the 1 N limit of mass_spring


@dataclass
class GuardedRun(RunOutputs):
    returncode: int
    output: str                # the runner's console
    folder: Path
    sent: int = 0              # forged inputs published
    seconds_to_stop: float | None = None   # manager killed → plant process gone
    killed_at: float | None = None         # time.monotonic() of the kill


def forge(domain_id: int, stop: threading.Event, sent: list) -> None:
    """For every state of agent 1, publish FORGED as its input for that step, at once and 30 ms later."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node("forger", namespace="/dmpc", context=context)
    publisher = node.create_publisher(ControlInput, "agent_1/control", CONTROL_QOS)
    due: list[tuple[float, int]] = []

    def on_state(message: SubsystemState) -> None:
        now = time.monotonic()
        due.extend([(now, message.step), (now + 0.03, message.step)])

    node.create_subscription(SubsystemState, "agent_1/state", on_state, STATE_QOS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.005)
            now = time.monotonic()
            for entry in [d for d in due if d[0] <= now]:
                due.remove(entry)
                publisher.publish(ControlInput(agent_id=1, step=entry[1], input=[FORGED]))
                sent.append(entry[1])
    except Exception:   # the run's end took the participants down (rclpy raises several kinds)
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def pid_of(pattern: str) -> int | None:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return int(found[0]) if len(found) == 1 else None


def scenario_with_sample_time(sample_time: float, folder: Path) -> Path:
    """mass_spring.yaml with another sample time, written into `folder`."""
    from dmpc_ros.scenarios.schema import scenario_path

    text = scenario_path("mass_spring").read_text()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mass_spring.yaml"
    path.write_text(re.sub(r"sample_time: [0-9.]+", f"sample_time: {sample_time}", text, count=1))
    return path


def guarded_run(action: str, steps: int, folder: Path, flags: tuple[str, ...] = (), after: float = 3.0,
                timeout: float = 300.0, scenario: str = "mass_spring", mode: str = "real_time",
                grace: float = 15.0) -> GuardedRun:
    """`dmpc run <scenario> --mode <mode>` with `action` (forged, killed, manager) `after` seconds past
    bring-up."""
    command = [sys.executable, "-m", "dmpc_ros.cli", "run", scenario, "--mode", mode, "--steps", str(steps),
               "--output", str(folder), "--no-reference", "--death-grace", str(grace), *flags]
    sent, result = [], {}

    def side(domain: int, stop: threading.Event) -> None:
        if action == "forged":
            forge(domain, stop, sent)
        else:
            kill_later(action, folder, after, result)

    # the forger joins the domain at once, so it is discovered during bring-up: a short lock-step run can otherwise
    # end before it has published anything
    code, text = run_beside(command, side, timeout, ready=DOMAIN if action == "forged" else ACTIVE)
    return GuardedRun(code, text, folder, len(sent), result.get("stop"), result.get("killed_at"))


def kill_later(action: str, folder: Path, after: float, result: dict) -> None:
    """SIGKILL agent_1 (killed) or the lifecycle manager (manager); for the manager, time the plant's own stop."""
    time.sleep(after)
    victim = pid_of(f"__node:={'agent_1' if action == 'killed' else 'lifecycle_manager'} .*{folder}")
    if victim is None:
        return
    os.kill(victim, signal.SIGKILL)
    result["killed_at"] = killed = time.monotonic()
    if action == "manager":
        while pid_of(f"__node:=plant .*{folder}") is not None and time.monotonic() - killed < 60:
            time.sleep(0.05)
        result["stop"] = time.monotonic() - killed


def held_steps(run: GuardedRun, agent: int = 1) -> tuple[int, int]:
    """(longest run of identical inputs of `agent` after the kill, steps on its safe input)."""
    plant = run.plant
    u, wall = plant["u"][:, agent], plant["wall_time"][: plant["u"].shape[0]]
    first = int(np.searchsorted(wall, run.killed_at)) if run.killed_at is not None else len(u)
    longest = current = 0
    for k in range(max(first, 1), len(u)):
        current = current + 1 if u[k] == u[k - 1] else 0
        longest = max(longest, current)
    counts = json.loads(str(plant["plant_inputs"]))
    return longest, counts["safe_input_steps"][agent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--sample-time", type=float, default=0.3)
    parser.add_argument("--killed-sample-time", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenario = str(scenario_with_sample_time(args.sample_time, folder / "scenario"))
        forged = guarded_run("forged", args.steps, folder / "forged", scenario=scenario)
        plant, counts = forged.plant, forged.summary["plant_inputs"]
        print(f"\nmass_spring (T = {args.sample_time:g} s) over ROS, real time, {args.steps} steps; {forged.sent} "
              f"forged 50 N inputs on agent_1/control (limit 1 N); {int(plant['late_inputs'])} late inputs")
        print("| figure | before (issue 27) | after |\n|---|---|---|")
        print(f"| forged inputs applied | 324 steps | 0 (refused: {counts['refused']['outside'][1]}) |")
        print(f"| max |u| applied [N] | 50 | {np.max(np.abs(plant['u'])):.3f} |")
        print(f"| max |x| [m] | 85.7 | {np.max(np.abs(plant['x'])):.3f} |")
        print(f"| summary complete / exit code | true / 0 (nothing said) | {forged.summary['complete']} / "
              f"{forged.returncode} |")

        slow = str(scenario_with_sample_time(args.killed_sample_time, folder / "slow"))
        old = guarded_run("killed", args.steps, folder / "killed_old", ("--stale-input-periods", "0"), after=8.0,
                          scenario=slow)
        new = guarded_run("killed", args.steps, folder / "killed_new", after=8.0, scenario=slow)
        (old_held, old_safe), (new_held, new_safe) = held_steps(old), held_steps(new)
        print(f"\nmass_spring (T = {args.killed_sample_time:g} s), real time: agent_1 killed (SIGKILL) 8 s after "
              "bring-up; the run goes on for the death grace (15 s)")
        print("| figure | before (stale inputs held) | after (default: 3 periods, terminal law) |\n|---|---|---|")
        print(f"| steps agent 1's last input stayed applied after the kill | {old_held} | {new_held} |")
        print(f"| steps on its safe input | {old_safe} | {new_safe} |")
        print(f"| steps done / late inputs | {int(old.plant['completed_steps'])} / {int(old.plant['late_inputs'])} | "
              f"{int(new.plant['completed_steps'])} / {int(new.plant['late_inputs'])} |")

        manager = guarded_run("manager", 100000, folder / "manager", grace=8.0)
        reason = next((line.strip() for line in manager.output.splitlines() if "stopping: no heartbeat" in line), "")
        print("\nlifecycle manager killed (SIGKILL) 3 s after bring-up, manager_timeout 5 s (default)")
        print("| figure | before (issue 27) | after |\n|---|---|---|")
        seconds = "never" if manager.seconds_to_stop is None else f"{manager.seconds_to_stop:.1f} s"
        print(f"| plant stopped by itself after | never (ran all its steps) | {seconds} |")
        print(f"| steps written | — | {int(manager.plant['completed_steps'])} |")
        print(f"\nthe plant's line: {reason}")


if __name__ == "__main__":
    main()
