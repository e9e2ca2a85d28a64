"""The structural Jacobi step (mpc/parallel_step.py) without the plant-wide dense condensed problem.

The dense bounds form Γ, H and C for the whole plant and solve a generalized eigenvalue problem on N·n_u inputs:
5.3 GB and minutes at 256 masses. Here nothing plant-wide is dense but the cost's own weights:
- D = blockdiag(H_ii): each agent's block of the Hessian from the responses of the states its inputs reach within
  the horizon (mpc/neighbourhood.reached_states; the states left out move by less than INFLUENCE_TOLERANCE of the
  largest response), H_ii = 2 (Σ_k G_k' Q G_k + G_N' P G_N + I ⊗ R_ii), factored H_ii = L_i L_i';
- λ_max(D^-½ H D^-½) = λ_max(L^-1 H L^-T) by Lanczos (scipy's eigsh) on an operator: H v is a forward simulation
  of the sparse plant, the stage and terminal weights, and the adjoint simulation back (O(N·nnz) per product). A
  Ritz value approaches λ_max from below, so the returned curvature carries a relative margin CURVATURE_MARGIN;
- the widest row and the widest state from the influence structure: every agent whose inputs reach a state (the
  bound |A|^s|B| above STRUCTURE_TOLERANCE of its largest entry, the dense bounds' zero threshold, so a coefficient
  the dense count sees is never left out) counts for each row on it, at any time: both are ≥ the dense counts,
  and the step is never larger than the dense one (tested).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, solve_triangular
from scipy.sparse.linalg import LinearOperator, eigsh

from ..models.linear import CoupledLinearSystem, PolytopicConstraint
from .neighbourhood import agents_of, reached_states, toeplitz_response
from .parallel_step import ParallelStepBounds

CURVATURE_MARGIN = 1e-6     # relative: Lanczos' estimate of λ_max is raised by this much
DENSE_STEP_INPUTS = 1500    # N·n_u up to which the dense bounds are used (a 75-mass chain at N = 20: 1 s here)
STRUCTURE_TOLERANCE = 1e-13  # relative influence bound above which an agent counts as reaching a state
LANCZOS_TOLERANCE = 1e-10


def dense_step_bound(system: CoupledLinearSystem, horizon: int) -> bool:
    """Whether the step bound is computed from the dense condensed problem (N·n_u ≤ DENSE_STEP_INPUTS: exact
    structure counts, kept where today's results are tested) rather than matrix-free."""
    return horizon * system.n_u <= DENSE_STEP_INPUTS


def block_hessian(system: CoupledLinearSystem, horizon: int, Q: np.ndarray, R: np.ndarray, P: np.ndarray,
                  agent: int, reached: np.ndarray) -> np.ndarray:
    """H_ii (N·m_i square, time-major) from the responses of the reached states to the agent's inputs."""
    N = horizon
    A, B = system.sparse_matrices()
    inputs = np.arange(system.n_u)[system.input_slice(agent)]
    A_r, B_r = A[reached][:, reached].toarray(), B[reached][:, inputs].toarray()
    responses = np.empty((N, reached.size, inputs.size))
    responses[0] = B_r
    for s in range(1, N):
        responses[s] = A_r @ responses[s - 1]
    G = toeplitz_response(responses, np.arange(reached.size)).reshape(N + 1, reached.size, -1)
    Q_r, P_r = Q[np.ix_(reached, reached)], P[np.ix_(reached, reached)]
    H = sum(G[k].T @ Q_r @ G[k] for k in range(1, N)) + G[N].T @ P_r @ G[N]
    H = 2.0 * (H + np.kron(np.eye(N), R[np.ix_(inputs, inputs)]))
    return 0.5 * (H + H.T)


class HessianOperator:
    """v ↦ H v of the plant-wide condensed cost ½ U'HU (U time-major), by simulation and adjoint simulation."""

    def __init__(self, system: CoupledLinearSystem, horizon: int, Q: np.ndarray, R: np.ndarray, P: np.ndarray):
        self.A, self.B = (sp.csr_matrix(M) for M in system.sparse_matrices())
        self.AT, self.BT = self.A.T.tocsr(), self.B.T.tocsr()
        self.Q, self.R, self.P, self.N = Q, R, P, horizon
        self.n, self.m = system.n_x, system.n_u

    def apply(self, v: np.ndarray) -> np.ndarray:
        N, U = self.N, v.reshape(self.N, self.m)
        x = np.zeros(self.n)
        weighted = np.empty((N + 1, self.n))
        weighted[0] = 0.0
        for k in range(N):
            x = self.A @ x + self.B @ U[k]
            weighted[k + 1] = (self.Q if k + 1 < N else self.P) @ x
        out = np.empty((N, self.m))
        adjoint = weighted[N]
        for k in range(N - 1, -1, -1):          # λ_{k+1} → (Γ'y)_k = B' λ_{k+1}; λ_k = A' λ_{k+1} + y_k
            out[k] = self.BT @ adjoint
            adjoint = self.AT @ adjoint + weighted[k]
        return 2.0 * (out + U @ self.R.T).ravel()


def matrix_free_bounds(system: CoupledLinearSystem, horizon: int, Q: np.ndarray, R: np.ndarray, P: np.ndarray,
                       terminal_set: PolytopicConstraint | None = None) -> ParallelStepBounds:
    """ParallelStepBounds of the plant-wide problem with no dense plant-wide condensed data (module docstring)."""
    N, M, m = horizon, system.num_agents, system.n_u
    reached = [reached_states(system, i, N) for i in range(M)]
    columns = [(np.arange(N)[:, None] * m + np.arange(m)[system.input_slice(i)][None, :]).ravel() for i in range(M)]
    factors = [cho_factor(block_hessian(system, N, Q, R, P, i, reached[i]), lower=True)[0] for i in range(M)]
    hessian = HessianOperator(system, N, Q, R, P)

    def scaled(w: np.ndarray) -> np.ndarray:   # L^-1 H L^-T w, L = blockdiag(L_i)
        v = np.empty_like(w)
        for L, c in zip(factors, columns):
            v[c] = solve_triangular(L, w[c], lower=True, trans="T", check_finite=False)
        Hv = hessian.apply(v)
        for L, c in zip(factors, columns):
            Hv[c] = solve_triangular(L, Hv[c], lower=True, check_finite=False)
        return Hv

    size = N * m
    operator = LinearOperator((size, size), matvec=scaled, dtype=float)
    start = np.ones(size) / np.sqrt(size)
    curvature = float(eigsh(operator, k=1, which="LA", tol=LANCZOS_TOLERANCE, v0=start,
                            return_eigenvectors=False)[0]) * (1.0 + CURVATURE_MARGIN)
    # structure: which agents' inputs reach each agent's states
    reaching = [set() for _ in range(M)]
    for j in range(M):
        states = reached_states(system, j, N, STRUCTURE_TOLERANCE)
        for a in agents_of(system.state_offsets, states):
            reaching[a].add(j)
    widest_state = max((len(r) for r in reaching), default=0)
    subs = system.subsystems   # an agent's state rows involve the agents reaching it; its mixed rows also itself
    widest_row = max([1] + [len(reaching[a]) for a in range(M) if subs[a].state_constraint.h.size]
                     + [len(reaching[a] | {a}) for a in range(M) if subs[a].mixed_constraint is not None])
    shared = system.shared_input_constraint
    if shared is not None:
        widest_row = max(widest_row, max(len(agents_of(system.input_offsets, np.flatnonzero(row))) for row in shared.H))
    if terminal_set is not None:
        for row in terminal_set.H:
            owners = agents_of(system.state_offsets, np.flatnonzero(row))
            widest_row = max(widest_row, len(set().union(*(reaching[a] for a in owners))) if owners else 0)
    return ParallelStepBounds(curvature, widest_row, widest_state)
