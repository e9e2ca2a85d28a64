"""Tube-based robust DMPC agent: the inner agent negotiates the *nominal* problem (constraints tightened by the
tubes, see mpc/tubes.py) from the nominal state x̄_i, and the agent applies u_i = ū_i + K_i (x_i − x̄_i).

Nominal state: x̄_i(k+1) = x̄_i(1|k), the own final plan's prediction, made with the neighbour values the agent
used (Farina & Scattolini 2012). It always satisfies the tightened constraints (the plan did), and the error
e = x − x̄ obeys e_i⁺ = A_K,i e_i + Σ_j M_ij e_j + w_i + (A_ij Δx_j + B_ij Δu_j), where Δ is what the neighbour
really did minus what the agent used: zero when its plans of the step arrived and only states couple, bounded
by the compatibility constraints when they were late or lost for up to D steps (included in W̃_i).
Initial nominal state: a decision variable, x̄_i(0) ∈ (x_i(0) ⊕ (−Z_i)) ∩ X̄_i, the point of that set closest
to x_i(0) (a small QP), so a start inside X but outside the tightened X̄_i = X_i ⊖ Z_i is still admissible.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..models.linear import PolytopicConstraint
from ..mpc.qp import DenseQP
from ..mpc.tubes import Zonotope
from .base import Agent, StepStatistics
from .plan import Plan
from .safe_input import InputGuard


class TubeAgent(Agent):
    def __init__(self, inner: Agent, gain: np.ndarray, tube: Zonotope, tightened_states: PolytopicConstraint,
                 guard: InputGuard) -> None:
        """`guard` holds the plant's own input set U_i (the inner agent's is tightened by K_i Z_i)."""
        self.inner, self.gain, self.tube, self.tightened_states = inner, gain, tube, tightened_states
        self.guard = guard
        self.agent_id = inner.agent_id
        self.required_plans = inner.required_plans
        self.nominal: np.ndarray | None = None
        self.measured = np.zeros(0)
        self._own_final: Plan | None = None

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
        if self._own_final is None or self._own_final.step != step - 1:
            self.nominal, fallback = self.initial_nominal(self.measured)
        else:
            self.nominal = self._own_final.states[1].copy()
        plan = self.inner.begin_step(step, self.nominal, inbox)
        if fallback:
            self.inner.statistics.fallbacks += 1
        return plan

    def initial_nominal(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """(x̄, fallback): argmin ‖x̄ − x‖² s.t. x − x̄ = G ξ, ‖ξ‖∞ ≤ 1, H x̄ ≤ h (tightened); x̄ = x (fallback)
        if x is farther than the tube from the tightened set."""
        n, p = x.size, self.tube.G.shape[1]
        H, h = self.tightened_states.H, self.tightened_states.h
        if p == 0 or h.size == 0 or np.all(H @ x <= h):
            return x.copy(), False
        hessian = np.diag(np.r_[np.full(n, 2.0), np.full(p, 1e-9)])
        rows = np.block([[np.eye(n), self.tube.G], [np.zeros((p, n)), np.eye(p)], [H, np.zeros((h.size, p))]])
        lower = np.r_[x, -np.ones(p), np.full(h.size, -np.inf)]
        upper = np.r_[x, np.ones(p), h]
        qp = DenseQP(hessian, rows, equalities=np.r_[np.ones(n, bool), np.zeros(p + h.size, bool)])
        solution = qp.solve(np.r_[-2.0 * x, np.zeros(p)], lower, upper)
        return (solution.z[:n], False) if solution.usable else (x.copy(), True)

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        plan = self.inner.iterate(inbox)
        if plan.final:
            self._own_final = plan
        return plan

    def cut_short(self) -> Plan | None:
        """The inner agent's (its fault-bound rule included): the step's final plan, the next nominal's source."""
        plan = self.inner.cut_short()
        if plan is not None:
            self._own_final = plan
        return plan

    def planned_input(self) -> np.ndarray:
        """u_i = ū_i + K_i (x_i − x̄_i)."""
        return self.inner.planned_input() + self.gain @ (self.measured - self.nominal)

    def candidate_input(self) -> np.ndarray:
        return self.inner.candidate_input() + self.gain @ (self.measured - self.nominal)

    def next_step_law(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The nominal plan's next input and state with the ancillary gain, u = v̄(1|k) + K_i (x − x̄(1|k)):
        the input this agent applies at k + 1 when it runs on its shifted plan (x̄(k+1) = x̄(1|k))."""
        law = self.inner.next_step_law()
        return None if law is None else (law[0], law[1], self.gain)

    def measured_state(self) -> np.ndarray:
        return self.measured

    @property
    def solved(self) -> bool:
        return self.inner.solved

    def constraint_margin(self) -> float:
        return self.inner.constraint_margin()

    def one_step_model(self, own_state: np.ndarray | None = None):
        """The inner agent's model at the measured state (the applied input acts on the real state, not x̄)."""
        return self.inner.one_step_model(self.measured)
