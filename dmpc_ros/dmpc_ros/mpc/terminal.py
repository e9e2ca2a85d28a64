"""Terminal ingredients: the DARE cost-to-go, the LQR terminal controller and the maximal admissible set."""
from __future__ import annotations

import numpy as np
from scipy.linalg import lu_factor, lu_solve, solve_discrete_are
from scipy.optimize import linprog

from ..models.linear import PolytopicConstraint


DOUBLING_ABOVE = 300   # states above which the DARE is solved by doubling (scipy's QZ on 2n took 27 s at n = 512)


class NotStabilizable(ValueError):
    """(A, B) has an unstable mode no input reaches, or (Q, A) one the cost does not see: no DARE is attempted."""


def unstable_eigenvalues(A: np.ndarray, tolerance: float = 1e-9) -> list[complex]:
    """Distinct eigenvalues with |λ| ≥ 1 − tolerance (discrete time)."""
    modes: list[complex] = []
    for value in np.linalg.eigvals(A):
        if abs(value) >= 1.0 - tolerance and not any(abs(value - known) < 1e-6 for known in modes):
            modes.append(complex(value))
    return modes


def describe_mode(value: complex, vector: np.ndarray, names: list[str] | None) -> str:
    """'λ = 1.02 (|λ| = 1.02; states h3 0.71, h4 0.71)': the eigenvalue and the states that carry the mode."""
    names = names or [f"x{i}" for i in range(vector.size)]
    weights = np.abs(vector) / max(np.linalg.norm(vector), 1e-300)
    order = [i for i in np.argsort(-weights) if weights[i] > 0.1 * weights.max()][:4]
    text = f"{value.real:.4g}" if abs(value.imag) < 1e-12 else f"{value.real:.4g}{value.imag:+.4g}j"
    return f"λ = {text} (|λ| = {abs(value):.4g}; states {', '.join(f'{names[i]} {weights[i]:.2g}' for i in order)})"


def _null_direction(matrix: np.ndarray, tolerance: float) -> np.ndarray | None:
    """A unit vector v with matrix v ≈ 0 (relative tolerance), or None if the matrix has full column rank."""
    _, singular, vh = np.linalg.svd(matrix)
    scale = max(1.0, float(singular[0])) if singular.size else 1.0
    if singular.size < matrix.shape[1] or singular[-1] <= tolerance * scale:
        return vh[-1].conj()
    return None


def check_stabilizable(A: np.ndarray, B: np.ndarray, Q: np.ndarray | None = None,
                       names: list[str] | None = None, tolerance: float = 1e-9) -> None:
    """PBH tests for every mode with |λ| ≥ 1: rank [A − λI, B] = n (stabilizable) and, with Q,
    rank [A − λI; Q] = n (detectable through the cost: an unweighted unstable mode makes the DARE's stabilizing
    solution fail).
    Raises NotStabilizable naming the mode; open-loop unstable models are fine."""
    n = A.shape[0]
    for value in unstable_eigenvalues(A):
        shifted = A - value * np.eye(n)
        left = _null_direction(np.hstack([shifted, B]).conj().T, tolerance)
        if left is not None:
            raise NotStabilizable(f"(A, B) is not stabilizable: the mode {describe_mode(value, left, names)} "
                                  f"cannot be influenced by any input, so no controller can stabilize it")
        if Q is not None:
            right = _null_direction(np.vstack([shifted, Q]), tolerance)
            if right is not None:
                raise NotStabilizable(f"(Q, A) is not detectable: the mode {describe_mode(value, right, names)} has "
                                      f"no weight in the state cost Q, so the LQR terminal law would not stabilize it")


def lqr_terminal(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, K): P solves the DARE, u = K x is the LQR law, K = -(R + B'PB)⁻¹ B'PA; NotStabilizable (naming the
    mode) instead of a meaningless DARE when (A, B) is not stabilizable or (Q, A) not detectable."""
    check_stabilizable(A, B, Q)
    P = solve_discrete_are(A, B, Q, R) if A.shape[0] <= DOUBLING_ABOVE else doubling_dare(A, B, Q, R)
    K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    return 0.5 * (P + P.T), K


def doubling_dare(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, tolerance: float = 1e-13,
                  max_iterations: int = 100) -> np.ndarray:
    """The stabilizing DARE solution by the structure-preserving doubling algorithm (Chu et al. 2004): quadratic
    convergence, a handful of n×n LU solves and products, so a 2048-state plant takes seconds, not the QZ's hour.
    A_{k+1} = A_k W⁻¹ A_k, G_{k+1} = G_k + A_k W⁻¹ G_k A_k', H_{k+1} = H_k + A_k' H_k W⁻¹ A_k,
    W = I + G_k H_k."""
    n = A.shape[0]
    Ak, G, H = A.copy(), B @ np.linalg.solve(R, B.T), Q.astype(float).copy()
    for _ in range(max_iterations):
        factors = lu_factor(np.eye(n) + G @ H)
        V_A, V_G = lu_solve(factors, Ak), lu_solve(factors, G)
        H_next = H + Ak.T @ (H @ V_A)
        G, Ak = G + Ak @ V_G @ Ak.T, Ak @ V_A
        done = np.linalg.norm(H_next - H) <= tolerance * np.linalg.norm(H_next)
        H = H_next
        if done:
            return 0.5 * (H + H.T)
    raise RuntimeError(f"DARE doubling did not converge in {max_iterations} iterations")


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
