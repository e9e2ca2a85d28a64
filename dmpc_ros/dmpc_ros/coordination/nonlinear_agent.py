"""What every nonlinear agent shares: its local OCP, warm starts (the previous plan shifted), the negotiation loop
around one local solve per iteration, and the input rules (safe_input.py: never NaN, never outside U_i, counted).

A scheme subclasses it with `_problem` (the parameters and initial guess of this iteration's solve), `_accept` (what
it keeps of a solution), `_agreed` (its own convergence test besides the change of the state iterates) and
`_data` (what its plan carries).
"""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping

import numpy as np

from ..mpc.nonlinear_ocp import OCPSolution, OptimalControlProblem, SoftLimits
from .base import Agent, StepStatistics, StoppingRule
from .plan import Plan

FEASIBILITY = 1e-6   # infeasibility (max |c|, max h) above which a plan is flagged infeasible


def shifted(rows: np.ndarray, lag: int = 1) -> np.ndarray:
    """Rows moved `lag` forward, the last one held (a plan, a copy, a sensitivity over the horizon)."""
    lag = min(lag, rows.shape[0])
    return np.vstack([rows[lag:], np.repeat(rows[-1:], lag, axis=0)])


def shifted_trajectory(flat: np.ndarray, n_x: int, n_u: int, horizon: int) -> np.ndarray:
    """A flat [x_0..x_N; u_0..u_N−1] shifted one step."""
    states, inputs = flat[:(horizon + 1) * n_x].reshape(horizon + 1, n_x), flat[(horizon + 1) * n_x:]
    return np.concatenate([shifted(states).ravel(), shifted(inputs.reshape(horizon, n_u)).ravel()])


class LocalNlpAgent(Agent):
    """One agent solving its own OCP (controller.nonlinear: sqp, rti or ipopt) once per negotiation iteration."""

    def __init__(self, agent_id: int, design, stopping: StoppingRule, copies: bool = False,
                 soft_limits: SoftLimits | None = None) -> None:
        net, N = design.network, design.horizon
        self.agent_id, self.design, self.stopping, self.horizon = agent_id, design, stopping, N
        self.ocp = OptimalControlProblem(net, (agent_id,), N, {agent_id: design.terminal_weights[agent_id]},
                                         design.solver, copies, soft_limits, design.control_horizons)
        self.neighbours = self.ocp.layout.external                 # whose trajectories enter the own OCP
        self.guard = design.input_guard(agent_id)
        self.n_x, self.n_u = net.agents[agent_id].n_x, net.agents[agent_id].n_u
        self._stats = StepStatistics()
        self.step, self.iteration = -1, 0
        self.x0 = np.zeros(self.n_x)
        self.X = np.zeros((N, self.n_x))                 # own states k = 1..N
        self.U = np.zeros((N, self.n_u))
        self.lam = np.zeros(self.ocp.num_defects)
        self._candidate = np.zeros((N, self.n_u))
        self._known: dict[int, Plan] = {}                # newest plan of each neighbour (shifted when stale)

    # -- hooks of a scheme --------------------------------------------------------------------------------------
    def _start(self, first: bool) -> None:
        """Set up or shift the scheme's own data at begin_step."""

    @abstractmethod
    def _problem(self, inbox: Mapping[int, Plan]) -> tuple[np.ndarray, np.ndarray]:
        """(parameters, initial guess w) of this iteration's solve."""

    def _accept(self, solution: OCPSolution, parameters: np.ndarray) -> None:
        """Keep what the scheme needs of a usable solution (the own trajectory is kept by the caller)."""

    def _agreed(self) -> bool:
        return True

    def _data(self) -> dict[str, np.ndarray]:
        return {}

    # -- the negotiation ----------------------------------------------------------------------------------------
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        self.step, self.iteration = step, 0
        self._stats = StepStatistics()
        self.x0 = np.asarray(state, float).copy()
        first = self._plan is None
        if first:   # first step: reference inputs rolled out with the neighbours on their reference
            net = self.design.network
            self.U = np.array(self.design.reference.window(step, self.horizon)[1][:, net.input_slice(self.agent_id)])
            self.X = self._rollout(self.x0, self.U, step)
        else:       # the previous plan shifted (its last input held), the adjoints likewise
            self.U, self.X = shifted(self.U), shifted(self.X)
            self.lam = shifted(self.lam.reshape(self.horizon, self.n_x)).ravel()
        self._start(first)
        self.U = np.clip(self.U, *self._input_box())
        self._candidate = self.U.copy()
        self.solved = True
        self._plan = self._make_plan(converged=False, final=False, feasible=True)
        return self._plan

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        self.iteration += 1
        parameters, w = self._problem(inbox)
        previous = self.X.copy()
        solution = self.ocp.solve(w, self.x0, parameters, self.lam)
        self._stats.iterations = self.iteration
        self._stats.solve_times.append(solution.solve_time)
        if solution.feedback_time:
            self._stats.feedback_times.append(solution.feedback_time)
        # an RTI step is one QP solve: its iterate keeps second-order defects, which the next iterations remove
        usable = solution.ok and bool(np.all(np.isfinite(solution.w)))
        if usable:
            layout, i = self.ocp.layout, self.agent_id
            self.X, self.U = solution.w[layout.x_index[i]], solution.w[layout.u_index[i]]
            self.lam = solution.dynamics_multipliers
            self._accept(solution, parameters)
            self.solved = True
        else:
            self._stats.count_failure(solution.infeasible)
            self.solved = False
        converged = self.solved and self.stopping.converged(self.X, previous) and self._agreed()
        neighbours_done = all(j in inbox and inbox[j].step == self.step and inbox[j].converged
                              for j in self.required_plans)
        final = self._stats.stop(self.stopping.at_limit(self.iteration), converged and neighbours_done,
                                 self.stopping.change(self.X, previous))
        if final and not self.solved:   # no solve of this step to stand on: the shifted candidate is applied
            self._stats.fallbacks += 1
        if usable and solution.limit_violation > FEASIBILITY:   # a soft limit the neighbours' plans push over
            self._stats.count("limit_violations")
        self._plan = self._make_plan(converged=converged, final=final, feasible=usable and max(
            solution.infeasibility, solution.limit_violation) <= FEASIBILITY)
        return self._plan

    # -- what the guard and the drivers read --------------------------------------------------------------------
    def planned_input(self) -> np.ndarray:
        return self.U[0]

    def candidate_input(self) -> np.ndarray:
        return self._candidate[0]

    def measured_state(self) -> np.ndarray:
        return self.x0

    def one_step_model(self, own_state: np.ndarray | None = None):
        """Φ_i from x_i with the neighbours at their latest plans (the guard keeps x_i(k+1) in X_i: safe_input.py)."""
        return self.design.one_step(self.agent_id, self.x0 if own_state is None else own_state, self._known, self.step)

    def constraint_margin(self) -> float:
        sub = self.design.network.agents[self.agent_id]
        slack = [np.min(sub.state_upper - self.X, initial=np.inf), np.min(self.X - sub.state_lower, initial=np.inf),
                 np.min(sub.input_upper - self.U, initial=np.inf), np.min(self.U - sub.input_lower, initial=np.inf)]
        return float(min(slack))

    # -- helpers ------------------------------------------------------------------------------------------------
    def _input_box(self) -> tuple[np.ndarray, np.ndarray]:
        sub = self.design.network.agents[self.agent_id]
        return sub.input_lower, sub.input_upper

    def neighbour_plan(self, j: int, inbox: Mapping[int, Plan]) -> Plan:
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
        lag = max(self.step - known.step, 0)   # its newest plan shifted, the last values held
        return Plan(j, self.step, 0, shifted(known.states, lag), shifted(known.inputs, lag), 0.0, True, False, False)

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
        """The agent's own tracking terms of the plant-wide cost (its coupling costs left out)."""
        net, i = self.design.network, self.agent_id
        x_ref, u_ref = self.design.reference_blocks((i,), self.step)
        dx, du = states - x_ref[i], self.U - u_ref[i]
        Q, R, P = net.state_weights[i], net.input_weights[i], self.design.terminal_weights[i]
        return float(np.einsum("ki,ij,kj->", dx[:-1], Q, dx[:-1]) + np.einsum("ki,ij,kj->", du, R, du)
                     + dx[-1] @ P @ dx[-1])

    def _make_plan(self, converged: bool, final: bool, feasible: bool) -> Plan:
        states = np.vstack([self.x0, self.X])
        return Plan(self.agent_id, self.step, self.iteration, states, self.U.copy(), self._own_cost(states), feasible,
                    converged, final, self._data())

    def own_trajectory(self) -> np.ndarray:
        """[x_0..x_N; u_0..u_N−1] of the announced plan, flat."""
        return np.concatenate([self.x0, self.X.ravel(), self.U.ravel()])
