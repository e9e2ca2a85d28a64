"""The nonlinear model of the dissimilar-horizon scheme (coordination/horizons.HorizonModel): problems (8) and (9) of
Chanfreut, Maestre, Zhu & Heemels as small NLPs on the whole plant's prediction model, solved by IPOPT.

Every agent holds a plant-wide map x⁺ = Φ(x, u) and the design's cost (tracking terms, coupling costs, the separable
terminal cost of the linearized DARE): the paper's Assumption 1. Choices, in addition to those of
mpc/control_horizon.py:
- Φ is RK4 (`substeps` per sample) of the whole plant's ODE, explicit, in SX: the design's own map (each agent's
  RK4 with its neighbours interpolated, which the centralized NMPC uses) needs a Newton solve per step, and IPOPT
  through it took 0.46 s per problem (8) on three masses; both are RK4 of the same ODE, so they differ by the
  interpolation error, which the gap to centralized NMPC includes;
- single shooting: the states are Φ rolled out from x(0) (mapaccum), so (8) has N_c,i·n_u,i + 1 variables, the
  point of the paper; rows are the box limits of every state at k = 1 … N and of the agent's inputs at every k;
- the terminal law κ_i is the LQR gain of the linearization at the setpoint (the design's `system`, weights Q, R);
  κ_i is evaluated along the previous iterate's states as in the linear case (one α_i per agent);
- the terminal set, with `controller.terminal_set: true` (`NonlinearDesign.terminal_set`): the verified level set
  X_f = {x̃'P x̃ ≤ c} of mpc/terminal_region.py around the setpoint, built on Φ itself; then the terminal cost is
  V_f = x̃'P x̃ (plant-wide, in place of the design's separable blocks), κ_i uses that region's K (the LQR gain of
  Φ's Jacobians), and every NLP and `slack` keep the row x̃_N'(P/c)x̃_N ≤ 1, so the shifted candidate with κ
  appended is feasible at the next step (recursive feasibility, up to the plant's mismatch to Φ). Without it
  feasibility and descent are guaranteed within a step (every iterate), not over time; a warm start that violates a
  row is projected onto the rows by an NLP (`repairs`);
- problem (9): the convex combination is no longer feasible by convexity (states are nonlinear in the inputs), so
  the supervisor solves the NLP in λ with the state rows and then verifies the result by simulation (every row,
  V ≤ V(U^p)); when the check fails it takes the dominant proposal (Remark 2), which (8) made feasible;
- every IPOPT answer is verified the same way; one that fails keeps the previous block (feasible for (8)).
Path and pair constraints are refused (the builder names them): they would need their own rows here.
"""
from __future__ import annotations

import time

import casadi as ca
import numpy as np
from scipy.linalg import block_diag

from ..mpc.control_horizon import LocalResult, Tail, tail_along
from ..mpc.terminal import lqr_terminal
from ..mpc.terminal_region import RegionProblem, TerminalRegion, terminal_region

FEASIBILITY = 1e-7     # row slack accepted from an NLP solution [state / input units]
IPOPT = {"print_time": False, "ipopt.print_level": 0, "ipopt.sb": "yes", "ipopt.tol": 1e-9,
         "ipopt.max_iter": 300}


class NonlinearHorizons:
    """What the horizons agents negotiate on, for a nonlinear design (module docstring)."""

    def __init__(self, design) -> None:
        net = design.network
        unsupported = [a.name for a in net.agents if a.path_constraint is not None] + \
            [f"{c.agent}–{c.neighbour}" for c in net.couplings if c.constraint is not None]
        if unsupported:
            raise ValueError(f"algorithm 'horizons' on a nonlinear model keeps box limits only; path or pair "
                             f"constraints of {', '.join(unsupported[:4])} are not supported")
        self.design, self.network, self.system = design, net, design.system
        self.horizon, self.reference = design.horizon, design.reference
        A, B = design.system.full_matrices()
        self.gain = lqr_terminal(A, B, block_diag(*net.state_weights), block_diag(*net.input_weights))[1]
        self.x_lower = np.concatenate([a.state_lower for a in net.agents]).astype(float)
        self.x_upper = np.concatenate([a.state_upper for a in net.agents]).astype(float)
        self.u_lower = np.concatenate([a.input_lower for a in net.agents]).astype(float)
        self.u_upper = np.concatenate([a.input_upper for a in net.agents]).astype(float)
        self.stage, self.terminal = design.shared_cost.functions
        x, u, h = ca.SX.sym("x", net.n_x), ca.SX.sym("u", net.n_u), net.sample_time / net.substeps
        f, state = net.continuous, x
        for _ in range(net.substeps):
            k1 = f(state, u)
            k2 = f(state + h / 2 * k1, u)
            k3 = f(state + h / 2 * k2, u)
            k4 = f(state + h * k3, u)
            state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        self.step_map = ca.Function("Phi", [x, u], [state])
        self._rollout_map = self.step_map.mapaccum(self.horizon)
        self.region = self._terminal_region(design) if getattr(design, "terminal_set", False) else None
        self.terminal_weights = design.terminal_weights
        if self.region is not None:
            self.gain, P = self.region.K, self.region.P
            self.terminal_weights = tuple(P[design.system.state_slice(i), design.system.state_slice(i)]
                                          for i in range(net.num_agents))
            xr = ca.SX.sym("xr", net.n_x)
            self.terminal = ca.Function("terminal", [x, xr], [ca.bilin(ca.DM(P), x - xr, x - xr)])
            x_bar = ca.DM(self.region.setpoint)
            self._terminal_row = ca.Function("terminal_row", [x], [ca.bilin(ca.DM(P / self.region.level),
                                                                            x - x_bar, x - x_bar)])
        self._solvers: dict[tuple, ca.Function] = {}
        n_u, N = net.n_u, self.horizon
        self._columns = [(np.arange(N)[:, None] * n_u + np.arange(self.system.input_slice(j).start,
                                                                   self.system.input_slice(j).stop)[None, :]).ravel()
                         for j in range(net.num_agents)]

    def _terminal_region(self, design) -> TerminalRegion:
        """The verified terminal level set of Φ around the constant setpoint (mpc/terminal_region.py)."""
        if not self.reference.is_constant:
            raise ValueError("controller.terminal_set: a terminal set is built around one setpoint; this reference "
                             "changes over time")
        net = self.network
        x_bar, u_bar = self.reference.at(0)
        return terminal_region(RegionProblem(self.step_map, self.stage, x_bar, u_bar, block_diag(*net.state_weights),
                                             block_diag(*net.input_weights), self.x_lower, self.x_upper, self.u_lower,
                                             self.u_upper))

    def _terminal_rows(self, X: ca.SX) -> list:
        """The terminal row x̃_N'(P/c)x̃_N (≤ 1) when there is a terminal set, else none."""
        return [] if self.region is None else [self._terminal_row(X[:, self.horizon - 1])]

    # -- numbers ---------------------------------------------------------------------------------------------
    def columns(self, agent: int) -> np.ndarray:
        return self._columns[agent]

    def predict(self, x0: np.ndarray, U: np.ndarray) -> np.ndarray:
        inputs = np.asarray(U, float).reshape(self.horizon, -1)
        return np.vstack([x0, np.asarray(self._rollout_map(np.asarray(x0, float), inputs.T), float).T])

    def cost(self, x0: np.ndarray, U: np.ndarray, step: int) -> float:
        inputs = np.asarray(U, float).reshape(self.horizon, -1)
        if self.region is None:
            return self.design.trajectory_cost(self.predict(x0, U), inputs, step)
        x_ref, u_ref = self.reference.window(step, self.horizon)
        states = self.predict(x0, U)
        stage = self.stage.map(self.horizon)(states[:-1].T, inputs.T, x_ref[:-1].T, u_ref.T)
        return float(np.sum(np.asarray(stage))) + self.region.value(states[-1] - x_ref[-1] + self.region.setpoint)

    def slack(self, x0: np.ndarray, U: np.ndarray) -> float:
        """Smallest slack of the box rows of the predicted states (k ≥ 1), of the inputs and of the terminal row."""
        states, inputs = self.predict(x0, U)[1:], U.reshape(self.horizon, -1)
        terminal = np.inf if self.region is None else 1.0 - self.region.value(states[-1]) / self.region.level
        return float(min(np.min(self.x_upper - states), np.min(states - self.x_lower),
                         np.min(self.u_upper - inputs), np.min(inputs - self.u_lower), terminal))

    def own_cost(self, agent: int, states: np.ndarray, inputs: np.ndarray, step: int) -> float:
        """The agent's tracking terms and its terminal term (its share of V, coupling costs left out)."""
        net = self.network
        x_ref, u_ref = self.reference.window(step, inputs.shape[0])
        dx = states - x_ref[:, self.system.state_slice(agent)]
        du = inputs - u_ref[:, self.system.input_slice(agent)]
        return float(np.sum((dx[:-1] @ net.state_weights[agent]) * dx[:-1]) + np.sum((du @ net.input_weights[agent])
                     * du) + dx[-1] @ self.terminal_weights[agent] @ dx[-1])

    def tail(self, x0: np.ndarray, U: np.ndarray, agent: int, step: int) -> Tail:
        return tail_along(self.predict(x0, U), self.reference, step, self.gain, U, self._columns[agent],
                          self.system.input_slice(agent))

    # -- the NLPs --------------------------------------------------------------------------------------------
    def _rollout(self, x0: ca.SX, inputs: ca.SX, x_ref: ca.SX, u_ref: ca.SX) -> tuple[ca.SX, ca.SX]:
        """(cost, states x_1 … x_N as n_x × N) of the inputs (n_u × N) from x0."""
        N = self.horizon
        X = self._rollout_map(x0, inputs)
        previous = ca.horzcat(x0, X[:, :N - 1])
        cost = ca.sum2(self.stage.map(N)(previous, inputs, x_ref[:, :N], u_ref)) + self.terminal(X[:, N - 1],
                                                                                                   x_ref[:, N])
        return cost, X

    def _parameters(self, N: int) -> tuple[ca.SX, ca.SX, ca.SX]:
        net = self.network
        return ca.SX.sym("x0", net.n_x), ca.SX.sym("xr", net.n_x, N + 1), ca.SX.sym("ur", net.n_u, N)

    def _local_solver(self, agent: int, control_horizon: int) -> ca.Function:
        """IPOPT on (8) of `agent` with N_c = control_horizon: variables (v, α), parameters x0, U, a, b, x̄, ū."""
        key = ("local", agent, control_horizon)
        if key not in self._solvers:
            net, N = self.network, self.horizon
            rows = self.system.input_slice(agent)
            m = rows.stop - rows.start
            x0, x_ref, u_ref = self._parameters(N)
            U, a, b = ca.SX.sym("U", net.n_u, N), ca.SX.sym("a", m, N), ca.SX.sym("b", m, N)
            tail = control_horizon < N
            z = ca.SX.sym("z", control_horizon * m + int(tail))
            head = ca.reshape(z[:control_horizon * m], m, control_horizon)
            own = head if not tail else ca.horzcat(head, b[:, control_horizon:] + z[-1] * (a[:, control_horizon:]
                                                                                          - b[:, control_horizon:]))
            inputs = ca.vertcat(U[:rows.start, :], own, U[rows.stop:, :])
            cost, X = self._rollout(x0, inputs, x_ref, u_ref)
            nlp = {"x": z, "p": ca.vertcat(x0, ca.vec(U), ca.vec(a), ca.vec(b), ca.vec(x_ref), ca.vec(u_ref)),
                   "f": cost, "g": ca.vertcat(ca.vec(X), ca.vec(own), *self._terminal_rows(X))}
            self._solvers[key] = ca.nlpsol(f"horizons_{agent}_{control_horizon}", "ipopt", nlp, IPOPT)
        return self._solvers[key]

    def _bounds(self, own: slice | None) -> tuple[np.ndarray, np.ndarray]:
        """Row bounds: every state at k = 1 … N, then the own inputs (or all inputs) at every k."""
        N = self.horizon
        u_lower, u_upper = (self.u_lower, self.u_upper) if own is None else (self.u_lower[own], self.u_upper[own])
        return (np.concatenate([np.tile(self.x_lower, N), np.tile(u_lower, N)]),
                np.concatenate([np.tile(self.x_upper, N), np.tile(u_upper, N)]))

    def _terminal_bounds(self) -> tuple[list, list]:
        """Bounds of the terminal row (−∞, 1], when there is one."""
        return ([], []) if self.region is None else ([-np.inf], [1.0])

    def _reference(self, step: int) -> list[np.ndarray]:
        x_ref, u_ref = self.reference.window(step, self.horizon)
        return [x_ref.ravel(), u_ref.ravel()]   # time-major = CasADi's column-major vec of n × N

    def local(self, agent: int, control_horizon: int, tail: Tail, x0: np.ndarray, U: np.ndarray, step: int,
              backend: str) -> LocalResult:
        N = self.horizon
        rows = self.system.input_slice(agent)
        has_alpha = control_horizon < N
        keep = np.append(tail.previous[:control_horizon].ravel(), [1.0] * int(has_alpha))
        lower, upper = self._bounds(rows)
        started = time.perf_counter()
        solution = self._local_solver(agent, control_horizon)(
            x0=keep, p=np.concatenate([x0, U, tail.previous.ravel(), tail.terminal.ravel(), *self._reference(step)]),
            lbx=np.append(np.tile(self.u_lower[rows], control_horizon), [0.0] * int(has_alpha)),
            ubx=np.append(np.tile(self.u_upper[rows], control_horizon), [1.0] * int(has_alpha)),
            lbg=np.append(lower, self._terminal_bounds()[0]), ubg=np.append(upper, self._terminal_bounds()[1]))
        elapsed = time.perf_counter() - started
        z = np.asarray(solution["x"], float).ravel()
        alpha = float(z[-1]) if has_alpha else 1.0
        head = z[:control_horizon * (rows.stop - rows.start)].reshape(control_horizon, -1)
        proposal = tail.inputs(head, alpha)
        candidate = U.copy()
        candidate[self._columns[agent]] = proposal.ravel()
        ok = bool(np.all(np.isfinite(z))) and self.slack(x0, candidate) >= -FEASIBILITY and \
            self.cost(x0, candidate, step) <= self.cost(x0, U, step) + 1e-9 * (1 + abs(self.cost(x0, U, step)))
        variables = keep.size
        if not ok:
            return LocalResult(tail.previous.copy(), False, False, elapsed, variables, 1.0, has_alpha)
        return LocalResult(proposal, True, False, elapsed, variables, alpha, has_alpha)

    def _combination_solver(self, count: int) -> ca.Function:
        """IPOPT on (9) with `count` proposals: λ ≥ 0, Σλ ≤ 1, the state rows."""
        key = ("combine", count)
        if key not in self._solvers:
            net, N = self.network, self.horizon
            x0, x_ref, u_ref = self._parameters(N)
            U, D, lam = ca.SX.sym("U", net.n_u * N), ca.SX.sym("D", net.n_u * N, count), ca.SX.sym("lam", count)
            inputs = ca.reshape(U + D @ lam, net.n_u, N)
            cost, X = self._rollout(x0, inputs, x_ref, u_ref)
            nlp = {"x": lam, "p": ca.vertcat(x0, U, ca.vec(D), ca.vec(x_ref), ca.vec(u_ref)), "f": cost,
                   "g": ca.vertcat(ca.vec(X), ca.sum1(lam), *self._terminal_rows(X))}
            self._solvers[key] = ca.nlpsol(f"horizons_supervisor_{count}", "ipopt", nlp, IPOPT)
        return self._solvers[key]

    def combine(self, x0: np.ndarray, U: np.ndarray, step: int, proposals: dict[int, np.ndarray], rule: str,
                backend: str) -> np.ndarray:
        """Problem (9) or the dominant proposal (module docstring); never a point worse than U or off a row."""
        candidates = []
        for j in sorted(proposals):
            moved = U.copy()
            moved[self._columns[j]] = proposals[j].ravel()
            if np.any(moved != U):
                candidates.append(moved)
        if not candidates:
            return U.copy()
        current = self.cost(x0, U, step)
        costs = [self.cost(x0, c, step) if self.slack(x0, c) >= -FEASIBILITY else np.inf for c in candidates]
        best = int(np.argmin(costs))
        dominant = candidates[best] if costs[best] < current else U.copy()
        if rule == "dominant":
            return dominant
        D = np.column_stack([c - U for c in candidates])
        lower, upper = self._bounds(None)
        solution = self._combination_solver(D.shape[1])(
            x0=np.eye(D.shape[1])[best] if costs[best] < current else np.zeros(D.shape[1]),
            p=np.concatenate([x0, U, D.ravel(order="F"), *self._reference(step)]),
            lbx=0.0, ubx=1.0, lbg=np.concatenate([lower[:self.network.n_x * self.horizon], [-np.inf],
                                                  self._terminal_bounds()[0]]),
            ubg=np.concatenate([upper[:self.network.n_x * self.horizon], [1.0], self._terminal_bounds()[1]]))
        lam = np.clip(np.asarray(solution["x"], float).ravel(), 0.0, 1.0)
        combined = U + D @ (lam / max(1.0, float(lam.sum())))
        if self.slack(x0, combined) >= -FEASIBILITY and self.cost(x0, combined, step) <= min(current, costs[best]):
            return combined
        return dominant

    def repair(self, x0: np.ndarray, U: np.ndarray, backend: str) -> tuple[np.ndarray, bool, float]:
        """The inputs nearest to U whose rollout keeps every row (an NLP from U)."""
        if "repair" not in self._solvers:
            net, N = self.network, self.horizon
            x0_s, target = ca.SX.sym("x0", net.n_x), ca.SX.sym("target", net.n_u * N)
            W = ca.SX.sym("U", net.n_u * N)
            X = self._rollout_map(x0_s, ca.reshape(W, net.n_u, N))
            self._solvers["repair"] = ca.nlpsol("horizons_repair", "ipopt", {
                "x": W, "p": ca.vertcat(x0_s, target), "f": ca.sumsqr(W - target),
                "g": ca.vertcat(ca.vec(X), *self._terminal_rows(X))}, IPOPT)
        lower, upper = self._bounds(None)
        started = time.perf_counter()
        n = self.network.n_x * self.horizon
        solution = self._solvers["repair"](x0=np.clip(U, np.tile(self.u_lower, self.horizon),
                                                      np.tile(self.u_upper, self.horizon)),
                                           p=np.concatenate([x0, U]), lbx=np.tile(self.u_lower, self.horizon),
                                           ubx=np.tile(self.u_upper, self.horizon),
                                           lbg=np.append(lower[:n], self._terminal_bounds()[0]),
                                           ubg=np.append(upper[:n], self._terminal_bounds()[1]))
        repaired = np.asarray(solution["x"], float).ravel()
        ok = bool(np.all(np.isfinite(repaired))) and self.slack(x0, repaired) >= -FEASIBILITY
        return (repaired if ok else U), ok, time.perf_counter() - started
