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


def admissible_target(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, x_ref: np.ndarray,
                      u_ref: np.ndarray, states: PolytopicConstraint, inputs: PolytopicConstraint,
                      interior: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The steady state (x_s, u_s), x_s = A x_s + B u_s, closest to (x_ref, u_ref) in the Q, R norms with
    x_s, u_s inside the given sets shrunk by `interior` (a share of each bound), so a terminal set with
    interior exists around it; ValueError if there is none."""
    from .qp import DenseQP

    n, m = B.shape
    hessian = 2.0 * np.block([[Q, np.zeros((n, m))], [np.zeros((m, n)), R]])
    rows = [np.hstack([A - np.eye(n), B])]
    lower, upper = [np.zeros(n)], [np.zeros(n)]
    for H, h, columns in ((states.H, states.h, slice(0, n)), (inputs.H, inputs.h, slice(n, n + m))):
        block = np.zeros((h.size, n + m))
        block[:, columns] = H
        rows.append(block)
        lower.append(np.full(h.size, -np.inf))
        upper.append(h - interior * np.abs(h))
    equalities = np.r_[np.ones(n, bool), np.zeros(sum(u.size for u in upper[1:]), bool)]
    solution = DenseQP(hessian + 1e-9 * np.eye(n + m), np.vstack(rows), equalities=equalities).solve(
        -hessian @ np.r_[x_ref, u_ref], np.concatenate(lower), np.concatenate(upper))
    if not solution.ok:
        raise ValueError(f"no admissible steady state inside the constraint sets ({solution.status})")
    return solution.z[:n], solution.z[n:]
