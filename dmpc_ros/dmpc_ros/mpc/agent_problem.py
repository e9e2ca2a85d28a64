"""An agent's block of the finite-horizon problem: its own inputs U_i are the variables, the others' are fixed.

Cooperative schemes use the plant-wide objective and every constraint row U_i affects; non-cooperative schemes
use the agent's own cost terms and its own constraint rows. The block lives on the agent's neighbourhood
(mpc/neighbourhood.py): the view V_i it simulates and the observed agents O_i ⊆ V_i whose predicted states are
exact. With X = X(U) the view's prediction (k = 0..N) and G its response to U_i, the block QP is
    min ½ U_i' H_ii U_i + q' U_i   s.t.  C_i U_i ≤ h − W_x X(U) − W_u U + C_i U_i^view,
    H_ii = 2 (G' Q̄_O G + R̄_ii),  q = ∇_{U_i} V(U) − H_ii U_i^view,  C_i = W_x G + W_u[:, own],
where Q̄_O weighs the observed states only and every row is a sparse combination (W_x, W_u) of the observed agents'
states and the view's inputs. The matrices are built once; per iteration the agent simulates its view once and
forms (q, upper) from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..models.linear import CoupledLinearSystem, PolytopicConstraint
from .condensed import QuadraticCost
from .input_parametrization import ControlHorizons, InputParametrization
from .neighbourhood import (INFLUENCE_TOLERANCE, SubNetwork, agents_of, reached_states, sources_of, sparse_rows,
                            stacked_indices, toeplitz_response)
from .projection import Projection
from .qp import QPSolution
from .reference import ReferenceTrajectory
from .terminal import lqr_terminal

ZERO_TOLERANCE = 1e-12   # a row whose own-input coefficients are all below this is not the agent's business


@dataclass(frozen=True)
class Rows:
    """Rows W_x X + W_u U ≤ h on the stacked view states X (k = 0..N) and view inputs U (both time-major)."""

    Wx: sp.csr_matrix
    Wu: sp.csr_matrix
    h: np.ndarray

    def select(self, keep: np.ndarray) -> "Rows":
        return Rows(self.Wx[keep], self.Wu[keep], self.h[keep])

    @staticmethod
    def of(x_entries: list, u_entries: list, bounds: list, shape: tuple[int, int]) -> "Rows":
        """Rows from (row, column, value) triples on X and on U, and their bounds."""
        count = len(bounds)
        return Rows(sparse_rows(x_entries, (count, shape[0])), sparse_rows(u_entries, (count, shape[1])),
                    np.asarray(bounds, float))

    @staticmethod
    def stack(parts: list["Rows"], shape_x: int, shape_u: int) -> "Rows":
        parts = [p for p in parts if p.h.size]
        if not parts:
            return Rows(sp.csr_matrix((0, shape_x)), sp.csr_matrix((0, shape_u)), np.zeros(0))
        return Rows(sp.vstack([p.Wx for p in parts]).tocsr(), sp.vstack([p.Wu for p in parts]).tocsr(),
                    np.concatenate([p.h for p in parts]))


def significant_agents(system: CoupledLinearSystem, rows: np.ndarray, matrix: np.ndarray, relative: float) -> set[int]:
    """Agents whose states have an entry of matrix[rows] above relative · max|matrix| (0: any non-zero entry)."""
    if rows.size == 0:
        return set()
    block = np.abs(matrix[rows])
    top = float(np.max(np.abs(matrix), initial=0.0))
    columns = np.flatnonzero(np.max(block, axis=0) > relative * top) if top > 0 else np.zeros(0, int)
    return agents_of(system.state_offsets, columns)


class AgentBlockQP:
    def __init__(self, system: CoupledLinearSystem, horizon: int, cost: QuadraticCost, agent: int,
                 objective: str = "plant", constraints: str = "affected", backend: str = "daqp",
                 terminal_set: PolytopicConstraint | None = None, terminal_gain: np.ndarray | None = None,
                 collision=None, control_horizons: ControlHorizons | None = None) -> None:
        if objective not in ("plant", "own"):
            raise ValueError(f"objective '{objective}' unknown: allowed plant, own")
        if constraints not in ("affected", "own"):
            raise ValueError(f"constraints '{constraints}' unknown: allowed affected, own")
        self.agent, self.horizon, self.constraints, self.backend = agent, horizon, constraints, backend
        N, i = horizon, agent
        own_states = np.arange(system.n_x)[system.state_slice(i)]
        Q, R, P = cost.Q, cost.R, cost.P
        reached = reached_states(system, i, N) if (objective == "plant" or constraints == "affected") else own_states
        reached = np.union1d(reached, own_states)
        observed = {i} | agents_of(system.state_offsets, reached)
        if objective == "plant":
            observed |= significant_agents(system, reached, Q, 0.0)
            observed |= significant_agents(system, reached, P, INFLUENCE_TOLERANCE)
        if terminal_gain is not None:   # the own tail u = K x̂_N of the shifted plan
            observed |= significant_agents(system, np.arange(system.n_u)[system.input_slice(i)], terminal_gain,
                                           INFLUENCE_TOLERANCE)
        if collision is not None:
            for a in list(observed if constraints == "affected" else {i}):
                observed |= collision.partners(a)
        affected_terminal = terminal_set is not None and constraints == "affected"
        if affected_terminal:
            observed |= agents_of(system.state_offsets, np.flatnonzero(np.any(terminal_set.H, axis=0)))
        view = set(observed) | sources_of(system, stacked_indices(system.state_offsets, sorted(observed)), N)
        own_inputs = np.arange(system.n_u)[system.input_slice(i)]
        if objective == "plant":
            view |= agents_of(system.input_offsets, np.flatnonzero(np.any(R[own_inputs], axis=0)))
        shared = system.shared_input_constraint
        shares = (shared is not None and constraints == "affected"
                  and bool(np.any(shared.H[:, system.input_slice(i)])))
        if shares:
            view |= agents_of(system.input_offsets, np.flatnonzero(np.any(shared.H, axis=0)))
        if len(view) == system.num_agents:   # the view is the plant: every prediction is exact, every row known
            observed = set(view)
        self.network = net = SubNetwork.of(system, view)
        self.observed = tuple(sorted(observed))
        self.observed_states = net.local_states(self.observed)            # exact predictions (local indices)
        n_V, m_V = net.n_x, net.n_u
        self.own_inputs = net.local_inputs([i])
        self.own_columns = (np.arange(N)[:, None] * m_V + self.own_inputs[None, :]).ravel()   # in flat U
        responses = net.impulse_responses(self.own_inputs, N)
        self.G = toeplitz_response(responses, np.arange(n_V))                # (N+1) n_V × N m_i
        # cost on the observed states: stage weight Q_O at k = 1..N−1, terminal P_O at k = N, none at k = 0
        Q_O, P_O, self.R_rows = self._weights(system, cost, objective)
        per_step = self.G.reshape(N + 1, n_V, -1)      # G_k: response of x(k) to U_i
        self.Wq = np.hstack([np.zeros((per_step.shape[2], n_V))]
                            + [2.0 * per_step[k].T @ (Q_O if k < N else P_O) for k in range(1, N + 1)])
        R_ii = self.R_rows[:, self.own_inputs]
        self.H_ii = self.Wq @ self.G + 2.0 * np.kron(np.eye(N), R_ii)
        self.H_ii = 0.5 * (self.H_ii + self.H_ii.T)
        self.reference = ReferenceTrajectory(cost.reference.states[:, net.state_index],
                                             cost.reference.inputs[:, net.input_index])
        self.own_cost = cost.block(system.state_slice(i), system.input_slice(i))
        self.input_sets = {a: system.subsystems[a].input_constraint for a in net.members}
        self.state_sets = {a: system.subsystems[a].state_constraint for a in net.members}
        self.own_subsystem = system.subsystems[i]
        self.num_agents = system.num_agents
        self._reference_step, self._reference_values = None, (np.zeros(0), np.zeros(0))
        # constraint rows the own inputs affect
        shape_x, shape_u = (N + 1) * n_V, N * m_V
        self.row_shape = (shape_x, shape_u)
        # Repair rows: every row on the observed agents' states (predicted exactly) and the view's inputs; where the
        # view is the whole plant they are all rows, the same in every agent, so all repair to the same point. QP
        # rows: those of them the own inputs affect.
        row_agents = list(self.observed) if constraints == "affected" else [i]
        input_agents = list(net.members) if constraints == "affected" else [i]
        parts = [self._agent_rows(system, row_agents, input_agents)]
        parts += ([self._shared_rows(shared)] if shares else []) + \
            ([self._terminal_rows(terminal_set)] if affected_terminal else [])
        self.repair_rows = Rows.stack(parts, *self.row_shape)
        self.rows, self.C_i = self._affected(self.repair_rows)
        self._X = np.zeros((N + 1, net.n_x))
        self.control_horizons = control_horizons
        self.parametrization = self._parametrization(system, terminal_gain)
        self._view_free = self._view_free_steps()
        # columns (of one step of the view inputs) of the members whose tail is held: a shifted plan appends their
        # last input, which keeps it in their parametrized set
        self.held_columns = np.flatnonzero(self._view_free < N)
        self.set_step_rows(Rows.stack([], shape_x, shape_u))

    # -- construction -------------------------------------------------------------------------------------------
    def _parametrization(self, system, terminal_gain: np.ndarray | None) -> InputParametrization:
        """The own inputs' control horizon (mpc/input_parametrization.py): the identity without one."""
        horizons, N = self.control_horizons, self.horizon
        m_i = self.own_inputs.size
        if horizons is None or horizons.of(self.agent, N) >= N:
            return InputParametrization(N, np.full(m_i, N))
        gain = None
        if horizons.tail == "terminal":
            own = np.arange(system.n_u)[system.input_slice(self.agent)]
            gain = terminal_gain[np.ix_(own, self.network.state_index)]
        return InputParametrization(N, np.full(m_i, horizons.of(self.agent, N)), horizons.tail, self.G, gain)

    def _view_free_steps(self) -> np.ndarray:
        """Per view input column, the free steps of its member: N_c where the member's tail is held, else N."""
        horizons, net, N = self.control_horizons, self.network, self.horizon
        free = np.full(net.n_u, N)
        for a in net.members:
            if horizons is not None and horizons.holds(a, N):
                free[net.input_slices[a]] = horizons.of(a, N)
        return free

    def _held_basis(self) -> sp.csr_matrix | None:
        """The view inputs U = T w with every held member's tail tied to its last free input (None: no such
        member), so that the feasibility repair keeps the plans in their parametrized sets."""
        if self.held_columns.size == 0:
            return None
        return sp.csr_matrix(InputParametrization(self.horizon, self._view_free).T)

    def held_view_tails(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat view input columns of the other members' held tails, the column each copies: u(N_c − 1))."""
        free, N = self._view_free.copy(), self.horizon
        free[self.own_inputs] = N   # the own tail is the law's variable, not a parameter
        tails = InputParametrization(N, free)
        m_V = free.size
        entries = tails.tail_entries
        return entries, (free[entries % m_V] - 1) * m_V + entries % m_V

    def _weights(self, system, cost: QuadraticCost, objective: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Q_O, P_O, R_i·) on the observed states and the view inputs: the plant-wide weights, or only the agent's
        own terms with the DARE terminal cost of its own dynamics (non-cooperative)."""
        net, i = self.network, self.agent
        observed, own_inputs = self.observed_states, np.arange(system.n_u)[system.input_slice(i)]
        Q_O, P_O = np.zeros((net.n_x, net.n_x)), np.zeros((net.n_x, net.n_x))
        if objective == "plant":
            plant = net.state_index[observed]
            Q_O[np.ix_(observed, observed)] = cost.Q[np.ix_(plant, plant)]
            P_O[np.ix_(observed, observed)] = cost.P[np.ix_(plant, plant)]
            return Q_O, P_O, cost.R[np.ix_(own_inputs, net.input_index)]
        xs, us = system.state_slice(i), system.input_slice(i)
        own = net.local_states([i])
        Q_O[np.ix_(own, own)] = cost.Q[xs, xs]
        P_O[np.ix_(own, own)] = lqr_terminal(system.A[i][i], system.B[i][i], cost.Q[xs, xs], cost.R[us, us])[0]
        R_rows = np.zeros((own_inputs.size, net.n_u))
        R_rows[:, self.own_inputs] = cost.R[us, us]
        return Q_O, P_O, R_rows

    def state_column(self, agent: int, k: int, component: int) -> int:
        """Column of x_agent[component](k) in the stacked view states X (k = 0..N)."""
        return k * self.network.n_x + self.network.state_slices[agent].start + component

    def input_column(self, agent: int, t: int, component: int) -> int:
        """Column of u_agent[component](t) in the flat view inputs U."""
        return t * self.network.n_u + self.network.input_slices[agent].start + component

    def _selection(self, blocks: list[tuple[np.ndarray, int]], width: int) -> sp.csr_matrix:
        """Stacked rows [0 … H … 0], each H (rows × columns of one agent) starting at its local column."""
        rows, columns, values, offset = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)], 0
        for H, start in blocks:
            r, c = np.nonzero(H)
            rows.append(r + offset)
            columns.append(c + start)
            values.append(H[r, c])
            offset += H.shape[0]
        return sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
                             shape=(offset, width))

    def _agent_rows(self, system, state_agents: list[int], input_agents: list[int]) -> Rows:
        """State rows (k = 1..N) and mixed rows (t = 0..N−1) of `state_agents`, input rows of `input_agents`,
        grouped by time step: one sparse product per kind."""
        net, N = self.network, self.horizon
        subs = system.subsystems
        n_V, m_V = net.n_x, net.n_u
        later = sp.eye(N, N + 1, k=1, format="csr")      # selects x(1..N) among x(0..N)
        earlier = sp.eye(N, N + 1, format="csr")         # selects x(0..N−1)
        states = [(subs[a].state_constraint.H, net.state_slices[a].start) for a in state_agents]
        inputs = [(subs[a].input_constraint.H, net.input_slices[a].start) for a in input_agents]
        with_mixed = [a for a in state_agents if subs[a].mixed_constraint is not None and a in net.input_slices]
        Sx, Su = self._selection(states, n_V), self._selection(inputs, m_V)
        Mx = self._selection([(subs[a].mixed_constraint.Hx, net.state_slices[a].start) for a in with_mixed], n_V)
        Mu = self._selection([(subs[a].mixed_constraint.Hu, net.input_slices[a].start) for a in with_mixed], m_V)
        bound = lambda parts: np.tile(np.concatenate([np.zeros(0)] + parts), N)   # noqa: E731
        no_u, no_x = lambda r: sp.csr_matrix((r, N * m_V)), lambda r: sp.csr_matrix((r, (N + 1) * n_V))  # noqa: E731
        Wx = sp.vstack([sp.kron(later, Sx), no_x(N * Su.shape[0]), sp.kron(earlier, Mx)], format="csr")
        Wu = sp.vstack([no_u(N * Sx.shape[0]), sp.kron(sp.eye(N), Su), sp.kron(sp.eye(N), Mu)], format="csr")
        h = np.concatenate([bound([subs[a].state_constraint.h for a in state_agents]),
                            bound([subs[a].input_constraint.h for a in input_agents]),
                            bound([subs[a].mixed_constraint.h for a in with_mixed])])
        return Rows(Wx, Wu, h.astype(float))

    def _shared_rows(self, shared: PolytopicConstraint) -> Rows:
        """S u(t) ≤ s at every t on the view's inputs (the view holds every agent the rows involve)."""
        N, net = self.horizon, self.network
        Wu = sp.kron(sp.eye(N), sp.csr_matrix(shared.H[:, net.input_index]), format="csr")
        return Rows(sp.csr_matrix((Wu.shape[0], self.row_shape[0])), Wu, np.tile(shared.h, N).astype(float))

    def _terminal_rows(self, terminal_set: PolytopicConstraint) -> Rows:
        """H_T x(N) ≤ h_T on the view's states (the view holds the set's support)."""
        net, size = self.network, terminal_set.h.size
        at_end = sp.csr_matrix(([1.0], ([0], [self.horizon])), shape=(1, self.horizon + 1))
        Wx = sp.kron(at_end, sp.csr_matrix(terminal_set.H[:, net.state_index]), format="csr")
        return Rows(Wx, sp.csr_matrix((size, self.row_shape[1])), terminal_set.h.astype(float))

    def _affected(self, rows: Rows) -> tuple[Rows, np.ndarray]:
        """The rows the own inputs affect, and their coefficients C on U_i."""
        C = np.asarray(rows.Wx @ self.G) + rows.Wu[:, self.own_columns].toarray() if rows.h.size \
            else np.zeros((0, self.own_columns.size))
        keep = np.flatnonzero(np.max(np.abs(C), axis=1, initial=0.0) > ZERO_TOLERANCE)
        return rows.select(keep), C[keep]

    def set_step_rows(self, rows: Rows) -> None:
        """Rows that hold for the current control step only (collision half-planes, plan-compatibility bounds);
        the ones the own inputs affect join the QP (its matrices are rebuilt)."""
        self.all_step_rows = rows
        self.step_rows, Ce_i = self._affected(rows)
        qp_rows = Rows.stack([self.rows, self.step_rows], *self.row_shape)
        self._W = sp.hstack([qp_rows.Wx, qp_rows.Wu], format="csr")   # QP rows on [X; U] (one product per solve)
        self._h, self._C = qp_rows.h, np.vstack([self.C_i, Ce_i])
        self._lower = np.full(self._h.size, -np.inf)
        self.qp = self.parametrization.qp(self.H_ii, self._C, self.backend)

    # -- per iteration ------------------------------------------------------------------------------------------
    def interacting_agents(self) -> set[int]:
        """Agents whose initial states or inputs enter this block's data (whose plans the agent needs)."""
        return set(self.network.members) - {self.agent}

    def predict(self, x0: np.ndarray, U: np.ndarray) -> np.ndarray:
        """The view's predicted states x(0..N) (N+1 × n_V) under the view inputs U (flat, time-major); the
        returned array is reused by the next call."""
        return self.network.simulate(x0, U.reshape(self.horizon, -1), self._X)

    def _reference(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(X̄ flat, Ū_V: N × m_V) of the window starting at `step`, recomputed only when the step changes."""
        if step != self._reference_step:
            x_ref, u_ref = self.reference.window(step, self.horizon)
            self._reference_values = (x_ref.ravel(), u_ref)
            self._reference_step = step
        return self._reference_values

    def slack(self, x0: np.ndarray, U: np.ndarray, repair: bool = False) -> float:
        """Smallest slack under the view of this block's QP rows (repair: of the repair rows and all this step's
        rows)."""
        X = self.predict(x0, U).ravel()
        if not repair:
            return float(np.min(self._h - self._W @ np.concatenate([X, U]), initial=np.inf))
        slacks = [rows.h - rows.Wx @ X - rows.Wu @ U for rows in (self.repair_rows, self.all_step_rows)]
        return float(np.min(np.concatenate(slacks), initial=np.inf))

    def solve(self, x0: np.ndarray, U: np.ndarray, step: int = 0, warm_start: np.ndarray | None = None,
              extra_linear: np.ndarray | None = None) -> QPSolution:
        """Best own inputs at control step `step` given the view (x0, U), with an optional extra linear cost term on
        the own inputs (e.g. prices of a shared constraint)."""
        q, upper = self.qp_vectors(x0, U, step, extra_linear)
        if self.parametrization.tail == "terminal" and not self.parametrization.identity:
            # the terminal law's tail along the prediction without the own inputs (self._X: qp_vectors' prediction)
            free = self._X.ravel() - self.G @ U[self.own_columns]
            x_ref, u_ref = self._reference(step)
            self.qp.offset = self.parametrization.offset(free.reshape(self._X.shape), x_ref.reshape(self._X.shape),
                                                         u_ref[:, self.own_inputs])
        return self.qp.solve(q, self._lower, upper, warm_start)

    def qp_vectors(self, x0: np.ndarray, U: np.ndarray, step: int = 0,
                   extra_linear: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(q, upper) of the block QP at the view (x0, U): both affine in x0 and the others' inputs (the own inputs
        cancel), which is what the explicit solution is parametrized by (mpc/explicit_law.py)."""
        X = self.predict(x0, U).ravel()
        x_ref, u_ref = self._reference(step)
        U_own = U[self.own_columns]
        q = self.Wq @ (X - x_ref) + 2.0 * ((U.reshape(self.horizon, -1) - u_ref) @ self.R_rows.T).ravel() \
            - self.H_ii @ U_own
        if extra_linear is not None:
            q = q + extra_linear
        return q, self._h - self._W @ np.concatenate([X, U]) + self._C @ U_own

    def move_own(self, change: np.ndarray) -> np.ndarray:
        """The last prediction moved by a change of the own inputs (X += G ΔU_i, exact: the model is linear), so a
        plan after an update needs no second simulation; returns it (N+1 × n_V)."""
        self._X += (self.G @ change).reshape(self._X.shape)
        return self._X

    def project(self, x0: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, bool, float]:
        """The view inputs nearest to U that satisfy the repair rows (the cooperative feasibility repair), whether
        that worked, and the solve time. Built on demand: it needs the response of X to every view input."""
        net = self.network
        every_input = np.arange(net.n_u)
        Gamma = toeplitz_response(net.impulse_responses(every_input, self.horizon), np.arange(net.n_x))
        free = net.simulate(x0, np.zeros((self.horizon, net.n_u)), np.empty_like(self._X))
        rows = Rows.stack([self.repair_rows, self.all_step_rows], *self.row_shape)
        C = sp.csr_matrix(rows.Wx @ Gamma) + rows.Wu
        projection = Projection(sp.csr_matrix(C), self.backend, basis=self._held_basis())
        return projection.solve(rows.h - rows.Wx @ free.ravel(), U)


def positions_observed(block: AgentBlockQP, states: np.ndarray, columns: tuple[int, int],
                       num_agents: int) -> np.ndarray:
    """(N+1 × M × 2) planned positions of the observed agents from the view's predicted states (NaN elsewhere)."""
    positions = np.full((states.shape[0], num_agents, 2), np.nan)
    for a in block.observed:
        positions[:, a] = states[:, block.network.state_slices[a]][:, list(columns)]
    return positions
