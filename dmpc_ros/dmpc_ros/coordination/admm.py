"""ADMM DMPC with neighbour-to-neighbour communication only (consensus on the coupling variables).

Agent i optimizes its own trajectory w_i = (x_i, u_i) and local copies c_ij of the parts of its in-neighbours'
trajectories that enter its dynamics (x_j over k = 0..N−1 where A_ij ≠ 0, u_j where B_ij ≠ 0) or its cost (x_j of
every coupling term it owns: objective coupling, e.g. formation edges). Every copy
pair (owner j's segment, holder i's copy) agrees through an edge variable z_e, with one multiplier at each end
(λ_own held by j, λ_copy held by i) — the edge-based consensus form of ADMM. One negotiation iteration p:
  z-update   z_e = ½[(ŵ + λ_own/ρ) + (ĉ + λ_copy/ρ)]  from both ends' values of iteration p−1 (ŵ, ĉ
             over-relaxed: α w + (1 − α) z_prev), computed identically by both ends of the edge;
  λ-update   λ ← λ + ρ(value − z) for the multipliers the agent holds;
  local QP   min own cost + Σ_edges λ'(value − z) + ρ/2‖value − z‖² over w_i and the copies, s.t. own
             dynamics (copies as inputs), own constraints, copies' initial states = the measured ones.
Residuals: primal r = ‖values − z‖ over the agent's edges, dual s = ρ‖z − z_prev‖ (AgentStatus reports both).
Optional residual balancing adapts ρ per edge from that edge's residuals, which both of its ends compute alike; it
may change ρ_e at most `balancing_limit` times per step and keeps it within a factor `penalty_range` of the initial
ρ, so every step ends with plain fixed-ρ ADMM (convergent for these convex QPs) on a bounded ρ. Safeguard: the final
iterate is applied only if its local merit is at most 10× the step’s warm start’s (coordination/merit.py).
The agent publishes its trajectory, copies and multipliers as the plan's algorithm data. Converges to the
centralized optimum of the problem with a separable terminal cost (Σ_i x_i,N' P_ii x_i,N).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import block_diag

from ..mpc.condensed import prediction_matrices
from ..mpc.qp import DenseQP
from ..mpc.reference import ReferenceTrajectory
from ..mpc.terminal import lqr_terminal
from .base import Agent, StepStatistics, StoppingRule
from .merit import WarmStartSafeguard
from .plan import Plan
from .safe_input import InputGuard
from .safety_filter import AffineStep


@dataclass(frozen=True)
class AdmmSettings:
    # Defaults from bench/admm_penalty.py (tolerance 1e-4): residual balancing every 5th iteration from ρ = 0.3
    # without over-relaxation needed 0.34–0.78× the mean iterations of the former fixed ρ = 0.3, α = 1.6 on the
    # chain, the mass-spring scenario, the platoon and the formation; balancing every iteration refactors the QP so
    # often that it cost more time than it saved; balancing with α = 1.6 from ρ = 1 took 2× more on mass-spring.
    penalty: float = 0.3            # ρ (the initial value when balancing)
    over_relaxation: float = 1.0    # α ∈ [1, 2): 1 is plain ADMM
    residual_balancing: bool = True   # adapt ρ per edge: ×τ if r_e > μ s_e, ÷τ if s_e > μ r_e
    balancing_ratio: float = 10.0   # μ
    balancing_factor: float = 2.0   # τ
    balancing_interval: int = 5     # iterations between penalty updates (each one refactors the local QP)
    balancing_limit: int = 3        # penalty changes per edge and step, then ρ_e is frozen for the step
    penalty_range: float = 1e3      # ρ_e stays within [ρ / range, ρ · range]
    acceleration: bool = False      # Nesterov momentum on (z, λ) per edge with restart (Goldstein et al. 2014)
    restart_ratio: float = 0.999    # η: restart when the combined residual does not fall below η × the last one

    def __post_init__(self) -> None:
        if not self.penalty > 0:
            raise ValueError(f"ADMM penalty ρ must be > 0, got {self.penalty}")
        if not 1.0 <= self.over_relaxation < 2.0:
            raise ValueError(f"ADMM over-relaxation α must be in [1, 2), got {self.over_relaxation}")
        if not (self.balancing_ratio > 1 and self.balancing_factor > 1):
            raise ValueError(f"ADMM residual balancing needs μ > 1 and τ > 1, got μ={self.balancing_ratio}, "
                             f"τ={self.balancing_factor}")
        if not (isinstance(self.balancing_interval, int) and self.balancing_interval >= 1):
            raise ValueError(f"ADMM balancing interval must be an integer >= 1, got {self.balancing_interval}")
        if not (isinstance(self.balancing_limit, int) and self.balancing_limit >= 0):
            raise ValueError(f"ADMM balancing limit must be an integer >= 0, got {self.balancing_limit}")
        if not self.penalty_range >= 1:
            raise ValueError(f"ADMM penalty range must be >= 1, got {self.penalty_range}")
        if not 0 < self.restart_ratio < 1:
            raise ValueError(f"ADMM restart ratio η must be in (0, 1), got {self.restart_ratio}")


@dataclass
class Momentum:
    """Nesterov state of one edge: step a_k, last combined residual c_k and the unaccelerated z_k, own λ_k."""

    step: float
    residual: float
    z: np.ndarray
    multiplier: np.ndarray


@dataclass(frozen=True)
class Segment:
    """One coupling variable: agent `owner`'s state ('x') or input ('u') trajectory over k = 0..N−1."""

    owner: int
    kind: str
    size: int        # per time step


WARM_START_APPLIED = "warm_start_applied"   # the scheme's counter (schemes/admm.py declares its meaning)
# the warm start is a fallback only if it meets this step's own rows (states, mixed, collision planes) to this
# margin; the merit has no term for them, so an infeasible warm start would look cheaper than a feasible iterate
FEASIBILITY_TOLERANCE = 1e-6


class AdmmAgent(Agent):
    sequential = False

    def __init__(self, agent_id: int, design, stopping: StoppingRule, settings: AdmmSettings = AdmmSettings(),
                 backend: str = "daqp") -> None:
        system, N = design.system, design.horizon
        self.agent_id, self.N, self.stopping, self.settings = agent_id, N, stopping, settings
        self.system = system
        cost = design.cost()
        i = agent_id
        xs, us = system.state_slice(i), system.input_slice(i)
        self.n, self.m = system.subsystems[i].n_x, system.subsystems[i].n_u
        self.own_cost = cost.block(xs, us)
        self.reference = cost.reference
        # Coupling segments: copies this agent holds (in-edges) and own segments others copy (out-edges):
        # neighbours' states/inputs entering the own dynamics, and states of the other agent of every cost
        # term this agent owns.
        owned = [t for t in design.coupling_terms if t.owner == i]
        cost_in = {t.other for t in owned}
        cost_out = {t.owner for t in design.coupling_terms if t.other == i}
        self.copies = [Segment(j, kind, size) for j in range(system.num_agents) if j != i
                       for kind, coupled, size in (("x", np.any(system.A[i][j]) or j in cost_in,
                                                    system.subsystems[j].n_x),
                                                   ("u", np.any(system.B[i][j]), system.subsystems[j].n_u)) if coupled]
        self.copied = [(k, kind) for k in range(system.num_agents) if k != i
                       for kind, coupled in (("x", np.any(system.A[k][i]) or k in cost_out),
                                             ("u", np.any(system.B[k][i]))) if coupled]
        self.required_plans = frozenset({s.owner for s in self.copies} | {k for k, _ in self.copied}
                                        | (design.collision.partners(i) if design.collision else set()))

        # Decision vector v, time-major: v(k) = [u_i(k), copy_1(k), copy_2(k), ...].
        widths = [self.m] + [s.size for s in self.copies]
        self.step_width = sum(widths)
        offsets = np.concatenate([[0], np.cumsum(widths)])
        per_step = lambda a, b: (np.arange(N)[:, None] * self.step_width + np.arange(a, b)[None, :]).ravel()  # noqa: E731
        self.u_index = per_step(0, self.m)
        self.copy_index = [per_step(offsets[c + 1], offsets[c + 2]) for c in range(len(self.copies))]
        E = np.hstack([system.B[i][i]] + [system.A[i][s.owner] if s.kind == "x" else system.B[i][s.owner]
                                          for s in self.copies])
        self.Phi, self.Gamma = prediction_matrices(system.A[i][i], E, N)   # x_i(1..N) = Φ x_i(0) + Γ v
        nv = N * self.step_width

        # Local cost in v: the own block of Q's separable remainder plus the owned pair terms, on the local
        # state s_k = (x_i(k), copies of the term partners' x_j(k)) for k = 1..N−1, and x_i(N)' P_ii x_i(N);
        # built once with the ρ-terms; only the linear term changes.
        Su = np.zeros((N * self.m, nv))
        Su[np.arange(N * self.m), self.u_index] = 1.0
        self.Su = Su
        Psi, psi, Qbar, self.local_states = self._local_cost_maps(design, cost, owned)
        Rbar = np.kron(np.eye(N), cost.R[us, us])
        self._free_map, self._Qbar, self._Rbar = psi, Qbar, Rbar   # the constant of the local cost (the merit)
        self.H_cost = 2.0 * (Psi.T @ Qbar @ Psi + Su.T @ Rbar @ Su)
        # Linear cost term F x_i(0) + c(t), fixed matrices (x_i(0), the reference window, z and λ change).
        self.F_cost = 2.0 * Psi.T @ Qbar @ psi
        self.Lx_cost, self.Lu_cost = -2.0 * Psi.T @ Qbar, -2.0 * Su.T @ Rbar
        self.input_columns = us
        # the reference of the local states and own inputs only (the linear term's; nothing plant-wide per step)
        self.local_reference = ReferenceTrajectory(cost.reference.states[:, self.local_states],
                                                   cost.reference.inputs[:, us])
        # Own segments others copy: segment = T v + C x_i(0), one map per kind ('x', 'u').
        self.segment_maps = {kind: self._own_segment_maps(kind) for kind in {kind for _, kind in self.copied}}
        # Penalty ρ_e per edge; both ends of an edge adapt it identically (residual balancing).
        self.rho = {("in", s.owner, s.kind): settings.penalty for s in self.copies}
        self.rho.update({("out", k, kind): settings.penalty for k, kind in self.copied})
        self.rho_changes: dict[tuple, int] = {}   # penalty changes per edge in this step (balancing_limit)
        self.safeguard = WarmStartSafeguard()
        self._counterparts: dict[tuple, np.ndarray] = {}   # edge → the other end's newest value (for the merit)
        # Constraints: own states (k = 1..N) and inputs; copies' initial states fixed (equalities).
        sub = system.subsystems[i]
        Hx, hx = sub.state_constraint.H, sub.state_constraint.h
        self.state_rows = np.kron(np.eye(N), Hx) @ self.Gamma if hx.size else np.zeros((0, nv))
        Hu, hu = sub.input_constraint.H, sub.input_constraint.h
        self.input_rows = np.kron(np.eye(N), Hu) @ Su if hu.size else np.zeros((0, nv))
        # Mixed rows Hx x_i(k) + Hu u_i(k) ≤ h, k = 0..N−1: Mv v ≤ h − Mx x_i(0).
        mixed = sub.mixed_constraint
        if mixed is not None:
            Hx_k = np.kron(np.eye(N), mixed.Hx)
            state_map = np.zeros((N * self.n, nv))          # x_i(0..N−1) = S_v v + S_x x_i(0)
            state_map[self.n:] = self.Gamma[: (N - 1) * self.n]
            self.mixed_x0 = Hx_k @ np.vstack([np.eye(self.n), self.Phi[: (N - 1) * self.n]])
            self.mixed_rows = Hx_k @ state_map + np.kron(np.eye(N), mixed.Hu) @ Su
            self.mixed_h = np.tile(mixed.h, N)
        else:
            self.mixed_rows, self.mixed_x0, self.mixed_h = np.zeros((0, nv)), np.zeros((0, self.n)), np.zeros(0)
        fixed = []
        for s, index in zip(self.copies, self.copy_index):
            if s.kind == "x":
                fixed.extend(index[: s.size])
        self.fixed_index = np.array(fixed, int)
        fixed_rows = np.zeros((self.fixed_index.size, nv))
        fixed_rows[np.arange(self.fixed_index.size), self.fixed_index] = 1.0
        fixed_rows = np.vstack([fixed_rows, self._held_rows(design.control_horizons, nv)])
        # Input copies stay in their owners' input sets (redundant at consensus; it bounds what an unconverged copy
        # can differ from the owner's plan, which tube mode needs when inputs couple).
        copy_rows, self.copy_input_h = [np.zeros((0, nv))], [np.zeros(0)]
        for s, index in zip(self.copies, self.copy_index):
            owner_set = system.subsystems[s.owner].input_constraint
            if s.kind == "u" and owner_set.h.size:
                rows = np.zeros((N * owner_set.h.size, nv))
                rows[:, index] = np.kron(np.eye(N), owner_set.H)
                copy_rows.append(rows)
                self.copy_input_h.append(np.tile(owner_set.h, N))
        self.copy_input_h = np.concatenate(self.copy_input_h)
        self.inequality_rows = np.vstack([self.state_rows, self.input_rows, self.mixed_rows] + copy_rows)
        self._fixed_rows, self._backend = fixed_rows, backend
        # Rows valid for the current step only (collision half-planes): rows v ≤ upper − map x_i(0).
        self.collision = design.collision
        self.step_rows, self._step_x0, self._step_b = np.zeros((0, nv)), np.zeros((0, self.n)), np.zeros(0)
        self.qp = self._build_qp()
        self.hx_stacked = np.tile(hx, N)
        self.hu_stacked = np.tile(hu, N)
        self.Hx_stacked = np.kron(np.eye(N), Hx) if hx.size else np.zeros((0, N * self.n))
        _, self.K = lqr_terminal(system.A[i][i], system.B[i][i], cost.Q[xs, xs], cost.R[us, us])

        self.v = np.zeros(nv)
        self.x0 = np.zeros(self.n)
        self._candidate = np.zeros(self.m)
        self.guard = InputGuard.of(system.subsystems[i])
        self.neighbour_x0: dict[int, np.ndarray] = {}
        self.z: dict[tuple, np.ndarray] = {}         # edge key → consensus value (N × size)
        self.lambdas: dict[tuple, np.ndarray] = {}   # edge key → the multiplier this agent holds
        self.momentum: dict[tuple, Momentum] = {}    # edge key → Nesterov state (acceleration only; per step)
        self.step, self.iteration = -1, 0
        self._stats = StepStatistics()
        self._plan: Plan | None = None

    def _local_cost_maps(self, design, cost, owned) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(Ψ, ψ, Q̄, plant indices of s): stacked local states [s_1; …; s_N] = Ψ v + ψ x_i(0) and their weight."""
        system, N, i = self.system, self.N, self.agent_id
        index_of = lambda j: np.arange(system.n_x)[system.state_slice(j)]  # noqa: E731
        partners = sorted({t.other for t in owned})
        states = np.concatenate([index_of(i)] + [index_of(j) for j in partners])
        position = {j: self.n + sum(system.subsystems[p].n_x for p in partners[:q]) for q, j in enumerate(partners)}
        n_loc, nv = states.size, N * self.step_width
        W = np.zeros((n_loc, n_loc))
        W[: self.n, : self.n] = design.separable_remainder()[system.state_slice(i), system.state_slice(i)]
        for t in owned:
            local = np.r_[np.arange(self.n), position[t.other] + np.arange(system.subsystems[t.other].n_x)]
            W[np.ix_(local, local)] += t.W
        Psi, psi = np.zeros((N * n_loc, nv)), np.zeros((N * n_loc, self.n))
        copy_of = {s.owner: c for c, s in enumerate(self.copies) if s.kind == "x"}
        for k in range(1, N + 1):
            rows = slice((k - 1) * n_loc, k * n_loc)
            Psi[rows][: self.n] = self.Gamma[(k - 1) * self.n:k * self.n]
            psi[rows][: self.n] = self.Phi[(k - 1) * self.n:k * self.n]
            if k < N:
                for j in partners:
                    size = system.subsystems[j].n_x
                    columns = self.copy_index[copy_of[j]].reshape(N, size)[k]
                    Psi[rows][position[j] + np.arange(size), columns] = 1.0
        terminal = np.zeros((n_loc, n_loc))
        terminal[: self.n, : self.n] = cost.P[system.state_slice(i), system.state_slice(i)]
        Qbar = block_diag(*([W] * (N - 1) + [terminal]))
        return Psi, psi, Qbar, states

    def _held_rows(self, horizons, nv: int) -> np.ndarray:
        """Equalities u(k) − u(N_c − 1) = 0 for k ≥ N_c of a held control-horizon tail (the local QP keeps its
        variables: the copies share its time steps; DAQP eliminates the equalities)."""
        N, m = self.N, self.m
        start = N if horizons is None or horizons.tail != "hold" else horizons.of(self.agent_id, N)
        self._held_count = (N - start) * m
        rows = np.zeros((self._held_count, nv))
        for r, (k, c) in enumerate((k, c) for k in range(start, N) for c in range(m)):
            rows[r, self.u_index[k * m + c]] = 1.0
            rows[r, self.u_index[(start - 1) * m + c]] = -1.0
        return rows

    def _hessian(self) -> np.ndarray:
        """The local QP's Hessian for the current edge penalties: own cost + ρ_e on every copy and copied segment."""
        H = self.H_cost.copy()
        for c, s in enumerate(self.copies):
            index = self.copy_index[c]
            H[index, index] += self.rho[("in", s.owner, s.kind)]
        for k, kind in self.copied:
            T = self.segment_maps[kind][0]
            H += self.rho[("out", k, kind)] * T.T @ T
        return H

    def _build_qp(self) -> DenseQP:
        """The local QP for the current edge penalties and rows (rebuilt when this step's rows change)."""
        H = self._hessian()
        inequalities = np.vstack([self.inequality_rows, self.step_rows])
        equality = np.r_[np.zeros(inequalities.shape[0], bool), np.ones(self._fixed_rows.shape[0], bool)]
        return DenseQP(H, np.vstack([inequalities, self._fixed_rows]), self._backend, equalities=equality)

    def _set_collision_rows(self, plans: Mapping[int, Plan]) -> None:
        """This step's half-planes against each collision partner, from the warm starts both ends announced at
        iteration 0 (own: the current v); a partner without a plan keeps no plane this step (counted)."""
        own = self._states(self.v)
        positions = np.full((self.N + 1, self.system.num_agents, 2), np.nan)
        columns = list(self.collision.position_columns)
        positions[:, self.agent_id] = own[:, columns]
        pairs = []
        for pair in self.collision.pairs:
            if self.agent_id in pair:
                other = pair[1] if pair[0] == self.agent_id else pair[0]
                if other in plans:
                    positions[:, other] = plans[other].states[:, columns]
                    pairs.append(pair)
                else:
                    self._stats.fallbacks += 1
        G, self._step_b = replace(self.collision, pairs=tuple(pairs)).state_rows(
            positions, {self.agent_id: 0}, self.n, agents={self.agent_id})   # on the own x_i(1..N)
        self.step_rows, self._step_x0 = G @ self.Gamma, G @ self.Phi
        self.qp = self._build_qp()

    # -- maps ----------------------------------------------------------------------------------------
    def _own_segment_maps(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(T, C) with the own segment over k = 0..N−1 equal to T v + C x_i(0)."""
        N, n, nv = self.N, self.n, self.N * self.step_width
        if kind == "u":
            return self.Su.copy(), np.zeros((N * self.m, n))
        T = np.zeros((N * n, nv))
        T[n:] = self.Gamma[: (N - 1) * n]
        C = np.zeros((N * n, n))
        C[:n] = np.eye(n)
        C[n:] = self.Phi[: (N - 1) * n]
        return T, C

    def _own_segment(self, kind: str, v: np.ndarray) -> np.ndarray:
        """The own segment as the plan publishes it (bit for bit), so both ends of an edge compute the same z, residuals
        and decisions (residual balancing, restarts) from the same numbers."""
        return self._states(v)[: self.N] if kind == "x" else v[self.u_index].reshape(self.N, self.m)

    def _copy(self, c: int, v: np.ndarray) -> np.ndarray:
        return v[self.copy_index[c]].reshape(self.N, -1)

    # -- contract --------------------------------------------------------------------------------------
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        if self.step >= 0:  # shift everything one step, own tail from the local LQR law
            x_N = self._states(self.v)[-1]
            x_ref, u_ref = self.own_cost.reference.at(self.step + self.N)
            # the local LQR law, scaled into the input set: after a jump of the reference (a formation switching
            # shape) K·error is far outside it, and a failed QP would apply this warm start
            tail = self.system.subsystems[self.agent_id].input_constraint.scaled_into(self.K @ (x_N - x_ref) + u_ref)
            v = self.v.reshape(self.N, self.step_width)
            if self._held_count:   # a held control-horizon tail appends its last input (the plan stays in the set)
                tail = v[-1, : self.m].copy()
            last = v[-1].copy()
            last[: self.m] = tail
            self.v = np.vstack([v[1:], last]).ravel()
            self.z = {key: np.vstack([value[1:], value[-1:]]) for key, value in self.z.items()}
            self.lambdas = {key: np.vstack([value[1:], value[-1:]]) for key, value in self.lambdas.items()}
            self.step_shifted = True
        else:  # first step: own inputs and the copies from the reference over the horizon
            self.v = self._reference_start(step)
            self.step_shifted = False   # no plan to shift: the reference is no fallback, the safeguard waits
        self.safeguard.start(None, float("inf"))
        self.step, self.iteration = step, 0
        self.momentum, self.rho_changes, self._counterparts = {}, {}, {}
        self._stats = StepStatistics()
        self.x0 = np.asarray(state, float).copy()
        self._candidate = self.v[self.u_index][: self.m].copy()
        self.solved = True
        self._set_step_terms()
        self._plan = self._make_plan(converged=False, final=False, feasible=True)
        return self._plan

    def _set_step_terms(self) -> None:
        """What x_i(0) and the reference window fix for the whole step, computed once per step instead of per
        iteration: the QP's linear cost term, the free response of the own segments and the own-state bounds."""
        x_ref, u_ref = self.local_reference.window(self.step, self.N)
        self._linear_base = self.F_cost @ self.x0 + self.Lx_cost @ x_ref[1:].ravel() + self.Lu_cost @ u_ref.ravel()
        free_error = self._free_map @ self.x0 - x_ref[1:].ravel()
        self._cost_constant = float(free_error @ self._Qbar @ free_error + u_ref.ravel() @ self._Rbar @ u_ref.ravel())
        self._free_segments = {kind: C @ self.x0 for kind, (_, C) in self.segment_maps.items()}
        self._upper_state = self.hx_stacked - self.Hx_stacked @ (self.Phi @ self.x0) if self.hx_stacked.size \
            else np.zeros(0)
        self._upper_mixed = self.mixed_h - self.mixed_x0 @ self.x0

    def _reference_start(self, step: int) -> np.ndarray:
        """v with the own inputs, the copied inputs and the copied states (k = 0..N−1) of the reference."""
        x_ref, u_ref = self.reference.window(step, self.N)
        v = np.zeros(self.N * self.step_width)
        v[self.u_index] = u_ref[:, self.input_columns].ravel()
        for s, index in zip(self.copies, self.copy_index):
            source = (x_ref[:-1, self.system.state_slice(s.owner)] if s.kind == "x"
                      else u_ref[:, self.system.input_slice(s.owner)])
            v[index] = source.ravel()
        return v

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        self.iteration += 1
        primal, dual = 0.0, 0.0
        edge_residuals = {}
        usable = {}
        for j in self.required_plans:
            plan = inbox.get(j)
            if plan is None or plan.step != self.step:
                self._stats.messages_missing += 1
            elif not self._valid(plan):
                self._stats.messages_rejected += 1
            else:
                usable[j] = plan
                self.neighbour_x0[j] = plan.states[0]
        if self.collision is not None and self.iteration == 1:
            self._set_collision_rows(usable)
        # z- and λ-updates on every edge, from both ends' values of the previous iteration; an edge whose
        # other end is silent holds its consensus value.
        for c, s in enumerate(self.copies):
            key, mine, plan = ("in", s.owner, s.kind), self._copy(c, self.v), usable.get(s.owner)
            if self._frozen(key, plan):
                continue
            if plan is None:
                theirs, their_lambda = self.z.get(key, mine), np.zeros_like(mine)
            else:
                theirs = plan.states[: self.N] if s.kind == "x" else plan.inputs
                their_lambda = plan.data.get(f"lambda_own_{s.kind}_{self.agent_id}", np.zeros_like(mine))
                self._counterparts[key] = theirs
            r, d = self._edge_update(key, theirs, their_lambda, mine, owner_side=False)
            primal, dual = primal + r, dual + self.rho[key] ** 2 * d
            if self._solved_at_both_ends(plan):
                edge_residuals[key] = (r, d)
        own_segments = {kind: self._own_segment(kind, self.v) for kind in self.segment_maps}   # one prediction
        for k, kind in self.copied:
            key, mine, plan = ("out", k, kind), own_segments[kind], usable.get(k)
            if self._frozen(key, plan):
                continue
            theirs = None if plan is None else plan.data.get(f"copy_{kind}_{self.agent_id}")
            if theirs is None or theirs.shape != mine.shape:
                theirs, their_lambda = self.z.get(key, mine), np.zeros_like(mine)
            else:
                their_lambda = plan.data.get(f"lambda_copy_{kind}_{self.agent_id}", np.zeros_like(mine))
                self._counterparts[key] = theirs
            r, d = self._edge_update(key, mine, self.lambdas.get(key, np.zeros_like(mine)), theirs, owner_side=True,
                                     their_lambda=their_lambda)
            primal, dual = primal + r, dual + self.rho[key] ** 2 * d
            if self._solved_at_both_ends(plan):
                edge_residuals[key] = (r, d)
        if self.settings.residual_balancing and self.iteration > 1 \
                and self.iteration % self.settings.balancing_interval == 0 and self._balance(edge_residuals):
            self.qp.set_hessian(self._hessian())   # same rows: the solver keeps its factorization work and active set
        if self.iteration == 1 and self.step_shifted and self.constraint_margin() >= -FEASIBILITY_TOLERANCE:
            self.safeguard.start(self.v.copy(), self._merit(self.v))   # a feasible shifted plan: the fallback
        solution = self.qp.solve(self._linear_term(), *self._bounds(), warm_start=self.v)
        self._stats.solve_times.append(solution.solve_time)
        old = self.v.copy()
        self.solved = solution.usable
        if solution.usable:
            self.v = solution.z
        else:
            self._stats.fallbacks += 1
            self._stats.count_failure(solution.infeasible)
        self._stats.iterations = self.iteration
        self._stats.primal_residual, self._stats.dual_residual = float(np.sqrt(primal)), float(np.sqrt(dual))
        scale = 1.0 + max((np.max(np.abs(z)) for z in self.z.values()), default=0.0)
        converged = (self.iteration > 1 and self._stats.primal_residual <= self.stopping.tolerance * scale
                     and self._stats.dual_residual <= self.stopping.tolerance * scale
                     and self.stopping.converged(self.v[self.u_index], old[self.u_index]))
        neighbours_done = all(j in inbox and inbox[j].step == self.step and inbox[j].converged
                              for j in self.required_plans)
        residual = max(self._stats.primal_residual / scale, self._stats.dual_residual / scale,
                       self.stopping.change(self.v[self.u_index], old[self.u_index]))
        final = self._stats.stop(self.stopping.at_limit(self.iteration), converged and neighbours_done, residual)
        if final and self.safeguard.rejects(self._merit(self.v)):
            self.v = self.safeguard.warm_start.copy()
            self._stats.count(WARM_START_APPLIED)
        self._plan = self._make_plan(converged=converged, final=final, feasible=solution.usable)
        return self._plan

    def _merit(self, v: np.ndarray) -> float:
        """Local merit of v (≥ 0): the local QP's cost part (own cost and owned pair terms, from x_i(0)) plus
        Σ_e ρ_e/2 ‖value_e − the other end's newest value‖² over the edges heard from this step."""
        merit = 0.5 * float(v @ self.H_cost @ v) + float(self._linear_base @ v) + self._cost_constant
        own = {kind: self._own_segment(kind, v) for kind in self.segment_maps}
        for c, s in enumerate(self.copies):
            key = ("in", s.owner, s.kind)
            if key in self._counterparts:
                merit += 0.5 * self.rho[key] * float(np.sum((self._copy(c, v) - self._counterparts[key]) ** 2))
        for k, kind in self.copied:
            key = ("out", k, kind)
            if key in self._counterparts:
                merit += 0.5 * self.rho[key] * float(np.sum((own[kind] - self._counterparts[key]) ** 2))
        return merit

    def _frozen(self, key: tuple, plan: Plan | None) -> bool:
        """An edge whose other end has stopped (its newest plan is final and older than iteration p − 1) keeps
        its consensus value and multipliers: updating them from that end's frozen values alone would integrate
        a one-sided residual (and, with residual balancing, let the two ends' ρ_e disagree)."""
        return (plan is not None and plan.final and plan.iteration < self.iteration - 1 and key in self.z)

    def _solved_at_both_ends(self, plan: Plan | None) -> bool:
        """Whether both ends' last local solves were usable (own: self.solved; theirs: their plan's flag), which both
        ends know alike. Residual balancing skips an edge otherwise: a failed solve keeps a stale iterate, whose
        primal residual would raise ρ_e, which worsens the conditioning and the next solve — the runaway measured on
        the load-frequency stress system (ρ_e up to 2.5e3 within five steps, local QPs failing)."""
        return self.solved and plan is not None and plan.feasible

    def _balance(self, edge_residuals: dict) -> bool:
        """Residual balancing per edge (Boyd et al. 2011, §3.4.1) from values both ends share; True if a ρ changed.
        An edge's ρ changes at most balancing_limit times per step and stays within penalty_range of the initial ρ:
        afterwards the step runs fixed-ρ ADMM, whose convergence does not depend on where ρ stopped."""
        settings = self.settings
        mu, tau = settings.balancing_ratio, settings.balancing_factor
        low, high = settings.penalty / settings.penalty_range, settings.penalty * settings.penalty_range
        changed = False
        for key, (r2, d2) in edge_residuals.items():
            if self.rho_changes.get(key, 0) >= settings.balancing_limit:
                continue
            r, s = np.sqrt(r2), self.rho[key] * np.sqrt(d2)
            target = self.rho[key] * tau if r > mu * s else self.rho[key] / tau if s > mu * r else self.rho[key]
            target = min(max(target, low), high)
            if target != self.rho[key]:
                self.rho[key] = target
                self.rho_changes[key] = self.rho_changes.get(key, 0) + 1
                changed = True
        return changed

    def _edge_update(self, key, owner_value, owner_lambda, copy_value, owner_side: bool, their_lambda=None):
        """z- and λ-update of one edge; returns (‖primal‖², ‖Δz‖²) contributions."""
        rho, alpha = self.rho[key], self.settings.over_relaxation
        if owner_side:
            own_lambda, copy_lambda = owner_lambda, their_lambda
        else:
            own_lambda, copy_lambda = owner_lambda, self.lambdas.get(key, np.zeros_like(copy_value))
        z_previous = self.z.get(key, 0.5 * (owner_value + copy_value))
        owner_hat = alpha * owner_value + (1 - alpha) * z_previous
        copy_hat = alpha * copy_value + (1 - alpha) * z_previous
        z = 0.5 * ((owner_hat + own_lambda / rho) + (copy_hat + copy_lambda / rho))
        held_previous = own_lambda if owner_side else copy_lambda
        held = held_previous + rho * ((owner_hat if owner_side else copy_hat) - z)
        residuals = (float(np.sum((owner_value - z) ** 2) + np.sum((copy_value - z) ** 2)),
                     float(np.sum((z - z_previous) ** 2)))
        if self.settings.acceleration:
            # the edge's combined residual (both ends have the values): ρ(|ŵ−z|² + |ĉ−z|² + |z−ẑ|²)
            combined = rho * (float(np.sum((owner_hat - z) ** 2) + np.sum((copy_hat - z) ** 2)) + residuals[1])
            z, held = self._accelerate(key, z, held, combined)
        self.lambdas[key], self.z[key] = held, z
        return residuals

    def _accelerate(self, key: tuple, z: np.ndarray, held: np.ndarray, combined: float) -> tuple[np.ndarray, ...]:
        """Fast ADMM with restart (Goldstein, O'Donoghue, Setzer, Baraniuk 2014, Alg. 8) on one edge: the next
        (ẑ, λ̂) extrapolate (z, λ) while the combined residual falls, else restart from the last iterate. Both ends
        decide alike (the residual is shared); each end extrapolates the multiplier it holds. After a restart the
        differences are taken from the iterate just computed, as in the paper."""
        state = self.momentum.get(key)
        if state is None:
            self.momentum[key] = Momentum(1.0, combined, z, held)
            return z, held
        eta = self.settings.restart_ratio
        if combined < eta * state.residual:
            step = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * state.step ** 2))
            weight = (state.step - 1.0) / step
            self.momentum[key] = Momentum(step, combined, z, held)
            return z + weight * (z - state.z), held + weight * (held - state.multiplier)
        self.momentum[key] = Momentum(1.0, state.residual / eta, z, held)
        return state.z, state.multiplier

    def _linear_term(self) -> np.ndarray:
        q = self._linear_base.copy()
        for c, s in enumerate(self.copies):
            key = ("in", s.owner, s.kind)
            z = self.z.get(key)
            if z is not None:
                q[self.copy_index[c]] += (self.lambdas[key] - self.rho[key] * z).ravel()
        for k, kind in self.copied:
            key = ("out", k, kind)
            z = self.z.get(key)
            if z is not None:
                q += self.segment_maps[kind][0].T @ (self.lambdas[key].ravel()
                                                     + self.rho[key] * (self._free_segments[kind] - z.ravel()))
        return q

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        fixed = []
        for s in self.copies:
            if s.kind == "x":
                fixed.append(self.neighbour_x0.get(s.owner, np.zeros(s.size)))
        fixed_values = np.concatenate(fixed + [np.zeros(self._held_count)])
        upper_step = self._step_b - self._step_x0 @ self.x0
        upper = np.concatenate([self._upper_state, self.hu_stacked, self._upper_mixed, self.copy_input_h, upper_step,
                                fixed_values])
        lower = np.concatenate([np.full(upper.size - fixed_values.size, -np.inf), fixed_values])
        return lower, upper

    def _valid(self, plan: Plan) -> bool:
        """Finite values and the dimensions this agent expects of that neighbour."""
        sub = self.system.subsystems[plan.agent]
        return plan.states.shape == (self.N + 1, sub.n_x) and plan.inputs.shape == (self.N, sub.n_u) and plan.finite

    def _states(self, v: np.ndarray) -> np.ndarray:
        return np.vstack([self.x0, (self.Phi @ self.x0 + self.Gamma @ v).reshape(self.N, self.n)])

    def _make_plan(self, converged: bool, final: bool, feasible: bool) -> Plan:
        states, inputs = self._states(self.v), self.v[self.u_index].reshape(self.N, self.m)
        cost = self.own_cost.trajectory(states, inputs, self.step)
        data = {}
        for c, s in enumerate(self.copies):
            data[f"copy_{s.kind}_{s.owner}"] = self._copy(c, self.v).copy()
            data[f"lambda_copy_{s.kind}_{s.owner}"] = self.lambdas.get(("in", s.owner, s.kind),
                                                                       np.zeros((self.N, s.size))).copy()
        for k, kind in self.copied:
            size = self.n if kind == "x" else self.m
            data[f"lambda_own_{kind}_{k}"] = self.lambdas.get(("out", k, kind), np.zeros((self.N, size))).copy()
        return Plan(agent=self.agent_id, step=self.step, iteration=self.iteration, states=states, inputs=inputs,
                    cost=cost, feasible=feasible, converged=converged, final=final, data=data)

    def planned_input(self) -> np.ndarray:
        return self.v[self.u_index][: self.m].copy()

    def candidate_input(self) -> np.ndarray:
        return self._candidate.copy()

    def measured_state(self) -> np.ndarray:
        return self.x0

    def one_step_model(self, own_state: np.ndarray | None = None) -> AffineStep:
        """x_i(1) = Φ_1 x_i + Γ_1 v with the own u_i(0) free and the copies of the neighbours' values held."""
        own, rest = self.u_index[: self.m], self.v.copy()
        rest[own] = 0.0
        x = self.x0 if own_state is None else own_state
        return AffineStep(self.Gamma[: self.n, own], self.Phi[: self.n] @ x + self.Gamma[: self.n] @ rest)

    def constraint_margin(self) -> float:
        rows = np.vstack([self.inequality_rows, self.step_rows])
        if rows.shape[0] == 0:
            return np.inf
        lower, upper = self._bounds()
        count = rows.shape[0]
        return float(np.min(upper[:count] - rows @ self.v))
