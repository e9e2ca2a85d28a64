"""Centralized MPC: the reference every distributed scheme is compared with.

One sparse QP over all states and inputs (x_0..x_N, u_0..u_{N-1}) with the dynamics as equality constraints,
solved by a back end of the registry serving the form `sparse` (mpc/qp_backends): by default the interior-point
solver Clarabel to tight tolerances (OSQP's first-order method needs seconds to reach 1e-10 on this problem). It
is deliberately *not* the condensed formulation or the solver the agents use, so agreement between the two is a
check of both.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from ..models.linear import CoupledLinearSystem, PolytopicConstraint
from ..mpc.condensed import QuadraticCost
from ..mpc.input_parametrization import ControlHorizons, ControlTailRows
from ..mpc.qp_backends import qp_backend
from .base import StepStatistics, record_safety
from .safety_filter import AffineStep


class CentralizedMPC:
    def __init__(self, system: CoupledLinearSystem, cost: QuadraticCost, horizon: int,
                 terminal_set: PolytopicConstraint | None = None, tolerance: float = 1e-9,
                 backend: str = "clarabel", control_horizons: ControlHorizons | None = None,
                 terminal_gain: np.ndarray | None = None) -> None:
        self._backend = qp_backend(backend, "sparse")
        self.system, self.cost, self.horizon = system, cost, horizon
        A, B = system.full_matrices()
        n, m, N = system.n_x, system.n_u, horizon
        self.n, self.m = n, m
        num_x = (N + 1) * n
        P = sp.block_diag([sp.kron(sp.eye(N), cost.Q), cost.P, sp.kron(sp.eye(N), cost.R)], format="csc")
        self._q_step: int | None = None
        # Dynamics: x_0 = x(k), x_{k+1} - A x_k - B u_k = 0.
        Ax = sp.kron(sp.eye(N + 1), -sp.eye(n)) + sp.kron(sp.eye(N + 1, k=-1), A)
        Bu = sp.vstack([sp.csc_matrix((n, N * m)), sp.kron(sp.eye(N), B)])
        rows = [sp.hstack([Ax, Bu])]
        upper = [np.zeros(num_x)]
        self._tail = ControlTailRows.of(system, N, control_horizons, terminal_gain)
        if self._tail.count:   # after N_c,i: held inputs, or the terminal law (equalities)
            rows.append(self._tail.rows)
            upper.append(np.zeros(self._tail.count))
        Hx = sp.block_diag([s.state_constraint.H for s in system.subsystems])
        hx = np.concatenate([s.state_constraint.h for s in system.subsystems])
        Hu = sp.block_diag([s.input_constraint.H for s in system.subsystems])
        hu = np.concatenate([s.input_constraint.h for s in system.subsystems])
        if hx.size:
            select = sp.hstack([sp.csc_matrix((N, 1)), sp.eye(N)])  # x_1..x_N
            rows.append(sp.hstack([sp.kron(select, Hx), sp.csc_matrix((N * hx.size, N * m))]))
            upper.append(np.tile(hx, N))
        if hu.size:
            rows.append(sp.hstack([sp.csc_matrix((N * hu.size, num_x)), sp.kron(sp.eye(N), Hu)]))
            upper.append(np.tile(hu, N))
        shared = system.shared_input_constraint
        if shared is not None:
            rows.append(sp.hstack([sp.csc_matrix((N * shared.h.size, num_x)),
                                   sp.kron(sp.eye(N), sp.csc_matrix(shared.H))]))
            upper.append(np.tile(shared.h, N))
        mixed = [s.mixed_constraint for s in system.subsystems]
        if any(c is not None for c in mixed):  # Hx x_k + Hu u_k ≤ h, k = 0..N−1
            Mx = sp.block_diag([c.Hx if c is not None else np.zeros((0, s.n_x))
                                for c, s in zip(mixed, system.subsystems)])
            Mu = sp.block_diag([c.Hu if c is not None else np.zeros((0, s.n_u))
                                for c, s in zip(mixed, system.subsystems)])
            mh = np.concatenate([c.h for c in mixed if c is not None])
            select = sp.hstack([sp.eye(N), sp.csc_matrix((N, 1))])  # x_0..x_{N-1}
            rows.append(sp.hstack([sp.kron(select, Mx), sp.kron(sp.eye(N), Mu)]))
            upper.append(np.tile(mh, N))
        if terminal_set is not None:
            last = sp.hstack([sp.csc_matrix((terminal_set.h.size, N * n)), sp.csc_matrix(terminal_set.H),
                              sp.csc_matrix((terminal_set.h.size, N * m))])
            rows.append(last)
            upper.append(terminal_set.h)
        self._rows, self._upper, self._P, self._num_x = rows, upper, sp.triu(2.0 * P, format="csc"), num_x
        self._num_equalities = num_x + self._tail.count
        self._tolerance = tolerance
        self._setup(np.zeros((0, N * n)), np.zeros(0), 0)

    def _setup(self, G: np.ndarray, g: np.ndarray, step: int) -> None:
        """(Re)build the solver with extra rows G [x_1; …; x_N] ≤ g for this step (none: G has no rows)."""
        rows, upper = list(self._rows), list(self._upper)
        if g.size:
            rows.append(sp.hstack([sp.csc_matrix((g.size, self.n)), sp.csc_matrix(G),
                                   sp.csc_matrix((g.size, self.horizon * self.m))]))
            upper.append(g)
        A_all = sp.vstack(rows, format="csc")
        self._b = np.concatenate(upper)
        self._solver = self._backend.sparse(self._P, self._linear_cost(step), A_all, self._b, self._num_equalities,
                                            self._tolerance)
        self._q_step, self._extra_rows = step, g.size
        self.last_solve_time = 0.0
        self.last_status = ""
        self.last_infeasible = False

    def _linear_cost(self, step: int) -> np.ndarray:
        """−2 [Q x̄_0; …; Q x̄_{N−1}; P x̄_N; R ū_0; …] for the reference window starting at `step`."""
        cost = self.cost
        x_ref, u_ref = cost.reference.window(step, self.horizon)
        return -2.0 * np.concatenate([(x_ref[:-1] @ cost.Q.T).ravel(), cost.P @ x_ref[-1], (u_ref @ cost.R.T).ravel()])

    def solve(self, x0: np.ndarray, step: int = 0,
              extra: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """(states N+1 × n, inputs N × m, ok) of the optimal plan from x0 at control step `step`, with optional
        rows G [x_1; …; x_N] ≤ g valid for this step only (e.g. collision half-planes)."""
        n, N = self.n, self.horizon
        if extra is not None or self._extra_rows:
            self._setup(*(extra if extra is not None else (np.zeros((0, N * n)), np.zeros(0))), step)
        self._b[:n] = -x0
        if self._tail.gain is not None:   # terminal tails: right-hand sides from this step's reference (hold: 0)
            self._b[self._num_x:self._num_equalities] = self._tail.bounds(self.cost.reference, step)
        if step != self._q_step:
            self._solver.update(q=self._linear_cost(step))
            self._q_step = step
        self._solver.update(b=self._b)
        started = time.perf_counter()
        result = self._solver.solve()
        self.last_solve_time = time.perf_counter() - started
        self.last_status, self.last_infeasible = result.status, result.infeasible
        z = np.asarray(result.x, float)
        ok = result.ok and bool(np.all(np.isfinite(z)))
        if not ok:
            return np.tile(x0, (N + 1, 1)), np.zeros((N, self.m)), False
        return z[: (N + 1) * n].reshape(N + 1, n), z[(N + 1) * n:].reshape(N, self.m), True


class CentralizedController:
    """The centralized MPC as a controller under the agents' rules (coordination/safe_input.py). A failed solve
    (Clarabel "InsufficientProgress", "PrimalInfeasible", …) is counted and applies the previous plan, shifted with
    the terminal law's tail u = ū + K (x̂ − x̄) scaled into each U_i (the reference inputs at the first step) —
    never a silent zero input."""

    def __init__(self, design) -> None:
        self.design = design
        self.mpc = CentralizedMPC(design.system, design.shared_cost, design.horizon, design.terminal_set,
                                  control_horizons=design.control_horizons,
                                  terminal_gain=None if design.control_horizons is None else design.terminal_gain())
        system = design.system
        self.guards = [design.input_guard(i) for i in range(system.num_agents)]
        self._slices = [(system.state_slice(i), system.input_slice(i)) for i in range(system.num_agents)]
        self._plan = np.zeros((design.horizon, system.n_u))
        self._candidate = np.zeros(system.n_u)   # first input of this step's candidate (the guard's fallback)
        self._x = np.zeros(system.n_x)
        self._solved = True
        self.statistics = StepStatistics()

    @property
    def last_solve_time(self) -> float:
        return self.mpc.last_solve_time

    def plan(self, x: np.ndarray, step: int,
             extra: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """(states, inputs, solved) of the plan it will apply at state x and step `step`."""
        mpc, N = self.mpc, self.design.horizon
        # the candidate's first input is the previous plan's second: the whole shifted plan only on failure
        first = self.design.reference.at(step)[1] if step == 0 else self._plan[min(1, N - 1)]
        states, inputs, ok = mpc.solve(x, step, extra)
        self.statistics = StepStatistics(iterations=1, solve_times=[mpc.last_solve_time],
                                         call_times=[mpc.last_solve_time])
        if not ok:
            self.statistics.fallbacks += 1
            self.statistics.count_failure(mpc.last_infeasible)
            inputs = self._shifted(x, step)
            states = self.design.predict(x, inputs.ravel()).reshape(N + 1, -1)
        self._plan, self._candidate, self._x, self._solved = inputs, np.asarray(first, float), np.asarray(x, float), ok
        return states, inputs, ok

    def control(self) -> np.ndarray:
        """u(k): each subsystem's part of the plan's first input, guarded like an agent's."""
        u, decisions = np.empty(self._plan.shape[1]), []
        A, B = self.design.system.full_matrices()
        planned = np.where(np.isfinite(self._plan[0]), self._plan[0], self._candidate)
        for guard, (xs, us) in zip(self.guards, self._slices):
            others = planned.copy()
            others[us] = 0.0   # the other subsystems at the plan's first input: x_i⁺ = B_ii u_i + the rest
            model = AffineStep(B[xs, us], A[xs] @ self._x + B[xs] @ others)
            decisions.append(guard.decide(self._plan[0, us], self._candidate[us], self._x[xs], model))
            u[us] = decisions[-1].input
        rule = next((d.rule for d in decisions if d.rule != "plan"), "plan")
        self.statistics.input_source = ("solved" if self._solved else "candidate") if rule == "plan" else rule
        record_safety(self.statistics, decisions)
        return u

    def _shifted(self, x: np.ndarray, step: int) -> np.ndarray:
        """The candidate plan at step `step`: the previous plan shifted (tail from the terminal law, scaled into each
        U_i); the reference inputs over the horizon at the first call."""
        design, N = self.design, self.design.horizon
        if step == 0 or not np.all(np.isfinite(self._plan)):
            return design.reference.window(step, N)[1].astype(float)
        inputs = np.vstack([self._plan[1:], self._plan[-1:]])
        predicted = design.predict(x, inputs.ravel()).reshape(N + 1, -1)
        x_ref, u_ref = design.reference.at(step + N - 1)
        tail = u_ref + design.terminal_gain() @ (predicted[N - 1] - x_ref)
        for guard, (_, us) in zip(self.guards, self._slices):
            tail[us] = guard.input_set.scaled_into(tail[us])
        inputs[-1] = tail
        return inputs
