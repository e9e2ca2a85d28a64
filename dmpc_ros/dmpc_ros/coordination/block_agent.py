"""Agents that negotiate by block updates of the condensed problem: each solves for its own inputs with the
others' inputs fixed at their announced plans.

- cooperative Jacobi (Venkat, Rawlings & Wright 2005; Stewart et al. 2010): plant-wide objective, every
  constraint the own inputs affect, all agents in parallel, new iterate U_i ← w_i U_i* + (1 − w_i) U_i with
  Σ w_i = 1, or one structural step w for all (mpc/parallel_step.py, ≥ 1/M): every iterate is feasible and
  the plant-wide cost never increases;
- cooperative Gauss-Seidel: the same objective, agents in sequence using the newest plans, w_i = 1;
- non-cooperative (Nash) Jacobi: own cost and own constraints, full steps;
- decentralized (coordination/decentralized.py): own cost and constraints, no communication, the others
  assumed on their reference trajectories.
Each agent keeps a *view* of every member's initial state and inputs, refreshed from the plans it receives;
when a member's plans of a step are all missing, its newest plan is used shifted (its own prediction of its
state, its inputs with the terminal controller's tail).

Message faults (tube mode, mpc/tubes.PlanCompatibility): the own plan must stay within the compatibility
bounds of the own previous plan, shifted (extra rows of the step's QP), so a neighbour that uses it shifted for
up to D steps errs by a bounded amount the tubes include. If a required neighbour has been silent for more than
D steps, the agent applies its own safe candidate — its previous plan, shifted — and counts a fallback.

Feasibility recovery (cooperative agents): the cooperative guarantees assume the negotiation starts from a
feasible plan (Stewart et al. 2010, Assumption 4). When an agent's view violates a constraint (first step, or
after a disturbance), it replaces the view by its Euclidean projection onto the feasible set of the condensed
problem. Agents with the same view compute the same projection, so the views stay consistent; the event is
counted as a fallback. If even the projection is infeasible the agent keeps its plan and flags it.
The check runs at the first iteration of every step on the view all agents share (measured states and warm
starts; a Gauss-Seidel agent applies its predecessors' newer inputs only afterwards), and later only when
the agent's own block QP fails (views that disagree after lost or late plans).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from ..mpc.agent_problem import AgentBlockQP
from ..mpc.condensed import CondensedProblem
from ..mpc.projection import Projection
from ..mpc.tubes import PlanCompatibility
from .base import Agent, StepStatistics, StoppingRule
from .collision import CollisionAvoidance
from .plan import Plan

FEASIBILITY_TOLERANCE = 1e-7  # constraint slack below which a view counts as infeasible [constraint units]


class BlockUpdateAgent(Agent):
    def __init__(self, agent_id: int, problem: CondensedProblem, members: Sequence[int], block: AgentBlockQP,
                 terminal_gain: np.ndarray, weight: float, stopping: StoppingRule, order: Sequence[int] | None = None,
                 required_plans: set[int] | None = None, collision: CollisionAvoidance | None = None,
                 compatibility: PlanCompatibility | None = None) -> None:
        """members[j] is the global id of the problem's subsystem j (the problem may cover the whole plant or
        only this agent's subsystem); order is the update sequence for sequential (Gauss-Seidel) schemes."""
        if not 0 < weight <= 1:
            raise ValueError(f"convex-combination weight must be in (0, 1], got {weight}")
        self.agent_id = agent_id
        self.problem, self.block, self.stopping, self.weight = problem, block, stopping, weight
        self.members = list(members)
        self.local = self.members.index(agent_id)
        self.terminal_gain = terminal_gain
        self.sequential = order is not None
        self._position = {a: i for i, a in enumerate(order)} if order is not None else {}
        self.required_plans = frozenset(required_plans if required_plans is not None
                                        else (self.members[j] for j in block.interacting_agents()))
        system = problem.system
        self._input_index = {self.members[j]: problem.input_indices(j) for j in range(system.num_agents)}
        self._state_slice = {self.members[j]: system.state_slice(j) for j in range(system.num_agents)}
        self._input_dim = {self.members[j]: system.subsystems[j].n_u for j in range(system.num_agents)}
        own_states = self._state_slice[agent_id]
        rows = np.concatenate([np.arange(system.n_x * k + own_states.start, system.n_x * k + own_states.stop)
                               for k in range(problem.horizon)])
        self._own_Phi, self._own_Gamma = problem.Phi[rows], problem.Gamma[rows]
        self._own_cost = problem.cost.block(own_states, system.input_slice(self.local))
        self.U = np.zeros(problem.H.shape[0])
        self.x0 = np.zeros(system.n_x)
        self.step = -1
        self.iteration = 0
        self._stats = StepStatistics()
        self._plan: Plan | None = None
        self._projection: Projection | None = None   # built when first needed, again when the step rows change
        self.collision, self.compatibility = collision, compatibility
        self._step_C, self._step_d = np.zeros((0, self.U.size)), np.zeros(0)   # this step's extra rows
        self._heard: dict[int, Plan] = {}          # each member's newest plan (any step)
        self._previous: Plan | None = None         # the own final plan of the previous step
        self._candidate = np.zeros(0)              # the own inputs of the warm start (previous plan, shifted)

    # -- contract ------------------------------------------------------------------------------------
    def needs_current_iteration(self, neighbour: int) -> bool:
        return self.sequential and self._position[neighbour] < self._position[self.agent_id]

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        if self.step >= 0:
            self._apply_inbox(inbox, accept_step=self.step)  # others' final plans of the step that ended
            self._shift_view()
        else:  # first step: every member's reference inputs over the horizon (the same view in every agent)
            self.U = self.problem.cost.reference.window(step, self.problem.horizon)[1].ravel().astype(float)
        self._previous = self._plan if self._plan is not None and self._plan.step == step - 1 else None
        self.step, self.iteration = step, 0
        self._stats = StepStatistics()
        self.x0[self._state_slice[self.agent_id]] = state
        self._candidate = self.U[self._input_index[self.agent_id]].copy()
        self._plan = self._make_plan(converged=False, final=False, feasible=True)
        return self._plan

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        self.iteration += 1
        self._absorb(inbox)
        own = self._input_index[self.agent_id]
        old = self.U[own].copy()
        solution = self.block.solve(self.x0, self.U, self.step, warm_start=old, extra_linear=self._linear_offset())
        self._stats.solve_times.append(solution.solve_time)
        if not solution.ok and self.iteration > 1 and self._recover_feasibility():  # views disagreed (lossy links)
            old = self.U[own].copy()
            solution = self.block.solve(self.x0, self.U, self.step, warm_start=old, extra_linear=self._linear_offset())
            self._stats.solve_times.append(solution.solve_time)
        if solution.ok:
            self.U[own] = self.weight * solution.z + (1.0 - self.weight) * old
        else:
            self._stats.fallbacks += 1
        self._record_change(self.U[own] - old)
        converged = self._converged(self.U[own], old)
        neighbours_done = all(j in inbox and inbox[j].step == self.step and inbox[j].converged
                              for j in self.required_plans)
        final = self.iteration >= self.stopping.max_iterations or (converged and neighbours_done)
        if final and self._silent_beyond_bound():
            self.U[own] = self._candidate
            self._stats.fallbacks += 1
        self._stats.iterations = self.iteration
        # feasible: the announced plan satisfies the constraints (a failed solve keeps the previous iterate,
        # which may well do so; the failure itself is counted as a fallback)
        feasible = solution.ok or self._slack() >= -FEASIBILITY_TOLERANCE
        self._plan = self._make_plan(converged=converged, final=final, feasible=feasible)
        return self._plan

    def _silent_beyond_bound(self) -> bool:
        """Whether a required neighbour's newest plan is more than D steps old (tube mode only)."""
        if self.compatibility is None:
            return False
        D = self.compatibility.missed_steps
        return any(j not in self._heard or self.step - self._heard[j].step > D
                   for j in self.required_plans & self._input_index.keys())

    def _absorb(self, inbox: Mapping[int, Plan]) -> None:
        """Take in the neighbours' plans before the own update (schemes with prices etc. extend this)."""
        if self.iteration == 1:
            # The common view every agent shares: measured states and warm starts (plans of iteration 0).
            self._apply_inbox(inbox, accept_step=self.step, newest_inputs=0, count=False)
            self._set_step_rows()
            self._recover_feasibility()
        self._apply_inbox(inbox, accept_step=self.step)

    def _set_step_rows(self) -> None:
        """This step's extra rows: separating half-planes from the common view (every agent computes the same
        ones) and the compatibility rows around the own previous plan, shifted."""
        problem = self.problem
        system = problem.system
        rows, bounds = [], []
        if self.collision is not None:
            positions = self.collision.positions(system, problem.predict(self.x0, self.U))
            G, g = self.collision.state_rows(positions, system.state_offsets, system.n_x)
            rows.append(G @ problem.Gamma)
            bounds.append(g - G @ (problem.Phi @ self.x0))
        if self.compatibility is not None and self._previous is not None:
            C, d = self._compatibility_rows()
            rows.append(C)
            bounds.append(d)
        if rows or self._step_d.size:
            # a single block is used as it is (the 64-robot half-planes are 50 MB: no copy)
            self._step_C = np.zeros((0, self.U.size)) if not rows else rows[0] if len(rows) == 1 else np.vstack(rows)
            self._step_d = np.concatenate(bounds) if bounds else np.zeros(0)
            self.block.set_step_rows(self._step_C, self._step_d)
            self._projection = None

    def _compatibility_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """|x_i(t) − x̂_i(t)| ≤ δ_x and |u_i(t) − û_i(t)| ≤ δ_u (finite bounds only) as rows on the plant-wide U,
        with x̂_i(t) = previous plan's state t+1 and û_i(t) its input t+1."""
        i, previous = self.agent_id, self._previous
        n_i = previous.states.shape[1]
        rows, bounds = [], []
        for t in self.compatibility.state_steps():
            for r in np.flatnonzero(np.isfinite(self.compatibility.state_change[i])):
                row = (t - 1) * n_i + r
                for sign in (1.0, -1.0):
                    rows.append(sign * self._own_Gamma[row])
                    bounds.append(self.compatibility.state_change[i][r]
                                  + sign * (previous.states[t + 1, r] - self._own_Phi[row] @ self.x0))
        own = self._input_index[i].reshape(self.problem.horizon, -1)
        for t in self.compatibility.input_steps():
            for r in np.flatnonzero(np.isfinite(self.compatibility.input_change[i])):
                for sign in (1.0, -1.0):
                    row = np.zeros(self.U.size)
                    row[own[t, r]] = sign
                    rows.append(row)
                    bounds.append(self.compatibility.input_change[i][r] + sign * previous.inputs[t + 1, r])
        return np.reshape(rows, (-1, self.U.size)), np.asarray(bounds, float)

    def _slack(self) -> float:
        """Smallest slack of the view over the problem's rows and this step's extra rows (a non-cooperative
        agent answers for its own rows only)."""
        if self.block.constraints == "own":
            return self.block.slack(self.x0, self.U)
        extra = float(np.min(self._step_d - self._step_C @ self.U, initial=np.inf))
        return min(self.problem.constraint_slack(self.x0, self.U), extra)

    def _linear_offset(self) -> np.ndarray | None:
        """An extra linear cost term on the own inputs (none here; prices in dual decomposition)."""
        return None

    def _record_change(self, change: np.ndarray) -> None:
        """Residual reported for cooperative schemes: the largest change of the own plan [input units]."""
        self._stats.primal_residual = float(np.max(np.abs(change), initial=0.0))

    def _converged(self, new: np.ndarray, old: np.ndarray) -> bool:
        return self.stopping.converged(new, old)

    def control(self) -> np.ndarray:
        return self.U[self._input_index[self.agent_id]][: self._input_dim[self.agent_id]].copy()

    def constraint_margin(self) -> float:
        return self._slack()

    # -- view maintenance ----------------------------------------------------------------------------
    def _recover_feasibility(self) -> bool:
        """If the view violates a constraint, project it onto the feasible set; True if the view changed.
        Cooperative agents only: an agent with its own rows has nothing plant-wide to restore (its block QP
        already is the best it can do on them), and at 64 vehicles the projection cost seconds per agent."""
        problem = self.problem
        if self.block.constraints == "own" or problem.d0.size + self._step_d.size == 0 \
                or self._slack() >= -FEASIBILITY_TOLERANCE:
            return False
        if self._projection is None:
            self._projection = Projection(sp.vstack([problem.sparse_constraints, sp.csr_matrix(self._step_C)]),
                                          self.block.qp.backend)
        upper = np.concatenate([problem.d0 + problem.D @ self.x0, self._step_d])
        self.U, ok, solve_time = self._projection.solve(upper, self.U)
        self._stats.solve_times.append(solve_time)
        self._stats.fallbacks += 1
        return ok

    def _apply_inbox(self, inbox: Mapping[int, Plan], accept_step: int, newest_inputs: int | None = None,
                     count: bool = True) -> None:
        """Take the others' measured states and planned inputs from their plans of step accept_step (inputs
        only from plans of iteration ≤ newest_inputs when given); count missing, late and rejected plans.
        Only agents the view covers are read (dual decomposition listens to agents outside its local model)."""
        for j in self.required_plans & self._input_index.keys():
            plan = inbox.get(j)
            if plan is None or plan.step != accept_step:
                if count and self.iteration > 0:
                    self._stats.messages_missing += 1
                continue
            needed = self.iteration - (0 if self.needs_current_iteration(j) else 1)
            if count and self.iteration > 0 and plan.iteration < needed and not plan.final:
                self._stats.messages_late += 1
            if not self._valid(j, plan):
                if count:
                    self._stats.messages_rejected += 1
                continue
            if newest_inputs is None or plan.iteration <= newest_inputs:
                self.U[self._input_index[j]] = plan.inputs.ravel()
            self.x0[self._state_slice[j]] = plan.states[0]
            if j not in self._heard or (plan.step, plan.iteration) >= (self._heard[j].step, self._heard[j].iteration):
                self._heard[j] = plan

    def _valid(self, j: int, plan: Plan) -> bool:
        N = self.problem.horizon
        n_x = self._state_slice[j].stop - self._state_slice[j].start
        return (plan.inputs.shape == (N, self._input_dim[j]) and plan.states.shape == (N + 1, n_x)
                and bool(np.all(np.isfinite(plan.inputs))) and bool(np.all(np.isfinite(plan.states))))

    def _shift_view(self) -> None:
        """Advance the view one step: states to their predicted values, inputs shifted with the terminal
        controller's tail u = ū + K (x̂_N − x̄) (scaled back into each agent's input set if needed)."""
        problem = self.problem
        predicted = problem.predict(self.x0, self.U)
        m = problem.system.n_u
        x_ref, u_ref = problem.cost.reference.at(self.step + problem.horizon)
        tail = u_ref + self.terminal_gain @ (predicted[-1] - x_ref)
        for j, sub in enumerate(problem.system.subsystems):
            columns = problem.system.input_slice(j)
            tail[columns] = sub.input_constraint.scaled_into(tail[columns])
        self.U = np.concatenate([self.U[m:], tail])
        self.x0 = predicted[1]
        for j, plan in self._heard.items():   # a member's own prediction of its next state, where known
            age = self.step + 1 - plan.step
            if j != self.agent_id and age <= problem.horizon:
                self.x0[self._state_slice[j]] = plan.states[age]

    def _make_plan(self, converged: bool, final: bool, feasible: bool) -> Plan:
        """The own rows of the prediction under the current view, and their local cost
        Σ x_i'Q_ii x_i + u_i'R_ii u_i + x_i,N' P_ii x_i,N (the agent's share of the plant-wide cost)."""
        own_states = self._state_slice[self.agent_id]
        x_own = self.x0[own_states]
        states = np.vstack([x_own,
                            (self._own_Phi @ self.x0 + self._own_Gamma @ self.U).reshape(self.problem.horizon, -1)])
        inputs = self.U[self._input_index[self.agent_id]].reshape(self.problem.horizon, -1).copy()
        return Plan(agent=self.agent_id, step=self.step, iteration=self.iteration, states=states, inputs=inputs,
                    cost=self._own_cost.trajectory(states, inputs, self.step), feasible=feasible, converged=converged,
                    final=final)
