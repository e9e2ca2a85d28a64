"""The strong centralized baseline: a hand-built sparse MPC solved by OSQP, set up once, updated per step.

Variables z = [x_0; …; x_N; u_0; …; u_{N−1}]; equality rows x_0 = x(k), x_{k+1} = A x_k + B u_k; inequality rows
for every agent's state set (k = 1..N), input set, mixed rows (k = 0..N−1) and a shared input constraint. Only the
bounds (x(k)) and the linear cost (the reference window) change between steps; OSQP warm-starts from the previous
solution. The cost is the design's (stage Q, R; terminal P), so its closed loop is the centralized optimum the
distributed schemes are measured against. Written for the benchmarks only, independently of dmpc_ros's
centralized MPC (Clarabel), which it cross-checks.
"""
from __future__ import annotations

import time

import numpy as np
import osqp
import scipy.sparse as sp


class SparseOsqpMPC:
    def __init__(self, system, Q: np.ndarray, R: np.ndarray, P: np.ndarray, horizon: int, reference,
                 tolerance: float = 1e-6) -> None:
        A, B = system.sparse_matrices()
        n, m, N = system.n_x, system.n_u, horizon
        self.n, self.m, self.N, self.reference, self.Q, self.R, self.P = n, m, N, reference, Q, R, P
        Qs, Rs, Ps = sp.csc_matrix(Q), sp.csc_matrix(R), sp.csc_matrix(P)
        hessian = sp.block_diag([sp.kron(sp.eye(N), Qs), Ps, sp.kron(sp.eye(N), Rs)], format="csc") * 2.0
        dynamics = sp.hstack([sp.kron(sp.eye(N + 1), -sp.eye(n)) + sp.kron(sp.eye(N + 1, k=-1), A),
                              sp.vstack([sp.csc_matrix((n, N * m)), sp.kron(sp.eye(N), B)])])
        rows, lower, upper = [dynamics], [np.zeros((N + 1) * n)], [np.zeros((N + 1) * n)]
        subs = system.subsystems
        Hx = sp.block_diag([s.state_constraint.H for s in subs])
        hx = np.concatenate([s.state_constraint.h for s in subs])
        Hu = sp.block_diag([s.input_constraint.H for s in subs])
        hu = np.concatenate([s.input_constraint.h for s in subs])
        if hx.size:
            select = sp.hstack([sp.csc_matrix((N, 1)), sp.eye(N)])
            rows.append(sp.hstack([sp.kron(select, Hx), sp.csc_matrix((N * hx.size, N * m))]))
            upper.append(np.tile(hx, N))
        if hu.size:
            rows.append(sp.hstack([sp.csc_matrix((N * hu.size, (N + 1) * n)), sp.kron(sp.eye(N), Hu)]))
            upper.append(np.tile(hu, N))
        if system.shared_input_constraint is not None:
            shared = system.shared_input_constraint
            rows.append(sp.hstack([sp.csc_matrix((N * shared.h.size, (N + 1) * n)),
                                   sp.kron(sp.eye(N), sp.csc_matrix(shared.H))]))
            upper.append(np.tile(shared.h, N))
        mixed = [s.mixed_constraint for s in subs]
        if any(c is not None for c in mixed):
            Mx = sp.block_diag([c.Hx if c is not None else np.zeros((0, s.n_x)) for c, s in zip(mixed, subs)])
            Mu = sp.block_diag([c.Hu if c is not None else np.zeros((0, s.n_u)) for c, s in zip(mixed, subs)])
            mh = np.concatenate([c.h for c in mixed if c is not None])
            select = sp.hstack([sp.eye(N), sp.csc_matrix((N, 1))])
            rows.append(sp.hstack([sp.kron(select, Mx), sp.kron(sp.eye(N), Mu)]))
            upper.append(np.tile(mh, N))
        lower += [np.full(u.size, -np.inf) for u in upper[1:]]
        self._lower, self._upper = np.concatenate(lower), np.concatenate(upper)
        self._solver = osqp.OSQP()
        self._solver.setup(sp.triu(hessian, format="csc"), self._linear_cost(0), sp.vstack(rows, format="csc"),
                           self._lower, self._upper, verbose=False, warm_starting=True, polishing=False,
                           eps_abs=tolerance, eps_rel=tolerance, max_iter=50_000)
        self.last_time, self.last_status = 0.0, ""

    def _linear_cost(self, step: int) -> np.ndarray:
        x_ref, u_ref = self.reference.window(step, self.N)
        return -2.0 * np.concatenate([(x_ref[:-1] @ self.Q.T).ravel(), self.P @ x_ref[-1], (u_ref @ self.R.T).ravel()])

    def solve(self, x0: np.ndarray, step: int) -> np.ndarray:
        """u(k) of the optimal plan from x0 at `step`; the wall time of update + solve goes to last_time."""
        started = time.perf_counter()
        self._lower[: self.n] = self._upper[: self.n] = -x0
        self._solver.update(q=self._linear_cost(step), l=self._lower, u=self._upper)
        result = self._solver.solve(raise_error=False)
        self.last_time = time.perf_counter() - started
        self.last_status = result.info.status
        return result.x[(self.N + 1) * self.n:(self.N + 1) * self.n + self.m]


def closed_loop(design, plant, x0: np.ndarray, steps: int, tolerance: float = 1e-6) -> dict:
    """The baseline's closed loop: closed-loop cost (the simulator's stage cost), per-step times, statuses."""
    cost = design.shared_cost
    mpc = SparseOsqpMPC(design.system, cost.Q, cost.R, cost.P, design.horizon, design.reference, tolerance)
    x, total, times, statuses = np.asarray(x0, float), 0.0, [], set()
    for k in range(steps):
        u = mpc.solve(x, k)
        times.append(mpc.last_time)
        statuses.add(mpc.last_status)
        total += design.stage_cost(x, u, k)
        x = plant.step(x, u)
    return {"closed_loop_cost": total, "step_times": times, "statuses": sorted(statuses)}
