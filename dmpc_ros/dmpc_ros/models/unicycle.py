"""Differential-drive (unicycle) robots driven by the formation's double-integrator agents.

Unicycle: ẋ = v cos θ, ẏ = v sin θ, θ̇ = ω. The look-ahead point P = (x + l cos θ, y + l sin θ) at distance l > 0
in front of the axle has Ṗ = R(θ) diag(1, l) (v, ω)', an invertible map, so commanding
    (v, ω) = diag(1, 1/l) R(θ)' w
makes Ṗ = w exactly (feedback linearization of the output P; the heading is left to follow). A formation agent
plans P as a double integrator with acceleration u; over one sample [kT, (k+1)T) the robot tracks the velocity
w(t) = ṗ_k + u (t − kT), re-evaluating (v, ω) from the current heading at its own (faster) control rate, so P
moves exactly as the agent's prediction.
"""
from __future__ import annotations

import numpy as np


def lookahead_point(pose: np.ndarray, lookahead: float) -> np.ndarray:
    """P = (x + l cos θ, y + l sin θ) of pose (x, y, θ)."""
    x, y, theta = pose
    return np.array([x + lookahead * np.cos(theta), y + lookahead * np.sin(theta)])


def wheel_command(pose: np.ndarray, velocity: np.ndarray, lookahead: float) -> tuple[float, float]:
    """(v [m/s], ω [rad/s]) that move the look-ahead point with `velocity` (2,) [m/s]."""
    if lookahead <= 0:
        raise ValueError(f"look-ahead distance must be > 0, got {lookahead}")
    theta = pose[2]
    c, s = np.cos(theta), np.sin(theta)
    v = c * velocity[0] + s * velocity[1]
    omega = (-s * velocity[0] + c * velocity[1]) / lookahead
    return float(v), float(omega)
