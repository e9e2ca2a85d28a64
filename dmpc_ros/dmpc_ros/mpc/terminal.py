"""Terminal ingredients: the DARE cost-to-go, the LQR terminal controller and the maximal admissible set."""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_discrete_are
from scipy.optimize import linprog

from ..models.linear import PolytopicConstraint


def lqr_terminal(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, K): P solves the DARE, u = K x is the LQR law, K = -(R + B'PB)⁻¹ B'PA."""
    P = solve_discrete_are(A, B, Q, R)
    K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    return 0.5 * (P + P.T), K


def maximal_admissible_set(A_closed: np.ndarray, constraint: PolytopicConstraint, max_steps: int = 200,
                           tolerance: float = 1e-9) -> PolytopicConstraint:
    """Maximal output-admissible set {x : H A_K^t x ≤ h, t ≥ 0} (Gilbert & Tan 1991), by adding steps until
    every row of the next step is redundant (checked by LP). Raises if not finitely determined in max_steps."""
    H, h = constraint.H, constraint.h
    rows, bounds = [H], [h]
    power = np.eye(A_closed.shape[0])
    for _ in range(max_steps):
        power = power @ A_closed
        candidate = H @ power
        stacked_H, stacked_h = np.vstack(rows), np.concatenate(bounds)
        redundant = True
        for row, bound in zip(candidate, h):
            result = linprog(-row, A_ub=stacked_H, b_ub=stacked_h, bounds=(None, None), method="highs")
            if result.status != 0 or -result.fun > bound + tolerance:
                redundant = False
                break
        if redundant:
            return PolytopicConstraint(stacked_H, stacked_h)
        rows.append(candidate)
        bounds.append(h)
    raise RuntimeError(f"maximal admissible set not finitely determined within {max_steps} steps")
