"""Robot mode of an agent: its state from the robot's odometry (nav_msgs/Odometry) or pose
(geometry_msgs/PoseStamped) on `agent_<i>/odom` / `agent_<i>/pose`, its input to the base as geometry_msgs/Twist on
`agent_<i>/cmd_vel` (remap them to the robot's topics), steps ticked by the wall clock, and a watchdog that
commands zero velocity when the pose is stale, a neighbour has gone silent or the step's command missed its deadline.
"""
from __future__ import annotations

import math
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry

from ..scenarios import UnicycleBase

STATE_MESSAGES = {"odometry": (Odometry, "odom"), "pose": (PoseStamped, "pose")}


def yaw_of(qx: float, qy: float, qz: float, qw: float) -> float:
    """Yaw [rad] of a pose message's unit quaternion (rotation about z of the ZYX Euler angles)."""
    return float(np.arctan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz)))


class RobotLink:
    """The robot side of one agent node: latest pose, the cmd_vel publisher and the watchdog's counts."""

    def __init__(self, node, topic, base: UnicycleBase, n_x: int, state_message: str, state_qos,
                 command_qos) -> None:
        message_type, leaf = STATE_MESSAGES[state_message]
        self.base, self.n_x = base, n_x
        self.pose: tuple[float, float, float] | None = None
        self.received = -math.inf   # time.time() of the last pose
        self.subscription = node.create_subscription(message_type, topic(leaf), self._on_pose, state_qos)
        self.publisher = node.create_lifecycle_publisher(Twist, topic("cmd_vel"), command_qos)
        self.deadline_misses = 0
        self.stops = 0   # this step's

    def _on_pose(self, message) -> None:
        pose = message.pose.pose if isinstance(message, Odometry) else message.pose
        values = (pose.position.x, pose.position.y, pose.orientation.x, pose.orientation.y, pose.orientation.z,
                  pose.orientation.w)
        if not all(math.isfinite(v) for v in values):
            return   # never a NaN into the state
        self.pose = (pose.position.x, pose.position.y, yaw_of(*values[2:]))
        self.received = time.time()

    def state(self, now: float, timeout: float) -> np.ndarray | None:
        """The model state of the latest pose, or None when there is none younger than `timeout`."""
        if self.pose is None or now - self.received > timeout:
            return None
        return self.base.state(self.n_x, *self.pose)

    def drive(self, u: np.ndarray) -> None:
        v, omega = self.base.command(u)
        message = Twist()
        message.linear.x, message.angular.z = v, omega
        self.publisher.publish(message)

    def stop(self) -> None:
        """Zero velocity (the watchdog's command)."""
        self.publisher.publish(Twist())
        self.stops += 1
