"""One-step safety of an applied input: the input u ∈ U_i nearest to a held one v such that the agent's nominal model
keeps x_i(k+1) inside its state set X_i = {x : H x ≤ h}; where no input of U_i does, the one that minimizes the
largest violation (each row's violation as a distance, (H_r x − h_r) / ‖H_r‖, i.e. state units for box rows).

Why: a fallback (the candidate, a kept iterate, a projection) only knows U_i. Held at its old value it may drive a
state out of X_i while an input that would not exists (issue 26: a pump held for ~90 steps overfilled a tank). The
nominal model is the agent's own one-step prediction with its neighbours at their latest known plans:

- linear agents: x_i⁺ = B_ii u_i + c, c = A_ii x_i + Σ_j (A_ij x_j + B_ij u_j) (`AffineStep`): one QP is exact;
- nonlinear agents: x_i⁺ = Φ_i(x_i, u_i, z_i) (`MapStep`): Gauss-Newton, i.e. the QP on the linearization at the
  current iterate, repeated `ITERATIONS` times from v; every iterate is checked on Φ_i itself and the best one kept
  (smallest violation, then nearest to v), so the linearization's error never makes the answer worse than v.

One step only: it is cheap (a QP with n_u variables and an LP when that is infeasible) and needs nothing the agent
does not already hold. A longer look-ahead would need the neighbours' inputs and states further ahead (predictions the
agent no longer trusts when it falls back) and a nonlinear multi-step problem; one step does not give recursive
feasibility (X_i is not control invariant in general), which the agents' own OCPs provide when they solve.
Solvers: the QP back-end registry (mpc/qp_backends), forms dense_once and lp. If a solve fails, v is kept.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..mpc.qp_backends import qp_backend

ITERATIONS = 3          # Gauss-Newton steps on a nonlinear model (an affine one stops after the first)
TOLERANCE = 1e-6        # violation (relative to 1 + max |h|) a solver's tolerance explains: counts as inside
BACKEND = "daqp"        # the registry's back end for the safety QP (dense_once) and the violation LP (lp)


class OneStepModel(Protocol):
    """x_i(k+1) as a function of the own input u_i(k), everything else fixed."""

    def predict(self, u: np.ndarray) -> np.ndarray: ...

    def jacobian(self, u: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class AffineStep:
    """x⁺ = B u + c (a linear agent's own rows, the rest of its view in c)."""

    B: np.ndarray
    c: np.ndarray
    affine = True

    def predict(self, u: np.ndarray) -> np.ndarray:
        return self.B @ u + self.c

    def jacobian(self, u: np.ndarray) -> np.ndarray:
        return self.B


@dataclass(frozen=True)
class MapStep:
    """x⁺ = φ(u) and its Jacobian ∂φ/∂u (a nonlinear agent's Φ_i at its measured state and neighbours' plans)."""

    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]
    affine = False

    def predict(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.phi(u), float).ravel()

    def jacobian(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.dphi(u), float).reshape(-1, u.size)


class StateSet:
    """X_i = {x : H x ≤ h} with each row's violation measured as a distance (rows scaled to unit norm)."""

    def __init__(self, H: np.ndarray, h: np.ndarray) -> None:
        norms = np.linalg.norm(H, axis=1) if h.size else np.zeros(0)
        keep = norms > 0
        self.H, self.h = H[keep] / norms[keep, None], h[keep] / norms[keep]
        self.tolerance = TOLERANCE * (1.0 + float(np.max(np.abs(self.h), initial=0.0)))

    @property
    def empty(self) -> bool:
        """No rows: nothing to keep."""
        return self.h.size == 0

    def margin(self, x: np.ndarray) -> float:
        """min_r (h_r − H_r x): negative when x is outside (by that distance); inf without rows; −inf if not finite."""
        if not np.all(np.isfinite(x)):
            return -np.inf
        return float(np.min(self.h - self.H @ x, initial=np.inf))


def safe_input(v: np.ndarray, H_u: np.ndarray, h_u: np.ndarray, states: StateSet, model: OneStepModel,
               backend: str = BACKEND) -> tuple[np.ndarray, float]:
    """(u, margin of x⁺(u)): u ∈ {H_u u ≤ h_u} nearest to v with x⁺(u) ∈ X, else the least violating (module
    docstring); v itself (with its margin) when it is inside already or nothing better is found."""
    best = (v, states.margin(model.predict(v)))
    if best[1] >= -states.tolerance:
        return best
    point = v
    for _ in range(1 if getattr(model, "affine", False) else ITERATIONS):
        x, J = model.predict(point), model.jacobian(point)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(J))):
            break
        # x⁺(w) ≈ x + J (w − point): rows H J w ≤ h − H (x − J point), backed off by the tolerance that counts as
        # inside (so a linearization's small error still lands inside)
        rows, bounds = states.H @ J, states.h - states.H @ (x - J @ point) - states.tolerance
        w = _nearest(v, H_u, h_u, rows, bounds, backend)
        if w is None:
            break
        margin = states.margin(model.predict(w))
        if margin > best[1] + states.tolerance or (margin >= best[1] - states.tolerance
                                                   and np.linalg.norm(w - v) < np.linalg.norm(best[0] - v)):
            best = (w, margin)
        if best[1] >= -states.tolerance or np.max(np.abs(w - point), initial=0.0) <= 1e-12 * (1 + np.max(np.abs(w))):
            break
        point = w
    return best


def _nearest(v: np.ndarray, H_u: np.ndarray, h_u: np.ndarray, rows: np.ndarray, bounds: np.ndarray,
             backend: str) -> np.ndarray | None:
    """argmin ‖w − v‖² s.t. H_u w ≤ h_u, rows w ≤ bounds + t* (t* = 0 if that is feasible, else the least ℓ∞
    relaxation, an LP); None if a solve fails."""
    n = v.size
    A = np.vstack([H_u.reshape(-1, n), rows])
    upper = np.concatenate([h_u, bounds])
    qp = qp_backend(backend, "dense_once")
    result = qp.solve_dense(2.0 * np.eye(n), -2.0 * v, A, np.full(upper.size, -np.inf), upper)
    if _accepted(result, A, upper):
        return np.asarray(result.x, float)
    # least relaxation t ≥ 0 of the state rows: min t s.t. H_u w ≤ h_u, rows w − t ≤ bounds
    lp_rows = np.block([[H_u.reshape(-1, n), np.zeros((h_u.size, 1))], [rows, -np.ones((bounds.size, 1))],
                        [np.zeros((1, n)), -np.ones((1, 1))]])
    lp_upper = np.concatenate([h_u, bounds, [0.0]])
    lp = qp_backend(backend, "lp").solve_lp(np.r_[np.zeros(n), 1.0], lp_rows, np.full(lp_upper.size, -np.inf),
                                            lp_upper)
    if not _accepted(lp, lp_rows, lp_upper):
        return None
    relaxed = float(lp.x[n]) * (1 + 1e-9) + TOLERANCE * 1e-3 * (1.0 + float(np.max(np.abs(bounds), initial=0.0)))
    upper = np.concatenate([h_u, bounds + relaxed])
    result = qp.solve_dense(2.0 * np.eye(n), -2.0 * v, A, np.full(upper.size, -np.inf), upper)
    return np.asarray(result.x, float) if _accepted(result, A, upper) else np.asarray(lp.x[:n], float)


def _accepted(result, A: np.ndarray, upper: np.ndarray) -> bool:
    """Solved, finite and inside its rows up to the solver's tolerance (a status alone is never trusted)."""
    if not result.ok or result.x is None or not np.all(np.isfinite(result.x)):
        return False
    load = A @ np.asarray(result.x, float)
    return bool(np.all(load - upper <= TOLERANCE * (1.0 + np.abs(upper))))
