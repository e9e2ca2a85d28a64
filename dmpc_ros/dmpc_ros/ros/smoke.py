"""Smoke demo: two nodes in separate processes exchange dmpc_ros_msgs/PredictedTrajectory over DDS.

`smoke_talker` announces a predicted trajectory (the free response of a damped mass-spring oscillator,
or a message given as JSON) a few times per second; `smoke_listener` prints what it receives and can
dump it as JSON lines. Used by `dmpc demo` and by the transport tests.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from dmpc_ros_msgs.msg import PredictedTrajectory

from .conversions import dict_to_message, message_to_dict

TOPIC = "smoke/plan"
QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)


def oscillator_plan(sequence: int, horizon: int = 5, sample_time: float = 0.1) -> dict[str, Any]:
    """A plan for the demo: free response of x'' = -4 x - 0.4 x' from x = (1 - 0.1*sequence, 0)."""
    omega, zeta = 2.0, 0.1
    damped = omega * math.sqrt(1 - zeta**2)
    x0 = 1.0 - 0.1 * sequence
    states = []
    for i in range(horizon + 1):
        t = i * sample_time
        envelope = x0 * math.exp(-zeta * omega * t)
        position = envelope * (math.cos(damped * t) + zeta * omega / damped * math.sin(damped * t))
        velocity = -x0 * omega**2 / damped * math.exp(-zeta * omega * t) * math.sin(damped * t)
        states += [position, velocity]
    return {
        "agent_id": 1,
        "step": sequence,
        "iteration": 0,
        "sample_time": sample_time,
        "horizon": horizon,
        "state_dim": 2,
        "input_dim": 1,
        "states": states,
        "inputs": [0.0] * horizon,
        "local_cost": sum(s * s for s in states),
        "feasible": True,
        "converged": True,
    }


def spin_until(executor: SingleThreadedExecutor, done) -> None:
    """Spin with short timeouts until done() holds or the context shuts down (SIGINT/SIGTERM)."""
    try:
        while rclpy.ok() and not done():
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


def talker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Publish PredictedTrajectory messages on /smoke/plan.")
    parser.add_argument("--plan-json", type=Path,
                        help="publish this message (JSON of its fields) instead of the oscillator plan")
    parser.add_argument("--rate", type=float, default=10.0, help="publish rate [Hz]")
    parser.add_argument("--count", type=int, default=0, help="stop after this many messages (0: until interrupted)")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = Node("smoke_talker")
    publisher = node.create_publisher(PredictedTrajectory, TOPIC, QOS)
    fixed = json.loads(args.plan_json.read_text()) if args.plan_json else None
    sent = [0]

    def publish() -> None:
        values = fixed if fixed is not None else oscillator_plan(sent[0])
        message = dict_to_message(PredictedTrajectory, values)
        message.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(message)
        sent[0] += 1
        print(f"sent plan #{sent[0]}: agent {message.agent_id}, step {message.step}, "
              f"{len(message.states)} state values, {len(message.inputs)} input values", flush=True)

    node.create_timer(1.0 / args.rate, publish)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin_until(executor, lambda: args.count and sent[0] >= args.count)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def listener_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print PredictedTrajectory messages received on /smoke/plan.")
    parser.add_argument("--count", type=int, default=3, help="exit after this many messages")
    parser.add_argument("--dump", type=Path, help="append each received message as a JSON line to this file")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = Node("smoke_listener")
    received: list[dict[str, Any]] = []

    def on_plan(message: PredictedTrajectory) -> None:
        values = message_to_dict(message)
        received.append(values)
        print(
            f"received plan #{len(received)}: agent {message.agent_id}, step {message.step}, "
            f"iteration {message.iteration}, N={message.horizon}, n_x={message.state_dim}, "
            f"x(k)={list(message.states[: message.state_dim])}, cost={message.local_cost:.4f}",
            flush=True,
        )
        if args.dump:
            with args.dump.open("a") as handle:
                handle.write(json.dumps(values) + "\n")

    node.create_subscription(PredictedTrajectory, TOPIC, on_plan, QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin_until(executor, lambda: len(received) >= args.count)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0 if len(received) >= args.count else 1


def main() -> int:
    """`python -m dmpc_ros.ros.smoke talker|listener [options]`."""
    roles = {"talker": talker_main, "listener": listener_main}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        print(f"usage: python -m dmpc_ros.ros.smoke {{{'|'.join(roles)}}} [options]", file=sys.stderr)
        return 2
    return roles[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
