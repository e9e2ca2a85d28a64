"""Robot mode of an agent: its state from the robot's odometry (nav_msgs/Odometry) or pose
(geometry_msgs/PoseStamped) on `agent_<i>/odom` / `agent_<i>/pose`, its input to the base as geometry_msgs/Twist on
`agent_<i>/cmd_vel` (remap them to the robot's topics), steps ticked by the wall clock, and a watchdog that
commands zero velocity when the pose is stale, a neighbour has gone silent or the step's command missed its deadline.
Every command first passes the plant's rules (sim/plant_inputs.py): an input out of U_i is refused (the robot is
stopped), what is sent is clamped to U_i and rate-limited (input_rate_limit), and a command older than
stale_input_periods sample periods is followed by a stop (the robot's safe input: zero velocity).
"""
from __future__ import annotations

import math
import time

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry

from ..coordination.negotiator import RobotTiming
from ..scenarios import UnicycleBase
from ..sim.plant_inputs import InputRules, PlantInputs

STATE_MESSAGES = {"odometry": (Odometry, "odom"), "pose": (PoseStamped, "pose")}


def yaw_of(qx: float, qy: float, qz: float, qw: float) -> float:
    """Yaw [rad] of a pose message's unit quaternion (rotation about z of the ZYX Euler angles)."""
    return float(np.arctan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz)))


class RobotLink:
    """The robot side of one agent node: latest pose, the cmd_vel publisher and the watchdog's counts."""

    def __init__(self, node, topic, base: UnicycleBase, n_x: int, state_message: str, state_qos,
                 command_qos, subsystem=None, sample_time: float = 1.0) -> None:
        message_type, leaf = STATE_MESSAGES[state_message]
        self.base, self.n_x = base, n_x
        self.pose: tuple[float, float, float] | None = None
        self.received = -math.inf   # time.time() of the last pose
        self.subscription = node.create_subscription(message_type, topic(leaf), self._on_pose, state_qos)
        self.publisher = node.create_lifecycle_publisher(Twist, topic("cmd_vel"), command_qos)
        self.deadline_misses = 0
        self.stops = 0   # this step's
        self.sample_time, self.commanded = sample_time, None   # time.time() of the last command sent
        self.stale_stops = 0   # stops because the last command grew older than stale_input_periods
        self.guard = None if subsystem is None else PlantInputs([subsystem], InputRules(
            float(node.get_parameter("input_rate_limit").value),
            float(node.get_parameter("stale_input_periods").value), "zero"))
        self._logger = node.get_logger()

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
        if self.guard is not None:
            now = time.time() / self.sample_time
            reason = self.guard.offer(0, u, now=now)
            if reason is not None:
                self._logger.warning(f"{reason}; the robot is stopped", throttle_duration_sec=1.0)
                self.stop()
                return
            u = self.guard.apply(now=now)
        self.commanded = time.time()
        v, omega = self.base.command(u)
        message = Twist()
        message.linear.x, message.angular.z = v, omega
        self.publisher.publish(message)

    def stop(self) -> None:
        """Zero velocity (the watchdog's command); a rate limit ramps the next command up from it."""
        self.publisher.publish(Twist())
        self.stops += 1
        self.commanded = None
        if self.guard is not None:
            self.guard.applied[0] = np.zeros(self.guard.guards[0].size)

    def watch(self, now: float) -> None:
        """A command older than stale_input_periods sample periods (UNIX time `now`): stop, once."""
        periods = 0.0 if self.guard is None else self.guard.rules.stale_periods
        if periods > 0 and self.commanded is not None and now - self.commanded > periods * self.sample_time:
            self.stale_stops += 1
            self.stop()

    def counts(self) -> str:
        """The guard's counts for the end-of-run log line."""
        if self.guard is None:
            return ""
        return (f", {self.guard.refused} commands refused, {self.stale_stops} stops after a stale command, "
                f"{int(self.guard.rate_limited[0])} rate-limited")


def robot_link_of(node, scenario, topic, state_qos, command_qos) -> RobotLink:
    """The robot link of an agent node (its design built, parameter robot_state read): ValueError naming the
    parameter when the scenario has no robot base or the state message is unknown."""
    base = scenario.family.robot_base(scenario)
    if base is None:
        raise ValueError(f"parameter robot_mode: true is not allowed: scenario {scenario.name} (model.type "
                         f"{scenario.family.name}) has no robot base; robot mode needs a model whose agents are "
                         "robots, e.g. the nonlinear unicycle_formation")
    choice = node.get_parameter("robot_state").value
    if choice not in STATE_MESSAGES:
        raise ValueError(f"parameter robot_state: '{choice}' is not allowed: must be one of "
                         f"{', '.join(STATE_MESSAGES)}")
    design, me = node.design, node.agent_id
    limits = getattr(design, "applied_limits", None) or design.system.subsystems   # the real U_i
    return RobotLink(node, topic, base, design.system.subsystems[me].n_x, choice, state_qos, command_qos, limits[me],
                     design.system.sample_time)


def robot_timing(parameter, sample_time: float) -> RobotTiming:
    """The negotiator's robot schedule from an agent node's parameters (`parameter(name)` → value)."""
    dt = sample_time
    return RobotTiming(dt, float(parameter("start_time")), float(parameter("state_timeout")) or 3 * dt,
                       float(parameter("neighbour_timeout")) or 3 * dt, float(parameter("command_deadline")) * dt)
