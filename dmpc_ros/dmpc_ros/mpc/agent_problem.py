"""An agent's block of the condensed problem: its own inputs U_i are the variables, the others' are fixed.

Cooperative schemes use the plant-wide objective and every constraint row U_i affects; non-cooperative
schemes use the agent's own cost terms and its own constraint rows. Either way the QP matrices are built
once and only (q, bounds) change per iteration:
    min ½ U_i' H_ii U_i + (F_i x_0 + c_i(t) + H_io U_o)' U_i   s.t.  C_i U_i ≤ d_0 + D x_0 - C_o U_o,
with c_i(t) from the reference window of the current step t.
"""
from __future__ import annotations

import numpy as np

from .condensed import CondensedProblem, reference_term
from .qp import DenseQP, QPSolution
from .terminal import lqr_terminal

ZERO_TOLERANCE = 1e-12


class AgentBlockQP:
    def __init__(self, problem: CondensedProblem, agent: int, objective: str = "plant", constraints: str = "affected",
                 backend: str = "daqp") -> None:
        self.problem, self.agent = problem, agent
        self.own = problem.input_indices(agent)
        self.other = np.setdiff1d(np.arange(problem.H.shape[0]), self.own)
        if objective == "plant":
            H_rows, F_rows = problem.H[self.own], problem.F[self.own]
            Lx_rows, Lu_rows = problem.L_x[self.own], problem.L_u[self.own]
        elif objective == "own":
            H_rows, F_rows, Lx_rows, Lu_rows = own_cost_rows(problem, agent)
        else:
            raise ValueError(f"objective '{objective}' unknown: allowed plant, own")
        self.H_ii, self.H_io = H_rows[:, self.own], H_rows[:, self.other]
        self.F_i, self.L_x, self.L_u = F_rows, Lx_rows, Lu_rows
        self._offset_step, self._offset = None, np.zeros(self.own.size)
        C_own = problem.C[:, self.own]
        if constraints == "affected":
            rows = np.flatnonzero(np.max(np.abs(C_own), axis=1, initial=0.0) > ZERO_TOLERANCE)
        elif constraints == "own":
            rows = np.flatnonzero((problem.row_owner == agent)
                                  & (np.max(np.abs(C_own), axis=1, initial=0.0) > ZERO_TOLERANCE))
        else:
            raise ValueError(f"constraints '{constraints}' unknown: allowed affected, own")
        self.C_i, self.C_o = C_own[rows], problem.C[rows][:, self.other]
        self.d0, self.D = problem.d0[rows], problem.D[rows]
        self.constraints, self.backend = constraints, backend
        self.set_step_rows(np.zeros((0, problem.H.shape[0])), np.zeros(0))

    def set_step_rows(self, C: np.ndarray, d: np.ndarray) -> None:
        """Rows C U ≤ d that hold for the current control step only (e.g. collision half-planes), on the
        plant-wide U; the ones the own inputs affect join the QP (its matrices are rebuilt)."""
        affected = np.flatnonzero(np.max(np.abs(C[:, self.own]), axis=1, initial=0.0) > ZERO_TOLERANCE)
        self.Ce_i, self.Ce_o, self.de = C[affected][:, self.own], C[affected][:, self.other], d[affected]
        self.qp = DenseQP(self.H_ii, np.vstack([self.C_i, self.Ce_i]), self.backend)

    def interacting_agents(self) -> set[int]:
        """Agents whose inputs or initial states enter this block's QP data (whose plans the agent needs)."""
        system = self.problem.system
        used_inputs = (np.max(np.abs(self.H_io), axis=0, initial=0.0) > ZERO_TOLERANCE) | \
                      (np.max(np.abs(self.C_o), axis=0, initial=0.0) > ZERO_TOLERANCE)
        used_states = (np.max(np.abs(self.F_i), axis=0, initial=0.0) > ZERO_TOLERANCE) | \
                      (np.max(np.abs(self.D), axis=0, initial=0.0) > ZERO_TOLERANCE)
        m = system.n_u
        agents = {int(np.searchsorted(system.input_offsets, col % m, side="right") - 1)
                  for col in self.other[used_inputs]}
        agents |= {int(np.searchsorted(system.state_offsets, col, side="right") - 1)
                   for col in np.flatnonzero(used_states)}
        agents.discard(self.agent)
        return agents

    def reference_offset(self, step: int) -> np.ndarray:
        """c_i(step), recomputed only when the step changes."""
        if step != self._offset_step:
            self._offset = reference_term(self.L_x, self.L_u, self.problem.cost.reference, step, self.problem.horizon)
            self._offset_step = step
        return self._offset

    def slack(self, x0: np.ndarray, U: np.ndarray) -> float:
        """Smallest slack of this block's rows (and this step's rows it holds) at the plant-wide U."""
        U_own, U_other = U[self.own], U[self.other]
        slacks = np.concatenate([self.d0 + self.D @ x0 - self.C_o @ U_other - self.C_i @ U_own,
                                 self.de - self.Ce_o @ U_other - self.Ce_i @ U_own])
        return float(np.min(slacks, initial=np.inf))

    def solve(self, x0: np.ndarray, U: np.ndarray, step: int = 0, warm_start: np.ndarray | None = None,
              extra_linear: np.ndarray | None = None) -> QPSolution:
        """Best own inputs at control step `step` given x_0 and the others' inputs in U (the own part of U is
        ignored), with an optional extra linear cost term on the own inputs (e.g. prices of a shared constraint)."""
        U_other = U[self.other]
        q = self.F_i @ x0 + self.reference_offset(step) + self.H_io @ U_other
        if extra_linear is not None:
            q = q + extra_linear
        upper = np.concatenate([self.d0 + self.D @ x0 - self.C_o @ U_other, self.de - self.Ce_o @ U_other])
        return self.qp.solve(q, np.full(upper.size, -np.inf), upper, warm_start)


def own_cost_rows(problem: CondensedProblem, agent: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows (for the agent's inputs) of the Hessian / linear-term maps (H, F, L_x, L_u) of the agent's *own* cost:
    its states' and inputs' terms of Q and R, and a terminal cost from the DARE of its local dynamics."""
    system, cost, N = problem.system, problem.cost, problem.horizon
    n = system.n_x
    xs, us = system.state_slice(agent), system.input_slice(agent)
    Q_ii, R_ii = cost.Q[xs, xs], cost.R[us, us]
    P_ii, _ = lqr_terminal(system.A[agent][agent], system.B[agent][agent], Q_ii, R_ii)
    state_rows = np.concatenate([np.arange(n * k + xs.start, n * k + xs.stop) for k in range(N)])
    Gamma_i, Phi_i = problem.Gamma[state_rows], problem.Phi[state_rows]
    Qbar = np.kron(np.eye(N), Q_ii)
    Qbar[-Q_ii.shape[0]:, -Q_ii.shape[0]:] = P_ii
    own = problem.input_indices(agent)
    Rbar_rows = np.zeros((own.size, problem.H.shape[0]))
    Rbar_rows[:, own] = np.kron(np.eye(N), R_ii)
    weighted = Gamma_i[:, own].T @ Qbar
    H_rows = 2.0 * (weighted @ Gamma_i + Rbar_rows)
    F_rows = 2.0 * weighted @ Phi_i
    Lx_rows = np.zeros((own.size, N * n))
    Lx_rows[:, state_rows] = -2.0 * weighted
    Lu_rows = np.zeros((own.size, N * system.n_u))
    Lu_rows[:, own] = -2.0 * np.kron(np.eye(N), R_ii)
    return H_rows, F_rows, Lx_rows, Lu_rows
