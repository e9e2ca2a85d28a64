"""Sensitivity-based distributed MPC for neighbour-affine nonlinear systems (Pierer von Esch, Völz & Graichen,
"Sensitivity-based distributed model predictive control for nonlinear systems under inexact optimization").

Per iteration every agent i solves its own OCP with its neighbours' trajectories frozen at their last plans and its
cost augmented by γ_i'w_i, the first-order sensitivities of its neighbours' problems to its trajectories:

    γ_i = Σ_{j: i ∈ N_j} ∂L_j/∂(x_i, u_i),   L_j = J_j + Σ_k λ_j,k+1' (Φ_j(x_j,k, u_j,k, z_j,k) − x_j,k+1),

which agent j computes from its own adjoint states λ_j (the dynamics multipliers) and sends in its plan
(`sensitivity_<i>`, the layout: x_i,0..N then u_i,0..N−1). Exchange is neighbour to neighbour only. At a fixed point
the agents' optimality conditions are the centralized problem's. Stopping rule: the change of successive state
iterates below the tolerance, for the agent and the neighbours it listens to, or max_iterations. The terminal cost is
separable (each agent's block of the linearized DARE), with no terminal constraint, as in the paper.

Pair constraints (a minimum distance) are kept by both agents with the other frozen and left out of the
sensitivities, so where one is active the fixed point is a generalized Nash equilibrium rather than the centralized
optimum (documented; the centralized NMPC keeps the constraint once).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..mpc.nonlinear_ocp import OptimalControlProblem
from .base import Agent, StepStatistics, StoppingRule
from .plan import Plan

FEASIBILITY = 1e-6   # infeasibility (max |c|, max h) above which a plan is flagged infeasible


class SensitivityAgent(Agent):
    """One agent of the sensitivity-based scheme, with its local solver (sqp, rti or ipopt)."""

    def __init__(self, agent_id: int, design, stopping: StoppingRule) -> None:
        net, N = design.network, design.horizon
        self.agent_id, self.design, self.stopping, self.horizon = agent_id, design, stopping, N
        self.ocp = OptimalControlProblem(net, (agent_id,), N, {agent_id: design.terminal_weights[agent_id]},
                                         design.solver)
        self.neighbours = self.ocp.layout.external                 # whose trajectories enter the own OCP
        self.sensed_by = tuple(j for j in range(net.num_agents) if agent_id in net.neighbours(j))
        self.required_plans = frozenset(self.neighbours) | frozenset(self.sensed_by)
        self.guard = design.input_guard(agent_id)
        self.n_x, self.n_u = net.agents[agent_id].n_x, net.agents[agent_id].n_u
        self._stats = StepStatistics()
        self.step, self.iteration = -1, 0
        self.x0 = np.zeros(self.n_x)
        self.X = np.zeros((N, self.n_x))                 # own states k = 1..N
        self.U = np.zeros((N, self.n_u))
        self.lam = np.zeros(self.ocp.num_defects)
        self._candidate = np.zeros((N, self.n_u))
        self._sensitivities: dict[int, np.ndarray] = {}
        self._known: dict[int, Plan] = {}                # newest plan of each neighbour (shifted when stale)

    # -- the negotiation ----------------------------------------------------------------------------------------
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        self.step, self.iteration = step, 0
        self._stats = StepStatistics()
        self.x0 = np.asarray(state, float).copy()
        if self._plan is None:   # first step: reference inputs rolled out with the neighbours on their reference
            net = self.design.network
            self.U = np.array(self.design.reference.window(step, self.horizon)[1][:, net.input_slice(self.agent_id)])
            self.X = self._rollout(self.x0, self.U, step)
            self._sensitivities = {j: np.zeros(self._sensitivity_size(j)) for j in self.neighbours}
        else:                    # the previous plan shifted (its last input held), the adjoints likewise
            self.U = np.vstack([self.U[1:], self.U[-1:]])
            self.X = np.vstack([self.X[1:], self.X[-1:]])
            self.lam = np.concatenate([self.lam[self.n_x:], self.lam[-self.n_x:]])
            self._sensitivities = {j: self._shift_sensitivity(j, s) for j, s in self._sensitivities.items()}
        self.U = np.clip(self.U, self.guard_lower, self.guard_upper)
        self._candidate = self.U.copy()
        self.solved = True
        self._plan = self._make_plan(converged=False, final=False, feasible=True)
        return self._plan

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        self.iteration += 1
        ocp, layout, i = self.ocp, self.ocp.layout, self.agent_id
        external_states, external_inputs = {}, {}
        for j in self.neighbours:
            plan = self._neighbour_plan(j, inbox)
            external_states[j], external_inputs[j] = plan.states, plan.inputs
        gamma = np.zeros(layout.size)
        for j in self.sensed_by:
            plan = inbox.get(j)
            if plan is None or plan.step != self.step or f"sensitivity_{i}" not in plan.data:
                continue
            s = plan.data[f"sensitivity_{i}"].ravel()
            split = (self.horizon + 1) * self.n_x
            gamma[layout.x_index[i]] += s[self.n_x:split].reshape(self.horizon, self.n_x)   # x_i,0 is measured
            gamma[layout.u_index[i]] += s[split:].reshape(self.horizon, self.n_u)
        x_ref, u_ref = self.design.reference_blocks((i,), self.step)
        p = ocp.parameters(external_states, external_inputs, x_ref, u_ref, gamma)
        previous = self.X.copy()
        w = layout.pack({i: np.vstack([self.x0, self.X])}, {i: self.U})
        solution = ocp.solve(w, self.x0, p, self.lam)
        self._stats.iterations = self.iteration
        self._stats.solve_times.append(solution.solve_time)
        if solution.feedback_time:
            self._stats.feedback_times.append(solution.feedback_time)
        usable = solution.ok and solution.infeasibility <= FEASIBILITY and np.all(np.isfinite(solution.w))
        if usable:
            self.X, self.U = layout.states(solution.w, i, self.x0)[1:], layout.inputs(solution.w, i)
            self.lam = solution.dynamics_multipliers
            self._sensitivities = ocp.sensitivity(solution.w, self.x0, p, self.lam)
            self.solved = True
        else:
            self._stats.count_failure(solution.infeasible)
            self.solved = False
        converged = self.stopping.converged(self.X, previous)
        neighbours_done = all(j in inbox and inbox[j].step == self.step and inbox[j].converged
                              for j in self.required_plans)
        final = self.iteration >= self.stopping.max_iterations or (converged and neighbours_done)
        if final and not self.solved:   # no solve of this step to stand on: the shifted candidate is applied
            self._stats.fallbacks += 1
        self._plan = self._make_plan(converged=converged, final=final, feasible=usable)
        return self._plan

    # -- what the guard and the drivers read --------------------------------------------------------------------
    def planned_input(self) -> np.ndarray:
        return self.U[0]

    def candidate_input(self) -> np.ndarray:
        return self._candidate[0]

    def measured_state(self) -> np.ndarray:
        return self.x0

    def constraint_margin(self) -> float:
        sub = self.design.network.agents[self.agent_id]
        slack = [np.min(sub.state_upper - self.X, initial=np.inf), np.min(self.X - sub.state_lower, initial=np.inf),
                 np.min(sub.input_upper - self.U, initial=np.inf), np.min(self.U - sub.input_lower, initial=np.inf)]
        return float(min(slack))

    @property
    def guard_lower(self) -> np.ndarray:
        return self.design.network.agents[self.agent_id].input_lower

    @property
    def guard_upper(self) -> np.ndarray:
        return self.design.network.agents[self.agent_id].input_upper

    # -- helpers ------------------------------------------------------------------------------------------------
    def _neighbour_plan(self, j: int, inbox: Mapping[int, Plan]) -> Plan:
        """Neighbour j's plan of this step; a stale one shifted, counted as missing (its reference at first)."""
        plan = inbox.get(j)
        if plan is not None and plan.step == self.step and plan.finite:
            self._known[j] = plan
            return plan
        self._stats.messages_missing += 1
        known = self._known.get(j)
        if known is None:
            x_ref, u_ref = self.design.reference_blocks((j,), self.step)
            return Plan(j, self.step, 0, np.array(x_ref[j]), np.array(u_ref[j]), 0.0, True, False, False)
        lag = min(max(self.step - known.step, 0), self.horizon)   # its newest plan shifted, the last values held
        states = np.vstack([known.states[lag:], np.repeat(known.states[-1:], lag, axis=0)])
        inputs = np.vstack([known.inputs[lag:], np.repeat(known.inputs[-1:], lag, axis=0)])
        return Plan(j, self.step, 0, states, inputs, 0.0, True, False, False)

    def _sensitivity_size(self, j: int) -> int:
        net = self.design.network
        return (self.horizon + 1) * net.agents[j].n_x + self.horizon * net.agents[j].n_u

    def _shift_sensitivity(self, j: int, s: np.ndarray) -> np.ndarray:
        net, N = self.design.network, self.horizon
        n, m = net.agents[j].n_x, net.agents[j].n_u
        xs, us = s[:(N + 1) * n].reshape(N + 1, n), s[(N + 1) * n:].reshape(N, m)
        return np.concatenate([np.vstack([xs[1:], xs[-1:]]).ravel(), np.vstack([us[1:], us[-1:]]).ravel()])

    def _rollout(self, x0: np.ndarray, U: np.ndarray, step: int) -> np.ndarray:
        """Own states under U with the neighbours on their reference (the first step's initial guess)."""
        net, i = self.design.network, self.agent_id
        phi = net.discrete_map(i)
        x_ref, u_ref = self.design.reference.window(step, self.horizon)
        states, x = [], x0
        for k in range(self.horizon):
            z = [v for j in net.neighbours(i) for v in (x_ref[k, net.state_slice(j)], u_ref[k, net.input_slice(j)],
                                                          x_ref[k + 1, net.state_slice(j)])]
            x = np.asarray(phi(x, U[k], np.concatenate(z) if z else np.zeros(0)), float).ravel()
            states.append(x)
        return np.array(states)

    def _own_cost(self, states: np.ndarray) -> float:
        """The agent's own tracking terms of the plant-wide cost (its coupling costs and γ left out)."""
        net, i = self.design.network, self.agent_id
        x_ref, u_ref = self.design.reference_blocks((i,), self.step)
        dx, du = states - x_ref[i], self.U - u_ref[i]
        Q, R, P = net.state_weights[i], net.input_weights[i], self.design.terminal_weights[i]
        return float(np.einsum("ki,ij,kj->", dx[:-1], Q, dx[:-1]) + np.einsum("ki,ij,kj->", du, R, du)
                     + dx[-1] @ P @ dx[-1])

    def _make_plan(self, converged: bool, final: bool, feasible: bool) -> Plan:
        states = np.vstack([self.x0, self.X])
        data = {f"sensitivity_{j}": s for j, s in self._sensitivities.items()}
        cost = self._own_cost(states)
        return Plan(self.agent_id, self.step, self.iteration, states, self.U.copy(), cost, feasible, converged, final,
                    data)
