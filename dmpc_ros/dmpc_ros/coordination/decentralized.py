"""Decentralized MPC: every agent plans alone, with no communication, assuming its neighbours follow their
reference trajectories (the interaction at its nominal value, the usual decentralized design).

Dropping the coupling terms instead (neighbours' states and inputs at zero) is the nominal value only when
the reference is the origin: a platoon follower would believe its gap shrinks at its own speed, because the
predecessor's speed term is gone. So the agent keeps its neighbourhood's model in its view, its own measured
state, and the others at their reference states and inputs of the current window; it optimizes its own cost over its
own constraints once per step (a non-cooperative block update without messages).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .block_agent import BlockUpdateAgent
from .plan import Plan


class DecentralizedAgent(BlockUpdateAgent):
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        super().begin_step(step, state, {})
        x_ref, u_ref = self.block.reference.window(step, self.horizon)
        own_inputs, own_states = self._input_index[self.agent_id], self._state_slice[self.agent_id]
        view_inputs = u_ref.ravel().astype(float)
        view_inputs[own_inputs] = self.U[own_inputs]
        view_state = x_ref[0].astype(float)
        view_state[own_states] = self.x0[own_states]
        self.U, self.x0 = view_inputs, view_state
        self._plan = self._make_plan(converged=False, final=False, feasible=True)
        return self._plan

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        """Its one solve per step, by design: never a step cut at an iteration limit (not reported capped)."""
        plan = super().iterate(inbox)
        self._stats.capped = False
        return plan
