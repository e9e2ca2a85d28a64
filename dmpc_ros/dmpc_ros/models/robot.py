"""What an agent in robot mode reads from and sends to a real robot base: its pose (nav_msgs/Odometry or
geometry_msgs/PoseStamped) as the model's state, and its input as a velocity command (geometry_msgs/Twist).

A differential-drive base (TurtleBot class) is a unicycle: states (x, y, θ) in the fixed frame, inputs (v, ω);
cmd_vel carries v as linear.x [m/s] and ω as angular.z [rad/s] (REP 103 base frame)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnicycleBase:
    position: tuple[int, int] = (0, 1)   # state indices of x, y [m]
    heading: int = 2                     # state index of θ [rad]
    speed: int = 0                       # input index of v [m/s]
    turn_rate: int = 1                   # input index of ω [rad/s]

    def state(self, n_x: int, x: float, y: float, yaw: float) -> np.ndarray:
        """The model state of a measured pose (θ wrapped to (−π, π])."""
        state = np.zeros(n_x)
        state[list(self.position)] = x, y
        state[self.heading] = float(np.angle(np.exp(1j * yaw)))
        return state

    def command(self, u: np.ndarray) -> tuple[float, float]:
        """(v, ω) of an input vector."""
        return float(u[self.speed]), float(u[self.turn_rate])
