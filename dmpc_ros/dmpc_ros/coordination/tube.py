"""Tube-based robust DMPC agent: the inner agent negotiates the *nominal* problem (constraints tightened by the
tubes, see mpc/tubes.py) from the nominal state x̄_i, and the agent applies u_i = ū_i + K_i (x_i − x̄_i).

The nominal state follows the nominal coupled dynamics: at the start of step k+1 the agent computes
    x̄_i(k+1) = A_ii x̄_i(k) + B_ii ū_i(k) + Σ_j (A_ij x̄_j(k) + B_ij ū_j(k))
from the final plans of step k (plan.states[0] = x̄_j(k), plan.inputs[0] = ū_j(k)), so the error
e = x − x̄ obeys e⁺ = (A + BK) e + w exactly and stays in the tubes (robust positive invariance); the nominal
plans stay feasible for the tightened constraints, and x = x̄ + e then satisfies the original ones.
At step 0, x̄(0) = x(0). A neighbour whose final plan is missing is replaced by the prediction of its previous
plan (its shifted plan), and the event is counted as a fallback.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..models.linear import CoupledLinearSystem
from .base import Agent, StepStatistics
from .plan import Plan


class TubeAgent(Agent):
    def __init__(self, inner: Agent, system: CoupledLinearSystem, gain: np.ndarray) -> None:
        self.inner, self.system, self.gain = inner, system, gain
        self.agent_id = inner.agent_id
        self.required_plans = frozenset(inner.required_plans | set(system.dynamic_neighbours(self.agent_id)))
        self.nominal: np.ndarray | None = None
        self.measured = np.zeros(0)
        self._own_final: Plan | None = None
        self._known: dict[int, Plan] = {}     # each neighbour's newest final plan

    @property
    def sequential(self) -> bool:
        return self.inner.sequential

    @property
    def statistics(self) -> StepStatistics:
        return self.inner.statistics

    @property
    def last_plan(self) -> Plan | None:
        return self.inner.last_plan

    @property
    def iteration(self) -> int:
        return self.inner.iteration

    def needs_current_iteration(self, neighbour: int) -> bool:
        return self.inner.needs_current_iteration(neighbour)

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        self.measured = np.asarray(state, float).copy()
        fallback = False
        if self.nominal is None or self._own_final is None:
            self.nominal = self.measured.copy()
        else:
            self.nominal, fallback = self._propagate(step, inbox)
        plan = self.inner.begin_step(step, self.nominal, inbox)
        if fallback:
            self.inner.statistics.fallbacks += 1
        return plan

    def _propagate(self, step: int, inbox: Mapping[int, Plan]) -> tuple[np.ndarray, bool]:
        """x̄_i(k) from the step-(k−1) final plans of the agent and its dynamic neighbours."""
        i, previous = self.agent_id, self._own_final
        x_next = self.system.A[i][i] @ previous.states[0] + self.system.B[i][i] @ previous.inputs[0]
        fallback = False
        for j in self.system.dynamic_neighbours(i):
            plan = inbox.get(j)
            if plan is not None and plan.step == step - 1 and plan.final:
                self._known[j] = plan
                x_j, u_j = plan.states[0], plan.inputs[0]
            elif j in self._known:   # missing: its last final plan, shifted to the step that just ended
                shift = min(step - 1 - self._known[j].step, self._known[j].inputs.shape[0] - 1)
                x_j, u_j = self._known[j].states[shift], self._known[j].inputs[shift]
                fallback = True
            else:
                continue
            x_next = x_next + self.system.A[i][j] @ x_j + self.system.B[i][j] @ u_j
        return x_next, fallback

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        plan = self.inner.iterate(inbox)
        if plan.final:
            self._own_final = plan
        return plan

    def control(self) -> np.ndarray:
        """u_i = ū_i + K_i (x_i − x̄_i)."""
        return self.inner.control() + self.gain @ (self.measured - self.nominal)

    def constraint_margin(self) -> float:
        return self.inner.constraint_margin()
