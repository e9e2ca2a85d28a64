"""The nonlinear optimal control problem of a set of agents (one agent's local OCP, or all of them: the centralized
NLP), in multiple-shooting form, with CasADi Functions built once:

    min_w  Σ_m Σ_k ‖x_m,k − x̄‖²_Q + ‖u_m,k − ū‖²_R + Σ_j l_mj(x_m,k, x_j,k)
           +  ‖x_m,N − x̄‖²_P  +  γ'w
    s.t.   x_m,k+1 = Φ_m(x_m,k, u_m,k, z_m,k)   (λ),   z_m,k = the neighbours' (x_j,k, u_j,k, x_j,k+1),
           g_m(x_m,k, u_m,k) ≤ 0,  h_mj(x_m,k, x_j,k) ≤ 0   (μ),
           box limits on x and u,

w = [X (members' states k = 1..N); U (members' inputs k = 0..N−1)]. Neighbours outside the members enter as
parameters (their planned states and inputs), and so does γ, the linear term of the sensitivity-based scheme.
The Lagrangian convention is L = f + λ'c + μ'h with c = Φ − x⁺, as IPOPT's lam_g.

Solvers (`SOLVERS`): `sqp` (own SQP to tolerance: condensed QP on a back end of the registry, mpc/qp_backends, DAQP
by default; Gauss-Newton or regularized exact Hessian, ℓ1-merit line search), `rti` (one full SQP step per call,
preparation and feedback phases timed apart; Diehl's real-time iteration) and `ipopt` (the full NLP, the reference).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import casadi as ca
import numpy as np
from scipy.linalg import lu_factor, lu_solve

from ..models.coupled_limits import driven_by, outside_driven, own_reach
from ..models.nonlinear import NonlinearNetwork
from .compiled import BufferedFunction
from .input_parametrization import ControlHorizons
from .qp_backends import qp_backend

SOLVERS = ("sqp", "rti", "ipopt")
HESSIANS = ("gauss_newton", "exact")
REGULARIZATION = 1e-8     # a negative or vanishing eigenvalue of the condensed Hessian becomes this × the largest
CURVATURE_KEPT = 1e-13    # positive eigenvalues above this (relative to the largest) are kept as they are


@dataclass(frozen=True)
class SolverSettings:
    """How a local or central NLP is solved."""

    method: str = "sqp"
    hessian: str = "exact"
    max_iterations: int = 50          # SQP / IPOPT iterations per solve
    tolerance: float = 1e-8           # SQP: step and infeasibility; IPOPT: tol
    compile: bool = True              # build the SQP's Functions as C (mpc/compiled.py) when a compiler is present
    qp_backend: str = "daqp"          # SQP / RTI: the registry's back end of the QPs (forms dense_once, dense_soft)

    def __post_init__(self) -> None:
        if self.method not in SOLVERS:
            raise ValueError(f"solver method '{self.method}' is not allowed: one of {', '.join(SOLVERS)}")
        if self.hessian not in HESSIANS:
            raise ValueError(f"hessian '{self.hessian}' is not allowed: one of {', '.join(HESSIANS)}")


@dataclass(frozen=True)
class SoftLimits:
    """Exact-penalty (ℓ1) state limits for the states the neighbours drive (models/coupled_limits.py):
    x ≤ x_max + σ, x ≥ x_min − σ, σ ≥ 0, with ρ σ + ρ σ² / (2 span) added to the cost per limited state and step.
    With ρ above the limit's multiplier the solution is the hard-constrained one whenever that exists (exact
    penalty); when the frozen neighbours leave no feasible point the local problem still has a solution, its
    violation priced at ρ, which reaches the neighbours through the sensitivities. `penalty` None: ρ per state
    from the agent's weights, 20 (N λmax(Q) + λmax(P)) · span, ten times a bound of the cost's slope over the span."""

    penalty: float | None = None

    def weights(self, horizon: int, Q: np.ndarray, P: np.ndarray, span: np.ndarray) -> np.ndarray:
        """ρ per limited state (span: its limit range, 1 where a side is unbounded)."""
        if self.penalty is not None:
            return np.full(span.size, float(self.penalty))
        slope = 2 * (horizon * np.linalg.eigvalsh(Q)[-1] + np.linalg.eigvalsh(P)[-1]) * span
        return 10.0 * np.maximum(slope, 1e-6)


@dataclass
class OCPSolution:
    """Primal iterate, multipliers and what the solve did."""

    w: np.ndarray
    dynamics_multipliers: np.ndarray    # λ, one per row of c
    ok: bool
    status: str
    iterations: int
    solve_time: float                   # whole solve call [s]
    feedback_time: float = 0.0          # RTI: the feedback phase alone [s]
    infeasibility: float = 0.0          # max |c|, max(h, 0) at w
    infeasible: bool = False
    limit_violation: float = 0.0        # largest slack of the soft state limits (their violation) [state units]
    inequality_multipliers: np.ndarray = field(default_factory=lambda: np.zeros(0))   # μ, one per row of h


@dataclass
class Layout:
    """Where each member's and neighbour's blocks sit in w and in the parameter vector."""

    members: tuple[int, ...]
    external: tuple[int, ...]
    horizon: int
    n_x: dict[int, int]
    n_u: dict[int, int]
    copies: bool = False          # ADMM: the external agents' trajectories are variables (copies) after U
    x_index: dict[int, np.ndarray] = field(default_factory=dict)   # member → (N × n_x) indices in w
    u_index: dict[int, np.ndarray] = field(default_factory=dict)
    copy_index: dict[int, slice] = field(default_factory=dict)     # external → its copy [x_0..x_N; u_0..u_N−1]
    soft: dict[int, tuple[int, ...]] = field(default_factory=dict)  # member → its state components with soft limits
    slack_index: dict[int, np.ndarray] = field(default_factory=dict)   # member → (N × soft) slack indices in w
    neighbour_rows: dict[int, tuple[int, ...]] = field(default_factory=dict)   # neighbour j → its states whose
    # limits the member drives (rows j linearizes and sends: SoftLimits)
    row_slack_index: dict[int, np.ndarray] = field(default_factory=dict)       # j → (N × rows) slack indices
    held: dict[int, int] = field(default_factory=dict)   # member → N_c: its inputs after N_c repeat u(N_c − 1)

    def __post_init__(self) -> None:
        N, offset = self.horizon, 0
        for m in self.members:
            self.x_index[m] = offset + np.arange(N * self.n_x[m]).reshape(N, self.n_x[m])
            offset += N * self.n_x[m]
        for m in self.members:   # a held control-horizon tail: its rows alias row N_c − 1 (no variables of its own)
            free = self.held.get(m, N)
            rows = offset + np.arange(free * self.n_u[m]).reshape(free, self.n_u[m])
            self.u_index[m] = np.vstack([rows, np.repeat(rows[-1:], N - free, axis=0)])
            offset += free * self.n_u[m]
        self.own_size = offset                       # X and U: what γ weighs and what a plan carries
        for m in self.members:
            count = len(self.soft.get(m, ()))
            self.slack_index[m] = offset + np.arange(N * count).reshape(N, count)
            offset += N * count
        for j, components in self.neighbour_rows.items():
            self.row_slack_index[j] = offset + np.arange(N * len(components)).reshape(N, len(components))
            offset += N * len(components)
        self.decision_size = offset                  # X, U and the slacks of the soft limits
        for j in self.external if self.copies else ():
            size = self.trajectory_size(j)
            self.copy_index[j] = slice(offset, offset + size)
            offset += size
        self.size = offset
        self.num_states = sum(N * self.n_x[m] for m in self.members)

    def trajectory_size(self, j: int) -> int:
        """Entries of agent j's whole trajectory [x_0..x_N; u_0..u_N−1] (a copy, a sensitivity, a consensus)."""
        return (self.horizon + 1) * self.n_x[j] + self.horizon * self.n_u[j]

    def pack(self, states: dict[int, np.ndarray], inputs: dict[int, np.ndarray]) -> np.ndarray:
        """w from per-member states (N+1 × n_x, row 0 ignored) and inputs (N × n_u); copies left zero."""
        w = np.zeros(self.size)
        for m in self.members:
            w[self.x_index[m]] = states[m][1:]
            w[self.u_index[m]] = inputs[m]
        return w

    def states(self, w: np.ndarray, m: int, x0: np.ndarray) -> np.ndarray:
        return np.vstack([x0, w[self.x_index[m]]])

    def inputs(self, w: np.ndarray, m: int) -> np.ndarray:
        return w[self.u_index[m]]


class OptimalControlProblem:
    """The NLP of `members` with the other agents they couple to as parameters; every Function built here, once."""

    def __init__(self, network: NonlinearNetwork, members: tuple[int, ...], horizon: int,
                 terminal_weights: dict[int, np.ndarray], settings: SolverSettings = SolverSettings(),
                 copies: bool = False, soft_limits: SoftLimits | None = None,
                 control_horizons: ControlHorizons | None = None) -> None:
        """copies: ADMM's local problem of one member, its neighbours' trajectories as variables with the
        augmented-Lagrangian terms of every edge (as copier of its neighbours, as owner for its copiers).
        soft_limits: the limits of the states that agents outside the members drive become exact penalties.
        control_horizons: members with a held tail have N_c,m input variables, the rest of their inputs aliases the
        last one (w reads back all N; a gradient over the N inputs adds up onto the N_c variables)."""
        self.network, self.settings, N = network, settings, horizon
        self._qp_solver = qp_backend(settings.qp_backend, "dense_once")
        self._elastic_solver = qp_backend(settings.qp_backend, "dense_soft")   # inconsistent linearized rows
        self.members = tuple(members)
        external = sorted({j for m in members for j in network.neighbours(m)} - set(members))
        agents = network.agents
        soft = {} if soft_limits is None else {m: tuple(sorted(outside_driven(network, m, self.members)))
                                               for m in members}
        rows = {} if soft_limits is None or copies or len(members) != 1 else \
            {j: driven_by(network, j, members[0]) for j in external}
        rows = {j: components for j, components in rows.items() if components}
        if control_horizons is not None and control_horizons.tail != "hold" and control_horizons.shortened(N):
            raise ValueError(f"controller.control_tail: {control_horizons.tail} is not allowed for nonlinear "
                             f"problems: allowed hold")
        held = {} if control_horizons is None else {m: control_horizons.of(m, N) for m in members
                                                    if control_horizons.holds(m, N)}
        self.layout = layout = Layout(self.members, tuple(external), N, {a: agents[a].n_x for a in range(len(agents))},
                                      {a: agents[a].n_u for a in range(len(agents))}, copies, soft=soft,
                                      neighbour_rows=rows, held=held)
        self.copiers = tuple(sorted({a for a in range(len(agents)) for m in members if m in network.neighbours(a)}
                                    - set(members))) if copies else ()
        w = ca.SX.sym("w", layout.decision_size)
        x0 = {m: ca.SX.sym(f"x0_{m}", agents[m].n_x) for m in members}
        ext_x = {j: ca.SX.sym(f"xj{j}", N + 1, agents[j].n_x) for j in external}   # rows k = 0..N
        ext_u = {j: ca.SX.sym(f"uj{j}", N, agents[j].n_u) for j in external}
        ref_x = {m: ca.SX.sym(f"xr{m}", N + 1, agents[m].n_x) for m in members}
        ref_u = {m: ca.SX.sym(f"ur{m}", N, agents[m].n_u) for m in members}
        gamma = ca.SX.sym("gamma", layout.own_size)
        # the weights are parameters, not constants: agents of the same structure share one compiled Function
        weights = {m: tuple(ca.SX.sym(f"{name}{m}", n, n) for name, n in
                            (("Q", agents[m].n_x), ("R", agents[m].n_u), ("P", agents[m].n_x))) for m in members}
        self._weight_values = np.concatenate([np.asarray(W, float).ravel(order="F") for m in members
                                              for W in (network.state_weights[m], network.input_weights[m],
                                                        terminal_weights[m])])
        # the soft limits' ρ and ρ/span per state: parameters too, for the same reason
        penalties = {m: (ca.SX.sym(f"rho{m}", len(soft[m])), ca.SX.sym(f"curv{m}", len(soft[m]))) for m in soft}
        for m in soft:
            sub, index = agents[m], list(soft[m])
            span = np.where(np.isfinite(sub.state_upper - sub.state_lower), sub.state_upper - sub.state_lower, 1.0)
            span = np.maximum(span[index], 1e-12)
            rho = soft_limits.weights(N, network.state_weights[m], terminal_weights[m], span)
            self._weight_values = np.concatenate([self._weight_values, rho, rho / span])
        row_penalties = {}
        for j, components in rows.items():   # the neighbour's rows priced as the neighbour prices its own limits
            sub, index = agents[j], list(components)
            span = np.where(np.isfinite(sub.state_upper - sub.state_lower), sub.state_upper - sub.state_lower, 1.0)
            span = np.maximum(span[index], 1e-12)
            rho = soft_limits.weights(N, network.state_weights[j], network.state_weights[j], span)
            row_penalties[j] = (np.tile(rho, N), np.tile(rho / span, N))

        def state(a: int, k: int):
            if a in ext_x:
                return ext_x[a][k, :].T
            return x0[a] if k == 0 else w[layout.x_index[a][k - 1]]

        def control(a: int, k: int):
            return ext_u[a][k, :].T if a in ext_u else w[layout.u_index[a][k]]

        cost, defects, inequalities = 0, [], []
        for m in members:
            Q, R, P = weights[m]
            phi = network.discrete_map(m)
            couplings = [c for c in network.couplings if c.agent == m]
            for k in range(N):
                dx, du = state(m, k) - ref_x[m][k, :].T, control(m, k) - ref_u[m][k, :].T
                cost += ca.bilin(Q, dx, dx) + ca.bilin(R, du, du)
                for c in couplings:
                    if c.cost is not None:
                        cost += c.cost(state(m, k), state(c.neighbour, k))
                z = [v for j in network.neighbours(m) for v in (state(j, k), control(j, k), state(j, k + 1))]
                defects.append(phi(state(m, k), control(m, k), ca.vcat(z) if z else ca.DM(0, 1)) - state(m, k + 1))
                if agents[m].path_constraint is not None:
                    inequalities.append(ca.vcat([agents[m].path_constraint(state(m, k), control(m, k))]))
            dN = state(m, N) - ref_x[m][N, :].T
            cost += ca.bilin(P, dN, dN)
        # exact-penalty rows of the limits the outside agents drive (the drivers keep them too, from the rows sent to
        # them): first those the own inputs reach as well (their multipliers are prices the sensitivities carry),
        # then those only the neighbours move (soft_rows: their multipliers are not unique, price_multipliers
        # leaves them out)
        penalty, soft_start = 0, 0
        unreachable = {m: set(soft[m]) - own_reach(network, m) for m in soft}
        for priced in (True, False):
            soft_start = soft_start if priced else sum(e.numel() for e in inequalities)
            for m, components in soft.items():
                for k in range(1, N + 1):
                    slack = w[layout.slack_index[m][k - 1]]
                    for c_index, r in enumerate(components):
                        if (r in unreachable[m]) == priced:
                            continue
                        x_r, s_r = state(m, k)[r], slack[c_index]
                        if np.isfinite(agents[m].state_upper[r]):
                            inequalities.append(x_r - agents[m].state_upper[r] - s_r)
                        if np.isfinite(agents[m].state_lower[r]):
                            inequalities.append(agents[m].state_lower[r] - x_r - s_r)
        for m in soft:
            rho, curvature = penalties[m]
            slack = w[layout.slack_index[m].ravel()]
            penalty += ca.dot(ca.repmat(rho, N, 1), slack) + 0.5 * ca.dot(ca.repmat(curvature, N, 1), slack * slack)
        # neighbour j's limited states as j linearized them in the member's trajectory: y = r + S·(x_0..N, u_0..N−1)
        soft_rows = slice(soft_start, sum(e.numel() for e in inequalities))
        row_parameters = []
        for j, components in rows.items():
            m, size = members[0], N * len(components)
            S, r = ca.SX.sym(f"S{j}", size, layout.trajectory_size(m)), ca.SX.sym(f"r{j}", size)
            row_parameters += [ca.vec(S), r]
            y = r + ca.mtimes(S, ca.vertcat(x0[m], w[layout.x_index[m].ravel()], w[layout.u_index[m].ravel()]))
            slack = w[layout.row_slack_index[j].ravel()]
            upper, lower = (np.tile(bound[list(components)], N) for bound in (agents[j].state_upper,
                                                                                agents[j].state_lower))
            inequalities += [y[q] - upper[q] - slack[q] for q in range(size) if np.isfinite(upper[q])]
            inequalities += [lower[q] - y[q] - slack[q] for q in range(size) if np.isfinite(lower[q])]
            rho, curvature = row_penalties[j]
            penalty += ca.dot(ca.DM(rho), slack) + 0.5 * ca.dot(ca.DM(curvature), slack * slack)
        for c in network.couplings:   # a pair constraint once per pair the members touch, k = 1..N
            if c.constraint is not None and (c.agent in members or c.neighbour in members):
                for k in range(1, N + 1):
                    inequalities.append(ca.vcat([c.constraint(state(c.agent, k), state(c.neighbour, k))]))
        objective = cost + penalty + ca.dot(gamma, w[:layout.own_size])
        c = ca.vcat(defects)
        h = ca.vcat(inequalities) if inequalities else ca.SX(0, 1)
        self.num_defects, self.num_inequalities = c.shape[0], h.shape[0]

        x0_all = ca.vcat([x0[m] for m in members])
        trajectories = {j: ca.vertcat(ca.vec(ext_x[j].T), ca.vec(ext_u[j].T)) for j in external}
        common = ([ca.vec(ref_x[m].T) for m in members] + [ca.vec(ref_u[m].T) for m in members] + [gamma]
                  + [ca.vec(W) for m in members for W in weights[m]] + [v for m in soft for v in penalties[m]]
                  + row_parameters)
        if copies:   # y'(v − z) + ρ/2 ‖v − z‖² per edge; v: the copy (copier) or the own trajectory (owner)
            rho, consensus = ca.SX.sym("rho"), []
            m = members[0]
            own = ca.vertcat(x0[m], w[layout.x_index[m].ravel()], w[layout.u_index[m].ravel()])
            for piece in [trajectories[j] for j in external] + [own] * len(self.copiers):
                z, y = ca.SX.sym("z", piece.shape[0]), ca.SX.sym("y", piece.shape[0])
                objective += ca.dot(y, piece - z) + rho / 2 * ca.sumsqr(piece - z)
                consensus += [z, y]
            params = ca.vcat(common + consensus + [rho])
            w = ca.vertcat(w, *[trajectories[j] for j in external])
        else:
            params = ca.vcat([trajectories[j][:(N + 1) * agents[j].n_x] for j in external]
                             + [trajectories[j][(N + 1) * agents[j].n_x:] for j in external] + common)
        self.num_parameters = params.shape[0]
        self._external_size = 0 if copies else sum(layout.trajectory_size(j) for j in external)
        lam, mu = ca.SX.sym("lam", c.shape[0]), ca.SX.sym("mu", h.shape[0])
        lagrangian = objective + ca.dot(lam, c) + ca.dot(mu, h)
        build = settings.compile and settings.method != "ipopt"
        if settings.method != "ipopt":   # the SQP's linearization (IPOPT builds its own derivatives)
            gradient = ca.gradient(objective, w)
            hessian = ca.hessian(lagrangian if settings.hessian == "exact" else objective, w)[0]
            self._linearize = BufferedFunction(ca.Function(
                "linearize", [w, x0_all, params, lam, mu], [objective, gradient, hessian, c, ca.jacobian(c, w),
                                                            ca.jacobian(c, x0_all), h, ca.jacobian(h, w)]), build)
        self._evaluate = BufferedFunction(ca.Function("evaluate", [w, x0_all, params], [objective, c, h]), build)
        self._response, self._sent_rows, self._soft_rows = None, {}, soft_rows
        if any(soft.values()) and self._external_size:   # ∂c/∂X, ∂c/∂(neighbours' trajectories), ∂h_soft/∂X
            self._sent_rows = {i: driven_by(network, members[0], i) for i in external}
            X = w[:layout.num_states]
            self._response = BufferedFunction(ca.Function(
                "response", [w, x0_all, params], [ca.jacobian(c, X), ca.jacobian(c, params[:self._external_size]),
                                                  ca.jacobian(h[soft_rows.start:soft_rows.stop], X)]), False)
        if not copies:   # ∂L/∂(neighbours' trajectories); pair constraints left out (each agent keeps them itself)
            self._sensitivity = BufferedFunction(ca.Function(
                "sensitivity", [w, x0_all, params, lam],
                [ca.gradient(cost + ca.dot(lam, c), params[:self._external_size])]), build)
        lower, upper = np.empty(layout.size), np.empty(layout.size)
        for m in members:
            lower[layout.x_index[m]], upper[layout.x_index[m]] = agents[m].state_lower, agents[m].state_upper
            lower[layout.u_index[m]], upper[layout.u_index[m]] = agents[m].input_lower, agents[m].input_upper
            soft_columns = layout.x_index[m][:, list(soft.get(m, ()))]
            lower[soft_columns], upper[soft_columns] = -np.inf, np.inf      # kept by the penalty rows instead
            lower[layout.slack_index[m]], upper[layout.slack_index[m]] = 0.0, np.inf
        for index in layout.row_slack_index.values():
            lower[index], upper[index] = 0.0, np.inf
        for j, where in layout.copy_index.items():   # a copy within its owner's limits
            sub = agents[j]
            lower[where] = np.concatenate([np.tile(sub.state_lower, N + 1), np.tile(sub.input_lower, N)])
            upper[where] = np.concatenate([np.tile(sub.state_upper, N + 1), np.tile(sub.input_upper, N)])
        self.lower, self.upper = lower, upper
        self.nlp = {"x": w, "p": ca.vertcat(x0_all, params), "f": objective, "g": ca.vertcat(c, h)}
        self._ipopt_solver = None
        self.ipopt_rescues = 0            # SQP solves that failed and IPOPT finished (from the same start)
        self.last_preparation_time = 0.0
        self._prepared = None

    # -- parameters ---------------------------------------------------------------------------------------------
    def parameters(self, external_states: dict[int, np.ndarray], external_inputs: dict[int, np.ndarray],
                   reference_states: dict[int, np.ndarray], reference_inputs: dict[int, np.ndarray],
                   gamma: np.ndarray | None = None,
                   limit_rows: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
        """The parameter vector: neighbours' plans (N+1 × n_x states, N × n_u inputs), references, γ, and the
        rows (S, r) each neighbour sent for its limits the member drives (absent: S = 0, r inside the limits)."""
        layout = self.layout
        parts = [] if layout.copies else [np.asarray(external_states[j], float).ravel() for j in layout.external]
        parts += [] if layout.copies else [np.asarray(external_inputs[j], float).ravel() for j in layout.external]
        parts += [np.asarray(reference_states[m], float).ravel() for m in layout.members]
        parts += [np.asarray(reference_inputs[m], float).ravel() for m in layout.members]
        parts.append(np.zeros(layout.own_size) if gamma is None else gamma)
        parts.append(self._weight_values)
        for j, components in layout.neighbour_rows.items():
            sent = (limit_rows or {}).get(j)
            if sent is None:
                sub, index = self.network.agents[j], list(components)
                lower, upper = sub.state_lower[index], sub.state_upper[index]
                centre = np.where(np.isfinite(lower) & np.isfinite(upper), 0.5 * (lower + upper),
                                  np.where(np.isfinite(upper), upper - 1.0, np.where(np.isfinite(lower), lower + 1.0,
                                                                                     0.0)))
                size = layout.horizon * len(components)
                sent = (np.zeros((size, layout.trajectory_size(layout.members[0]))), np.tile(centre, layout.horizon))
            parts += [np.asarray(sent[0], float).ravel(order="F"), np.asarray(sent[1], float).ravel()]
        return np.concatenate(parts)

    def price_multipliers(self, solution: OCPSolution, x0: np.ndarray, p: np.ndarray) -> np.ndarray:
        """λ without the soft limits' share: the adjoints the sensitivities are made of. A limit a neighbour drives
        is kept by that neighbour (limit_rows); its multiplier here is no price of the neighbour's trajectory (the
        agent cannot move the state, so the multiplier is not even unique), and charging it too made the
        neighbours' iteration oscillate between overfilling and starving the tank."""
        lam = solution.dynamics_multipliers
        mu = solution.inequality_multipliers
        if self._response is None or mu.size < self._soft_rows.stop:
            return lam
        CX, _, JhX = (np.asarray(v, float) for v in self._response(solution.w, x0, p))
        return lam + np.linalg.solve(CX.T, JhX.T @ mu[self._soft_rows])

    def limit_rows(self, w: np.ndarray, x0: np.ndarray, p: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per external neighbour i that drives a soft-limited state of the member: (S, r) with the member's states
        of those limits ≈ r + S·(i's trajectory x_0..N, u_0..N−1), the member's own inputs held (the dynamics'
        implicit-function derivative at w). What the member sends to i, so that i keeps the limit itself."""
        if self._response is None:
            return {}
        m, layout = self.members[0], self.layout
        CX, Cp, _ = (np.asarray(v, float) for v in self._response(w, x0, p))
        response = -np.linalg.solve(CX, Cp)                  # dX/dp over the neighbours' trajectories
        N, out, states_offset = layout.horizon, {}, 0
        inputs_offset = sum((N + 1) * layout.n_x[j] for j in layout.external)
        plans = np.asarray(p, float)
        for i in layout.external:
            n_states, n_inputs = (N + 1) * layout.n_x[i], N * layout.n_u[i]
            columns = np.r_[states_offset:states_offset + n_states, inputs_offset:inputs_offset + n_inputs]
            states_offset, inputs_offset = states_offset + n_states, inputs_offset + n_inputs
            components = self._sent_rows.get(i, ())
            if not components:
                continue
            index = layout.x_index[m][:, list(components)].ravel()
            S = response[index][:, columns]
            out[i] = (S, w[index] - S @ plans[columns])
        return out

    def consensus_parameters(self, base: np.ndarray, copied: dict[int, tuple[np.ndarray, np.ndarray]],
                             owned: dict[int, tuple[np.ndarray, np.ndarray]], rho: float) -> np.ndarray:
        """ADMM's parameters: `base` (parameters()) plus (z, y) of every edge: as copier of each external agent,
        as owner for each copier, and ρ."""
        edges = [copied[j] for j in self.layout.external] + [owned[a] for a in self.copiers]
        return np.concatenate([base, *[np.concatenate([z, y]) for z, y in edges], [rho]])

    def sensitivity(self, w: np.ndarray, x0: np.ndarray, p: np.ndarray, lam: np.ndarray) -> dict[int, np.ndarray]:
        """∂L/∂(x_j,k for k = 0..N, u_j,k for k = 0..N−1) per external neighbour j (what j adds to its γ)."""
        flat = self._sensitivity(w, x0, p, lam)[0].ravel()
        N, out, offset = self.layout.horizon, {}, 0
        sizes = {j: ((N + 1) * self.layout.n_x[j], N * self.layout.n_u[j]) for j in self.layout.external}
        for j in self.layout.external:
            out[j] = [flat[offset:offset + sizes[j][0]]]
            offset += sizes[j][0]
        for j in self.layout.external:
            out[j].append(flat[offset:offset + sizes[j][1]])
            offset += sizes[j][1]
        return {j: np.concatenate(v) for j, v in out.items()}

    def objective(self, w: np.ndarray, x0: np.ndarray, p: np.ndarray) -> float:
        return float(self._evaluate(w, x0, p)[0].item())

    def infeasibility(self, w: np.ndarray, x0: np.ndarray, p: np.ndarray) -> float:
        return self._measure(w, x0, p)[1]

    def _measure(self, w: np.ndarray, x0: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
        """(objective, infeasibility max(|c|, h⁺), ℓ1 infeasibility ‖c‖₁ + ‖h⁺‖₁) at w."""
        f, c, h = self._evaluate(w, x0, p)
        c, h = np.abs(c.ravel()), np.maximum(h.ravel(), 0.0)
        return float(f.item()), float(max(np.max(c, initial=0.0), np.max(h, initial=0.0))), float(c.sum() + h.sum())

    # -- solvers ------------------------------------------------------------------------------------------------
    def solve(self, w: np.ndarray, x0: np.ndarray, p: np.ndarray, lam: np.ndarray | None = None) -> OCPSolution:
        """Solve from the initial guess w (clipped into the box) by the configured method."""
        started = time.perf_counter()
        w = self._initial_slacks(np.clip(np.asarray(w, float), self.lower, self.upper))
        lam = np.zeros(self.num_defects) if lam is None else lam
        if self.settings.method == "ipopt":
            solution = self._solve_ipopt(w, x0, p, lam)
        elif self.settings.method == "rti":
            self.prepare(w, x0, p, lam)
            solution = self.feedback(x0)
        else:
            solution = self._solve_sqp(w, x0, p, lam)
            if not solution.ok:   # an SQP that stalls from a poor start: IPOPT from the same start finishes it
                rescued = self._solve_ipopt(w, x0, p, lam)
                if rescued.ok:
                    self.ipopt_rescues += 1
                    rescued.status = f"sqp: {solution.status}; ipopt: {rescued.status}"
                    solution = rescued
        solution.solve_time = time.perf_counter() - started
        solution.limit_violation = self.limit_violation(solution.w)
        return solution

    def _overshoot(self, w: np.ndarray) -> dict[int, np.ndarray]:
        """Per member with soft limits: how far each soft state of w lies beyond its limits (N × soft, ≤ 0 inside)."""
        out = {}
        for m, components in self.layout.soft.items():
            if components:
                sub, index = self.network.agents[m], list(components)
                x = w[self.layout.x_index[m][:, index]]
                out[m] = np.maximum(x - sub.state_upper[index], sub.state_lower[index] - x)
        return out

    def _initial_slacks(self, w: np.ndarray) -> np.ndarray:
        """w with each soft limit's slack at the guess's violation of it (a feasible start for those rows)."""
        for m, over in self._overshoot(w).items():
            w[self.layout.slack_index[m]] = np.maximum(over, 0.0)
        return w

    def limit_violation(self, w: np.ndarray) -> float:
        """The largest violation of a soft limit at w [state units] (0 without soft limits)."""
        return max([float(np.max(over, initial=0.0)) for over in self._overshoot(w).values()] + [0.0])

    @property
    def _ipopt(self):
        """IPOPT on the whole NLP (built on first use: the `ipopt` method, or an SQP's rescue)."""
        if self._ipopt_solver is None:
            self._ipopt_solver = ca.nlpsol("ocp", "ipopt", self.nlp, {
                "print_time": False, "ipopt": {"print_level": 0, "sb": "yes", "tol": self.settings.tolerance,
                                               "max_iter": self.settings.max_iterations * 20,
                                               "bound_relax_factor": 0.0}})
        return self._ipopt_solver

    def _solve_ipopt(self, w, x0, p, lam) -> OCPSolution:
        zeros = np.zeros(self.num_defects)
        result = self._ipopt(x0=w, p=np.concatenate([x0, p]), lbx=self.lower, ubx=self.upper,
                             lbg=np.concatenate([zeros, np.full(self.num_inequalities, -np.inf)]),
                             ubg=np.zeros(self.num_defects + self.num_inequalities),
                             lam_g0=np.concatenate([lam, np.zeros(self.num_inequalities)]))
        stats = self._ipopt.stats()
        w_new = np.asarray(result["x"], float).ravel()
        multipliers = np.asarray(result["lam_g"], float).ravel()[:self.num_defects]
        status = str(stats.get("return_status", "unknown"))
        ok = bool(stats.get("success", False)) and np.all(np.isfinite(w_new))
        return OCPSolution(w_new if ok else w, multipliers if ok else lam, ok, status,
                           int(stats.get("iter_count", 0)), 0.0, infeasibility=self.infeasibility(w_new, x0, p),
                           infeasible="Infeasible" in status,
                           inequality_multipliers=np.asarray(result["lam_g"], float).ravel()[self.num_defects:])

    def prepare(self, w: np.ndarray, x0_guess: np.ndarray, p: np.ndarray, lam: np.ndarray) -> None:
        """RTI preparation: linearize at (w, x0_guess) and condense; feedback(x0) then only solves the QP."""
        started = time.perf_counter()
        self._prepared = (w, x0_guess, p, self._condense(w, x0_guess, p, lam, np.zeros(self.num_inequalities)))
        self.last_preparation_time = time.perf_counter() - started

    def feedback(self, x0: np.ndarray) -> OCPSolution:
        """RTI feedback: the prepared QP with the measured x0 (dx0 = x0 − guess), one full step."""
        started = time.perf_counter()
        w, guess, p, qp = self._prepared
        step, lam, mu, ok, status = self._qp_step(qp, np.asarray(x0, float) - guess)
        w_new = w + step if ok else w
        feedback_time = time.perf_counter() - started
        return OCPSolution(w_new, lam if ok else np.zeros(self.num_defects), ok, status, 1, 0.0, feedback_time,
                           self.infeasibility(w_new, x0, p), infeasible="infeasible" in status,
                           inequality_multipliers=mu)

    def _solve_sqp(self, w, x0, p, lam) -> OCPSolution:
        mu = np.zeros(self.num_inequalities)
        tolerance = self.settings.tolerance
        status, ok, iteration = "iteration limit", False, 0
        for iteration in range(1, self.settings.max_iterations + 1):
            qp = self._condense(w, x0, p, lam, mu)
            step, lam, mu, solved, qp_status = self._qp_step(qp, np.zeros_like(x0))
            if not solved:
                status = f"QP failed: {qp_status}"
                break
            alpha, w, infeasibility = self._line_search(w, x0, p, step, qp, lam, mu)
            if np.max(np.abs(alpha * step), initial=0.0) <= tolerance * (1 + np.max(np.abs(w), initial=0.0)) \
                    and infeasibility <= max(tolerance, 1e-9):
                status, ok = "converged", True
                break
        return OCPSolution(w, lam, ok, status, iteration, 0.0, infeasibility=self.infeasibility(w, x0, p),
                           infeasible="infeasible" in status, inequality_multipliers=mu)

    def _condense(self, w, x0, p, lam, mu):
        """The QP in the input steps dU: states eliminated through the (square, invertible) dynamics Jacobian."""
        f, g, H, c, Jc, Jc0, h, Jh = self._linearize(w, x0, p, lam, mu)
        ns = self.layout.num_states
        CX, CU = Jc[:, :ns], Jc[:, ns:]
        factor = lu_factor(CX, check_finite=False)   # the dynamics Jacobian in the states (invertible: diagonal −I)
        n_u = self.layout.size - ns
        eliminated = -lu_solve(factor, np.hstack([CU, c.reshape(-1, 1), Jc0]), check_finite=False)
        S, s, S0 = eliminated[:, :n_u], eliminated[:, n_u], eliminated[:, n_u + 1:]
        T = np.vstack([S, np.eye(n_u)])
        t = np.concatenate([s, np.zeros(n_u)])
        T0 = np.vstack([S0, np.zeros((n_u, S0.shape[1]))])
        Hc = T.T @ H @ T
        Hc = 0.5 * (Hc + Hc.T)
        # Positive definite (the usual case) is confirmed by a Cholesky factor, which is cheap. Else (nonconvex or
        # singular) the negative and vanishing eigenvalues are raised (regularized Newton); the positive ones stay:
        # ADMM's copies have curvature ρ beside 1e10 from the tanks' states, and raising every eigenvalue below
        # 1e-8 of the largest made its SQP creep (factor 0.998 per iteration) into the iteration limit every time.
        scale = max(float(np.max(np.abs(np.diag(Hc)))), 1.0)
        try:
            np.linalg.cholesky(Hc - CURVATURE_KEPT * scale * np.eye(n_u))
        except np.linalg.LinAlgError:
            eigenvalues, vectors = np.linalg.eigh(Hc)
            largest = max(float(np.max(np.abs(eigenvalues), initial=1.0)), 1.0)
            kept = eigenvalues > CURVATURE_KEPT * largest
            Hc = (vectors * np.where(kept, eigenvalues, REGULARIZATION * largest)) @ vectors.T
        # rows: pair/path constraints h + Jh d ≤ 0 and the box lower − w ≤ d ≤ upper − w
        A = np.vstack([Jh @ T, T]) if Jh.size else T
        return dict(g=g.ravel(), H=H, Hc=Hc, T=T, t=t, T0=T0, A=A, Jh=Jh, h=h.ravel(), CX=factor, w=w,
                    f=float(f.item()), c=c.ravel(), Jc=Jc)

    def _qp_step(self, qp, dx0: np.ndarray):
        """Solve the condensed QP for dU; return the full step d, the multipliers λ and μ, ok and the status."""
        t = qp["t"] + qp["T0"] @ dx0
        T, H, g = qp["T"], qp["H"], qp["g"]
        q = T.T @ (H @ t + g)
        lower_box, upper_box = self.lower - qp["w"] - t, self.upper - qp["w"] - t
        if qp["Jh"].size:
            shift = qp["Jh"] @ t
            upper = np.concatenate([-qp["h"] - shift, upper_box])
            lower = np.concatenate([np.full(qp["h"].size, -np.inf), lower_box])
        else:
            upper, lower = upper_box, lower_box
        finite = np.isfinite(upper) | np.isfinite(lower)
        A = qp["A"][finite]
        bounds = (lower[finite], upper[finite])
        result = self._qp_solver.solve_dense(qp["Hc"], q, A, *bounds)
        if result.infeasible:   # linearized constraints inconsistent: elastic mode, state and path rows made soft
            soft = np.zeros(upper.size, bool)
            soft[:qp["h"].size + self.layout.num_states] = True
            result = self._elastic_solver.solve_dense(qp["Hc"], q, A, *bounds, soft=soft[finite])
        x = result.x
        if not result.ok or not np.all(np.isfinite(x)):
            status = "primal infeasible" if result.infeasible else result.status
            return np.zeros(self.layout.size), np.zeros(self.num_defects), np.zeros(self.num_inequalities), False, \
                status
        rows = np.zeros(upper.size)
        rows[finite] = result.duals
        nh = qp["h"].size
        mu, box = rows[:nh], rows[nh:]
        d = T @ x + t
        # stationarity in the states: (H d + g)_X + Jh_X' μ + box_X + CX' λ = 0
        ns = self.layout.num_states
        residual = (H @ d + g)[:ns] + (qp["Jh"][:, :ns].T @ mu if nh else 0.0) + box[:ns]
        lam = -lu_solve(qp["CX"], residual, trans=1, check_finite=False)
        return d, lam, mu, True, "solved"

    def _line_search(self, w, x0, p, step, qp, lam, mu) -> tuple[float, np.ndarray, float]:
        """Armijo backtracking on the ℓ1 merit f + ν (‖c‖₁ + ‖max(h, 0)‖₁): (step length, new w, its
        infeasibility)."""
        nu = 1.1 * max(float(np.max(np.abs(lam), initial=0.0)), float(np.max(np.abs(mu), initial=0.0)), 1e-3)
        violation = float(np.sum(np.abs(qp["c"])) + np.sum(np.maximum(qp["h"], 0.0)))
        slope = float(qp["g"] @ step) - nu * violation
        current, alpha = qp["f"] + nu * violation, 1.0
        for attempt in range(12):
            trial = np.clip(w + alpha * step, self.lower, self.upper)
            f, worst, total = self._measure(trial, x0, p)
            if f + nu * total <= current + 1e-4 * alpha * min(slope, 0.0):
                break
            if attempt == 0:   # the full step failed: a second-order correction of it (against the Maratos effect)
                corrected = self._second_order_correction(qp, trial, x0, p)
                if corrected is not None:
                    f, worst, total = self._measure(corrected, x0, p)
                    if f + nu * total <= current + 1e-4 * min(slope, 0.0):
                        return 1.0, corrected, worst
            alpha *= 0.5
        return alpha, trial, worst

    def _second_order_correction(self, qp, trial: np.ndarray, x0, p) -> np.ndarray | None:
        """w + d̂, d̂ from the same QP with the constraints' constants taken at the trial point w + d: the
        linearized constraints then hold the curvature the full step met."""
        d = trial - qp["w"]
        _, c, h = self._evaluate(trial, x0, p)
        c_soc = c.ravel() - qp["Jc"] @ d
        s = -lu_solve(qp["CX"], c_soc, check_finite=False)
        corrected = dict(qp, t=np.concatenate([s, np.zeros(self.layout.size - s.size)]),
                         h=h.ravel() - qp["Jh"] @ d if qp["Jh"].size else qp["h"])
        step, _, _, ok, _ = self._qp_step(corrected, np.zeros_like(x0))
        return np.clip(qp["w"] + step, self.lower, self.upper) if ok else None
