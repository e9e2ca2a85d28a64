"""Condensed (input-only) form of the plant-wide finite-horizon problem and its per-agent blocks.

Prediction X = [x_1; …; x_N] = Φ x_0 + Γ U with U = [u_0; …; u_{N-1}] (every agent's inputs, time-major).
Plant-wide cost V(U) = Σ_k (x_k - x̄_k)'Q(x_k - x̄_k) + (u_k - ū_k)'R(u_k - ū_k) + (x_N - x̄_N)'P(x_N - x̄_N)
                     = ½ U'HU + (F x_0 + c(t))'U + const,   c(t) = L_x [x̄_1; …; x̄_N] + L_u [ū_0; …; ū_{N-1}]
with the reference window starting at the current step t (constant setpoints give a constant c).
Constraints C U ≤ d_0 + D x_0 stack every agent's input rows (k = 0..N-1), shared input rows, state rows
(k = 1..N), mixed state-input rows (k = 0..N-1) and optional terminal-set rows (k = N). An agent's block fixes
the other agents' inputs: its QP has only its own inputs as variables (N·n_u,i) and keeps just the rows its
inputs affect, so it stays small.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..models.linear import CoupledLinearSystem, PolytopicConstraint
from .parallel_step import ParallelStepBounds, parallel_step_bounds
from .reference import ReferenceTrajectory

TERMINAL_ROW, SHARED_ROW = -1, -2  # row owners that are no single agent


def objective_couplings(system: CoupledLinearSystem, Q: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, whose states the stage weight Q couples (non-zero off-diagonal blocks)."""
    return [(i, j) for i in range(system.num_agents) for j in range(i + 1, system.num_agents)
            if np.any(Q[system.state_slice(i), system.state_slice(j)])]


def prediction_matrices(A: np.ndarray, B: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(Φ, Γ) with [x_1; …; x_N] = Φ x_0 + Γ [u_0; …; u_{N-1}]."""
    n, m = B.shape
    Phi = np.zeros((horizon * n, n))
    Gamma = np.zeros((horizon * n, horizon * m))
    power = np.eye(n)
    powers_B = []
    for k in range(horizon):
        powers_B.append(power @ B)          # A^k B
        power = A @ power
        Phi[k * n:(k + 1) * n] = power      # A^{k+1}
    for k in range(horizon):
        for j in range(k + 1):
            Gamma[k * n:(k + 1) * n, j * m:(j + 1) * m] = powers_B[k - j]
    return Phi, Gamma


@dataclass(frozen=True)
class QuadraticCost:
    """Stage weights Q (n×n), R (m×m), terminal P (n×n) and the reference x̄(k), ū(k) they are taken around."""

    Q: np.ndarray
    R: np.ndarray
    P: np.ndarray
    reference: ReferenceTrajectory

    def stage(self, x: np.ndarray, u: np.ndarray, step: int = 0) -> float:
        x_ref, u_ref = self.reference.at(step)
        dx, du = x - x_ref, u - u_ref
        return float(dx @ self.Q @ dx + du @ self.R @ du)

    def block(self, states: slice, inputs: slice) -> "QuadraticCost":
        """The terms of one agent's states and inputs (its share of a cost without coupling terms)."""
        return QuadraticCost(self.Q[states, states], self.R[inputs, inputs], self.P[states, states],
                             self.reference.block(states, inputs))

    def trajectory(self, states: np.ndarray, inputs: np.ndarray, step: int = 0) -> float:
        """Cost of states (N+1 × n) and inputs (N × m) starting at `step`, including x_0's stage term and
        the terminal term."""
        x_ref, u_ref = self.reference.window(step, inputs.shape[0])
        dx = states - x_ref
        du = inputs - u_ref
        stage = np.sum((dx[:-1] @ self.Q) * dx[:-1]) + np.sum((du @ self.R) * du)
        return float(stage + dx[-1] @ self.P @ dx[-1])


@dataclass(frozen=True)
class CondensedProblem:
    """The plant-wide condensed QP data; blocks for agents are views into it (see AgentBlock)."""

    system: CoupledLinearSystem
    horizon: int
    cost: QuadraticCost
    Phi: np.ndarray
    Gamma: np.ndarray
    H: np.ndarray          # N m × N m
    F: np.ndarray          # N m × n   (linear term F x_0 + c(t))
    L_x: np.ndarray        # N m × N n (c(t) = L_x x̄_{1..N} + L_u ū_{0..N-1})
    L_u: np.ndarray        # N m × N m
    C: np.ndarray          # rows × N m
    d0: np.ndarray         # rows
    D: np.ndarray          # rows × n
    row_owner: np.ndarray  # agent whose constraint each row is (TERMINAL_ROW, SHARED_ROW for the others)
    terminal_set: PolytopicConstraint | None = None

    @staticmethod
    def build(system: CoupledLinearSystem, horizon: int, cost: QuadraticCost,
              terminal_set: PolytopicConstraint | None = None) -> "CondensedProblem":
        A, B = system.full_matrices()
        n, m, N = system.n_x, system.n_u, horizon
        Phi, Gamma = prediction_matrices(A, B, N)
        Qbar = np.kron(np.eye(N), cost.Q)
        Qbar[-n:, -n:] = cost.P
        Rbar = np.kron(np.eye(N), cost.R)
        H = 2.0 * (Gamma.T @ Qbar @ Gamma + Rbar)
        F = 2.0 * Gamma.T @ Qbar @ Phi
        L_x, L_u = -2.0 * Gamma.T @ Qbar, -2.0 * Rbar

        rows_C, rows_d, rows_D, owner = [], [], [], []
        for k in range(N):
            for i, sub in enumerate(system.subsystems):
                Hu, hu = sub.input_constraint.H, sub.input_constraint.h
                if hu.size:
                    block = np.zeros((hu.size, N * m))
                    block[:, k * m + system.input_offsets[i]: k * m + system.input_offsets[i + 1]] = Hu
                    rows_C.append(block)
                    rows_d.append(hu)
                    rows_D.append(np.zeros((hu.size, n)))
                    owner += [i] * hu.size
        shared = system.shared_input_constraint
        if shared is not None:  # rows on every agent's inputs at once (owner −2)
            for k in range(N):
                block = np.zeros((shared.h.size, N * m))
                block[:, k * m:(k + 1) * m] = shared.H
                rows_C.append(block)
                rows_d.append(shared.h)
                rows_D.append(np.zeros((shared.h.size, n)))
                owner += [SHARED_ROW] * shared.h.size
        for k in range(N):
            for i, sub in enumerate(system.subsystems):
                Hx, hx = sub.state_constraint.H, sub.state_constraint.h
                if hx.size:
                    rows = Gamma[k * n:(k + 1) * n][system.state_slice(i)]
                    rows_C.append(Hx @ rows)
                    rows_d.append(hx)
                    rows_D.append(-Hx @ Phi[k * n:(k + 1) * n][system.state_slice(i)])
                    owner += [i] * hx.size
        for k in range(N):  # mixed rows Hx x_k + Hu u_k ≤ h (x_0 is the measured state)
            for i, sub in enumerate(system.subsystems):
                mixed = sub.mixed_constraint
                if mixed is None:
                    continue
                block = np.zeros((mixed.h.size, N * m))
                block[:, k * m + system.input_offsets[i]: k * m + system.input_offsets[i + 1]] = mixed.Hu
                state_map = np.eye(n) if k == 0 else Phi[(k - 1) * n:k * n]
                if k > 0:
                    block += mixed.Hx @ Gamma[(k - 1) * n:k * n][system.state_slice(i)]
                rows_C.append(block)
                rows_d.append(mixed.h)
                rows_D.append(-mixed.Hx @ state_map[system.state_slice(i)])
                owner += [i] * mixed.h.size
        if terminal_set is not None:
            rows_C.append(terminal_set.H @ Gamma[-n:])
            rows_d.append(terminal_set.h)
            rows_D.append(-terminal_set.H @ Phi[-n:])
            owner += [TERMINAL_ROW] * terminal_set.h.size
        C = np.vstack(rows_C) if rows_C else np.zeros((0, N * m))
        d0 = np.concatenate(rows_d) if rows_d else np.zeros(0)
        D = np.vstack(rows_D) if rows_D else np.zeros((0, n))
        return CondensedProblem(system, N, cost, Phi, Gamma, 0.5 * (H + H.T), F, L_x, L_u, C, d0, D,
                                np.array(owner, int), terminal_set)

    def input_indices(self, agent: int) -> np.ndarray:
        """Positions of agent's inputs in U (time-major)."""
        m = self.system.n_u
        cols = np.arange(self.system.input_offsets[agent], self.system.input_offsets[agent + 1])
        return (np.arange(self.horizon)[:, None] * m + cols[None, :]).ravel()

    @cached_property
    def sparse_constraints(self) -> sp.csr_matrix:
        """C as a sparse matrix (computed once per problem; agents in one process share it)."""
        return sp.csr_matrix(self.C)

    @cached_property
    def parallel_step(self) -> ParallelStepBounds:
        """Structure bounds for the step of a parallel (Jacobi) block update (computed once per problem)."""
        system, n = self.system, self.system.n_x
        state_rows = [np.concatenate([np.arange(k * n, (k + 1) * n)[system.state_slice(i)]
                                      for k in range(self.horizon)]) for i in range(system.num_agents)]
        return parallel_step_bounds(self.H, self.C, self.Gamma,
                                    [self.input_indices(i) for i in range(system.num_agents)], state_rows)

    def assemble(self, plans: dict) -> np.ndarray:
        """Time-major U from each agent's planned inputs (agent id → Plan)."""
        U = np.zeros(self.H.shape[0])
        for agent_id, plan in plans.items():
            U[self.input_indices(agent_id)] = plan.inputs.ravel()
        return U

    def predict(self, x0: np.ndarray, U: np.ndarray) -> np.ndarray:
        """States x_0..x_N (N+1 × n) under U."""
        return np.vstack([x0, (self.Phi @ x0 + self.Gamma @ U).reshape(self.horizon, -1)])

    def reference_offset(self, step: int) -> np.ndarray:
        """c(t) of the linear cost term for the horizon starting at `step`."""
        return reference_term(self.L_x, self.L_u, self.cost.reference, step, self.horizon)

    def cost_value(self, x0: np.ndarray, U: np.ndarray, step: int = 0) -> float:
        return self.cost.trajectory(self.predict(x0, U), U.reshape(self.horizon, -1), step)

    def constraint_slack(self, x0: np.ndarray, U: np.ndarray) -> float:
        """min over rows of (d0 + D x0 - C U): negative means a violated constraint."""
        if self.d0.size == 0:
            return np.inf
        return float(np.min(self.d0 + self.D @ x0 - self.C @ U))

    def unconstrained_minimizer(self, x0: np.ndarray, step: int = 0) -> np.ndarray:
        return np.linalg.solve(self.H, -(self.F @ x0 + self.reference_offset(step)))


class PlantPrediction:
    """Plant-wide predictions by sparse simulation, O(N·nnz(A)) per call: what a driver records (assembled plans,
    their states and cost) without any agent's matrices or the dense condensed form."""

    def __init__(self, system: CoupledLinearSystem, horizon: int, cost: QuadraticCost) -> None:
        self.system, self.horizon, self.cost = system, horizon, cost
        self.A, self.B = system.sparse_matrices()
        m = system.n_u
        self._columns = {j: (np.arange(horizon)[:, None] * m + np.arange(system.input_offsets[j],
                                                                         system.input_offsets[j + 1])[None, :]).ravel()
                         for j in range(system.num_agents)}

    def assemble(self, plans: dict) -> np.ndarray:
        """Time-major U from each agent's planned inputs (agent id → Plan)."""
        U = np.zeros(self.horizon * self.system.n_u)
        for agent_id, plan in plans.items():
            U[self._columns[agent_id]] = plan.inputs.ravel()
        return U

    def predict(self, x0: np.ndarray, U: np.ndarray) -> np.ndarray:
        """States x_0..x_N (N+1 × n) under U."""
        inputs = U.reshape(self.horizon, -1)
        states = np.empty((self.horizon + 1, x0.size))
        states[0] = x0
        for k in range(self.horizon):
            states[k + 1] = self.A @ states[k] + self.B @ inputs[k]
        return states

    def cost_value(self, x0: np.ndarray, U: np.ndarray, step: int = 0) -> float:
        return self.cost.trajectory(self.predict(x0, U), U.reshape(self.horizon, -1), step)


def reference_term(L_x: np.ndarray, L_u: np.ndarray, reference: ReferenceTrajectory, step: int,
                   horizon: int) -> np.ndarray:
    """L_x [x̄_1; …; x̄_N] + L_u [ū_0; …; ū_{N-1}] for the reference window starting at `step`."""
    x_ref, u_ref = reference.window(step, horizon)
    return L_x @ x_ref[1:].ravel() + L_u @ u_ref.ravel()
