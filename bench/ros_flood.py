"""Benchmark: a rogue publisher floods agent 1's plan topic while `dmpc run mass_spring` negotiates (lock-step).

The flood cycles through plans the listeners (agents 0, 2, 3) must refuse: a wrong agent_id, a declared horizon of
10⁸, iteration 10⁶, step 10⁶. The DDS content filter of their subscriptions (ros/agent_node.PLAN_FILTER) drops
them before the bounded queues; what passes is refused by the node and counted in AgentStatus.messages_rejected.
Per flood rate, from the plant's step times (plant.npz) and the recorded statuses:
  step median   wall time per lock-step control step [ms], and its ratio to the run without a flood;
  identical     whether the trajectory equals the run without a flood to the last bit;
  refused       plans that reached agent 0 and were refused; missing: neighbour plans substituted after a deadline.
The flooder runs in this process (one core of two is shared with the run's 6 processes).
Usage: python bench/ros_flood.py [--rates 0 500 2000] [--steps 60]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rich.console import Console
from rich.table import Table

from dmpc_ros.ros.qos import plan_qos
from dmpc_ros_msgs.msg import PredictedTrajectory
from side_run import run_beside

GOOD = dict(horizon=20, state_dim=2, input_dim=1, states=[0.0] * 42, inputs=[0.0] * 20)
BAD = [PredictedTrajectory(agent_id=2, step=1, **GOOD),
       PredictedTrajectory(agent_id=1, step=1, horizon=10**8, state_dim=2, input_dim=1),
       PredictedTrajectory(agent_id=1, step=1, iteration=10**6, **GOOD),
       PredictedTrajectory(agent_id=1, step=10**6, **GOOD)]


@dataclass
class FloodRun:
    rate: float           # plans per second asked for
    sent: int
    x: np.ndarray         # the plant's trajectory
    step_median: float    # [s]
    refused: int          # messages_rejected summed over agent 0's statuses
    missing: int          # messages_missing summed over all statuses
    returncode: int
    output: str


def flood(domain_id: int, rate: float, stop: threading.Event, sent: list) -> None:
    """Publish BAD in turn on /dmpc/agent_1/plan at `rate` per second until `stop`."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node("flooder", namespace="/dmpc", context=context)
    publisher = node.create_publisher(PredictedTrajectory, "agent_1/plan", plan_qos("reliable"))
    started = time.monotonic()
    try:
        while not stop.is_set():
            publisher.publish(BAD[len(sent) % len(BAD)])
            sent.append(time.monotonic())
            delay = started + len(sent) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    except rclpy.exceptions.RCLError:   # the run's end took the participants down
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def flooded_run(rate: float, steps: int, output: Path, timeout: float = 600.0) -> FloodRun:
    """`dmpc run mass_spring --steps steps` with a flood of `rate` plans per second once all nodes are active."""
    command = [sys.executable, "-m", "dmpc_ros.cli", "run", "mass_spring", "--steps", str(steps), "--output",
               str(output), "--no-reference"]
    sent = []
    side = (lambda domain, stop: flood(domain, rate, stop, sent)) if rate > 0 else None
    returncode, text = run_beside(command, side, timeout)
    plant = np.load(output / "plant.npz")
    refused = missing = 0
    with (output / "run.mcap").open("rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        for _, channel, _, status in reader.iter_decoded_messages(
                topics=[f"/dmpc/agent_{i}/status" for i in range(4)]):
            refused += status.messages_rejected if status.agent_id == 0 else 0
            missing += status.messages_missing
    return FloodRun(rate, len(sent), plant["x"], float(np.median(np.diff(plant["wall_time"]))), refused, missing,
                    returncode, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[0, 500, 2000])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = [flooded_run(rate, args.steps, Path(folder) / f"rate_{rate:g}") for rate in sorted(set(args.rates))]
    quiet = runs[0]
    table = Table(title=f"mass_spring over ROS, lock-step, {args.steps} steps; flood on agent_1/plan")
    for column in ("plans/s asked", "plans sent", "step median", "× no flood", "identical", "refused", "missing"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(f"{run.rate:g}", str(run.sent), f"{1e3 * run.step_median:.1f} ms",
                      f"{run.step_median / quiet.step_median:.2f}",
                      "yes" if np.array_equal(run.x, quiet.x) else "NO", str(run.refused), str(run.missing))
    Console().print(table)
    if quiet.rate != 0:
        print("note: the first rate is the baseline of the ratios; include 0 for a run without a flood")


if __name__ == "__main__":
    main()
