"""What an agent may apply: the input its announced plan starts with, if it is finite and inside the agent's input
set U_i (with the mixed state-input rows at the measured state); else the first input of its feasible candidate
(the previous plan shifted, tail from the terminal law scaled into U_i); else the Euclidean projection of that
candidate onto the set (non-finite entries replaced by the set's Chebyshev centre, absurd ones clipped).
Whatever a solver returns, the applied input is finite and inside the set (property-tested in test_safe_input.py).

Then the state set X_i (`decide`, when the agent gives its nominal one-step model): an input whose predicted
x_i(k+1) leaves X_i is replaced by the nearest input of the set that keeps it inside, or else the least violating
one (coordination/safety_filter.py), rule "safety". A good input is never changed: the check only acts when the
prediction leaves X_i by more than a solver's tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from ..models.linear import MixedConstraint, PolytopicConstraint, Subsystem
from ..mpc.qp import DenseQP
from .safety_filter import OneStepModel, StateSet, safe_input

CLEAN_UP = 1e-6   # violation (relative to 1 + max |h|) a solver's tolerance explains: projected back, not a fallback
FAR = 1e3        # candidate entries farther than this (relative to 1 + max |h|) from the centre are clipped first
# AgentStatus.input_source, in this order; "safety": the one-step safety input (coordination/safety_filter.py)
INPUT_SOURCES = ("solved", "previous_iterate", "candidate", "projection", "safety")


@dataclass(frozen=True)
class GuardDecision:
    """The applied input, its rule ("plan", "candidate", "projection" or "safety") and the margin of its predicted
    x_i(k+1) in X_i (min_r h_r − H_r x⁺ with unit rows; negative: outside; None without a model or state rows)."""

    input: np.ndarray
    rule: str
    state_margin: float | None = None


class InputGuard:
    """One agent's input set {u : H u ≤ h} ∩ {u : Hu u ≤ h_m − Hx x} (mixed rows at the measured state x)."""

    def __init__(self, input_set: PolytopicConstraint, mixed: MixedConstraint | None = None,
                 state_set: PolytopicConstraint | None = None) -> None:
        self.input_set, self.mixed = input_set, mixed
        self.states = StateSet(np.zeros((0, 0)), np.zeros(0)) if state_set is None else StateSet(state_set.H,
                                                                                                  state_set.h)
        self.size = input_set.H.shape[1]
        self.interior = chebyshev_centre(input_set)
        H = input_set.H
        self._box = H.size == 0 or bool(np.all(np.count_nonzero(H, axis=1) == 1))
        self._qps: dict[str, DenseQP] = {}

    @staticmethod
    def of(subsystem: Subsystem) -> "InputGuard":
        return InputGuard(subsystem.input_constraint, subsystem.mixed_constraint, subsystem.state_constraint)

    def rows(self, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(H, h) of the set at the measured state (the mixed rows need a finite state)."""
        H, h = self.input_set.H.reshape(-1, self.size), self.input_set.h
        if self.mixed is None or state is None or not np.all(np.isfinite(state)):
            return H, h
        return np.vstack([H, self.mixed.Hu]), np.concatenate([h, self.mixed.h - self.mixed.Hx @ state])

    def apply(self, planned: np.ndarray | None, candidate: np.ndarray | None,
              state: np.ndarray | None) -> tuple[np.ndarray, str]:
        """(u, rule): the planned input ("plan"), the candidate's ("candidate") or the projection ("projection")."""
        H, h = self.rows(state)
        scale = 1.0 + float(np.max(np.abs(h), initial=0.0))
        for value, rule in ((planned, "plan"), (candidate, "candidate")):
            if value is None or value.shape != (self.size,) or not np.all(np.isfinite(value)):
                continue
            violation = float(np.max(H @ value - h, initial=0.0))
            if violation <= 0.0:
                return value.copy(), rule
            if violation <= CLEAN_UP * scale:
                return self.project(value, H, h), rule
        point = self.interior.copy()
        if candidate is not None and candidate.shape == (self.size,):   # absurd entries would ruin the QP's numbers
            reach = FAR * scale
            point = np.clip(np.where(np.isfinite(candidate), candidate, self.interior), point - reach, point + reach)
        return self.project(point, H, h), "projection"

    def decide(self, planned: np.ndarray | None, candidate: np.ndarray | None, state: np.ndarray | None,
               model: OneStepModel | None = None) -> GuardDecision:
        """`apply`, then the state set: with the agent's nominal one-step model, an input whose x_i(k+1) leaves X_i
        is replaced by the safety input ("safety") when that leaves it less (module docstring)."""
        u, rule = self.apply(planned, candidate, state)
        if model is None or self.states.empty:
            return GuardDecision(u, rule)
        margin = self.states.margin(model.predict(u))
        if margin >= -self.states.tolerance:
            return GuardDecision(u, rule, margin)
        H, h = self.rows(state)
        safe, safe_margin = safe_input(u, H, h, self.states, model)
        if safe is u or not np.all(np.isfinite(safe)) or safe_margin <= margin + self.states.tolerance:
            return GuardDecision(u, rule, margin)
        if np.max(H @ safe - h, initial=0.0) > 0.0:   # within the solver's tolerance of U_i: onto it exactly
            safe = self.project(safe, H, h)
            safe_margin = self.states.margin(model.predict(safe))
        return GuardDecision(safe, "safety", safe_margin)

    def nearest(self, v: np.ndarray) -> np.ndarray:
        """The point of U_i nearest to v (e.g. the stop command nearest to zero)."""
        return self.project(np.asarray(v, float), *self.rows(None))

    def project(self, v: np.ndarray, H: np.ndarray, h: np.ndarray) -> np.ndarray:
        """argmin ‖u − v‖ over the set; over U_i alone if the mixed rows leave nothing; else the centre."""
        own = (self.input_set.H.reshape(-1, self.size), self.input_set.h)
        for key, (rows, bounds) in (("set", (H, h)), ("own", own)):
            if rows.shape[0] == own[1].size and self._box:
                return self._clip(v)
            if key not in self._qps:   # the rows' matrix is fixed (the mixed rows' bounds move with the state)
                self._qps[key] = DenseQP(2.0 * np.eye(self.size), rows)
            solution = self._qps[key].solve(-2.0 * v, np.full(bounds.size, -np.inf), bounds)
            if solution.usable:
                return solution.z
        return self.interior.copy()

    def _clip(self, v: np.ndarray) -> np.ndarray:
        """Projection onto a box given as rows ±e_k scaled (each row has one non-zero)."""
        H, h = self.input_set.H.reshape(-1, self.size), self.input_set.h
        u = v.copy()
        for row, bound in zip(H, h):
            k = int(np.flatnonzero(row)[0])
            limit = bound / row[k]
            u[k] = min(u[k], limit) if row[k] > 0 else max(u[k], limit)
        return u


def chebyshev_centre(constraint: PolytopicConstraint) -> np.ndarray:
    """The centre of the largest ball (radius capped at 1) inside {v : H v ≤ h}; ValueError if the set is empty."""
    H, h = constraint.H, constraint.h
    size = H.shape[1] if H.ndim == 2 else 0
    if h.size == 0:
        return np.zeros(size)
    norms = np.linalg.norm(H, axis=1)
    result = linprog(np.r_[np.zeros(size), -1.0], A_ub=np.hstack([H, norms[:, None]]), b_ub=h,
                     bounds=[(None, None)] * size + [(0.0, 1.0)], method="highs")
    if result.status != 0:
        raise ValueError(f"the input set {{u : H u ≤ h}} with {h.size} rows is empty: no input can be applied")
    return np.asarray(result.x[:size], float)
