"""What a plant accepts as a subsystem's input: the rule the ROS plant node applies to every ControlInput.

The agents already guard what they send (coordination/safe_input.py: finite, inside U_i), but the plant is the last
line: a ControlInput that is not finite, has the wrong size, or lies outside U_i (with the mixed rows at the current
state) beyond the agents' own clean-up tolerance is refused and counted, and the subsystem keeps its last accepted
input. Before any input is accepted the plant holds the input of U_i nearest to zero. Inputs the agents send are
inside U_i, so the rule never changes what a fault-free run applies (a lock-step run stays equal to `dmpc sim`).
"""
from __future__ import annotations

import numpy as np

from ..coordination.safe_input import CLEAN_UP, InputGuard


class PlantInputs:
    """The held input of each subsystem and the count of refused ones."""

    def __init__(self, subsystems) -> None:
        self.guards = [InputGuard.of(subsystem) for subsystem in subsystems]
        self.held = [guard.nearest(np.zeros(guard.size)) for guard in self.guards]
        self.refused = 0

    def offer(self, agent: int, u, state: np.ndarray | None = None) -> str | None:
        """Take `u` as subsystem `agent`'s input, or say why not (then it is counted and the held input stays).
        `state`: the subsystem's current state, for mixed state-input rows."""
        guard = self.guards[agent]
        u = np.asarray(u, float)
        reason = None
        if u.shape != (guard.size,):
            reason = f"{u.size} values (expected {guard.size})"
        elif not np.all(np.isfinite(u)):
            reason = "not finite"
        else:
            H, h = guard.rows(state)
            violation = float(np.max(H @ u - h, initial=0.0))
            if violation > CLEAN_UP * (1.0 + float(np.max(np.abs(h), initial=0.0))):
                reason = f"outside its input set by {violation:.3g}"
        if reason is not None:
            self.refused += 1
            return f"input {np.array2string(u.ravel()[:8], precision=4)} of agent {agent} refused: {reason}"
        self.held[agent] = u
        return None

    def inputs(self) -> np.ndarray:
        """The plant-wide input: every subsystem's held input, in agent order."""
        return np.concatenate(self.held)
