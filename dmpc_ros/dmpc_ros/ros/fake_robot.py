"""`ros2 run dmpc_ros fake_robot`: a stand-in for a differential-drive robot base (TurtleBot class) in tests
and demos. It integrates the unicycle ẋ = v cos θ, ẏ = v sin θ, θ̇ = ω exactly from the last `cmd_vel` (Twist)
and publishes `odom` (nav_msgs/Odometry) with Gaussian noise, a latency and random drops; like a real base it
stops when no command came for `command_timeout`. It can record its true trajectory (npz) for the test's figures.
"""
from __future__ import annotations

import collections
import math
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from .parameters import check_parameters, declare_parameters
from .qos import CONTROL_QOS, ROBOT_STATE_QOS
from .spin import init_node_process, spin_node


def unicycle_step(pose: np.ndarray, v: float, omega: float, dt: float) -> np.ndarray:
    """The exact pose after dt at constant (v, ω): along an arc (a line when ω = 0)."""
    x, y, theta = pose
    if abs(omega) < 1e-9:
        return np.array([x + v * dt * math.cos(theta), y + v * dt * math.sin(theta), theta])
    turned = theta + omega * dt
    return np.array([x + v / omega * (math.sin(turned) - math.sin(theta)),
                     y - v / omega * (math.cos(turned) - math.cos(theta)), math.atan2(math.sin(turned),
                                                                                      math.cos(turned))])


class FakeRobot(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("fake_robot", **kwargs)
        declare_parameters(self, "fake_robot")
        check_parameters(self, "fake_robot")
        value = lambda name: self.get_parameter(name).value  # noqa: E731
        self.pose = np.array([value("x"), value("y"), value("yaw")], float)
        self.command = (0.0, 0.0)
        self.commanded_at = -math.inf
        self.random = np.random.default_rng(value("seed"))
        self.queue: collections.deque = collections.deque()   # (due time, message)
        self.history: list[tuple[float, ...]] = []
        self.period = 1.0 / value("rate")
        self.started = time.monotonic()
        self.finished = False
        self.publisher = self.create_publisher(Odometry, "odom", ROBOT_STATE_QOS)
        self.create_subscription(Twist, "cmd_vel", self._on_command, CONTROL_QOS)
        self.create_timer(self.period, self._step, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _on_command(self, message: Twist) -> None:
        v, omega = message.linear.x, message.angular.z
        if math.isfinite(v) and math.isfinite(omega):
            self.command, self.commanded_at = (v, omega), time.monotonic()

    def _step(self) -> None:
        now = time.monotonic()
        v, omega = self.command if now - self.commanded_at <= self.get_parameter("command_timeout").value else (0, 0)
        self.pose = unicycle_step(self.pose, v, omega, self.period)
        self.history.append((time.time(), *self.pose, v, omega))
        if self.random.random() >= self.get_parameter("drop_probability").value:
            self.queue.append((now + self.get_parameter("latency").value, self._odometry(v, omega)))
        while self.queue and self.queue[0][0] <= now:
            self.publisher.publish(self.queue.popleft()[1])
        duration = self.get_parameter("duration").value
        self.finished = duration > 0 and now - self.started >= duration

    def _odometry(self, v: float, omega: float) -> Odometry:
        sigma = self.get_parameter("position_noise").value
        noise = self.random.normal(0.0, [sigma, sigma, self.get_parameter("heading_noise").value])
        x, y, theta = self.pose + noise
        message = Odometry()
        message.header.stamp = self.get_clock().now().to_msg()
        message.header.frame_id, message.child_frame_id = "odom", "base_link"
        message.pose.pose.position.x, message.pose.pose.position.y = float(x), float(y)
        message.pose.pose.orientation.z, message.pose.pose.orientation.w = math.sin(theta / 2), math.cos(theta / 2)
        message.twist.twist.linear.x, message.twist.twist.angular.z = float(v), float(omega)
        return message

    def write_output(self) -> None:
        path = self.get_parameter("output_file").value
        if path and self.history:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            t, x, y, yaw, v, omega = np.array(self.history).T
            np.savez(path, t=t, x=x, y=y, yaw=yaw, v=v, omega=omega)


def main(argv: list[str] | None = None) -> int:
    init_node_process(argv)
    node = FakeRobot()
    spin_node(node, lambda: node.finished)   # destroys the node: write from what it kept
    node.write_output()
    return 0
