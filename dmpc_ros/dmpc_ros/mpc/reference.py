"""Reference trajectories (setpoints x̄(k), ū(k)) every agent knows in advance, e.g. from the scenario file.

A constant setpoint is a trajectory of one sample; a speed profile or a formation path is sampled once per
control step. Beyond the last sample the reference holds its last value, so an MPC horizon that looks past
the end of a run still has a target (the preview the predictive controller uses to anticipate changes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReferenceTrajectory:
    """x̄(k) = states[k], ū(k) = inputs[k] for k = 0..S−1; held at sample S−1 afterwards."""

    states: np.ndarray   # S × n
    inputs: np.ndarray   # S × m

    def __post_init__(self) -> None:
        if self.states.ndim != 2 or self.inputs.ndim != 2 or self.states.shape[0] != self.inputs.shape[0] \
                or self.states.shape[0] < 1:
            raise ValueError(f"reference needs S × n states and S × m inputs with the same S ≥ 1, got "
                             f"{self.states.shape} and {self.inputs.shape}")
        if not (np.all(np.isfinite(self.states)) and np.all(np.isfinite(self.inputs))):
            raise ValueError("reference values must be finite")

    @staticmethod
    def constant(x_ref: np.ndarray, u_ref: np.ndarray) -> "ReferenceTrajectory":
        return ReferenceTrajectory(np.atleast_2d(np.asarray(x_ref, float)), np.atleast_2d(np.asarray(u_ref, float)))

    @property
    def is_constant(self) -> bool:
        return bool(np.all(self.states == self.states[0]) and np.all(self.inputs == self.inputs[0]))

    def at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(x̄(step), ū(step))."""
        k = min(max(step, 0), self.states.shape[0] - 1)
        return self.states[k], self.inputs[k]

    def window(self, step: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """(x̄(step..step+N): N+1 × n, ū(step..step+N−1): N × m), the targets of the horizon starting at step."""
        last = self.states.shape[0] - 1
        if last == 0:   # one sample (a constant setpoint): the same rows at every step, no indexing
            return (np.broadcast_to(self.states[0], (horizon + 1, self.states.shape[1])),
                    np.broadcast_to(self.inputs[0], (horizon, self.inputs.shape[1])))
        index = np.clip(step + np.arange(horizon + 1), 0, last)
        return self.states[index], self.inputs[index[:-1]]

    def block(self, states: slice, inputs: slice) -> "ReferenceTrajectory":
        """The columns of one agent's states and inputs."""
        return ReferenceTrajectory(self.states[:, states], self.inputs[:, inputs])
