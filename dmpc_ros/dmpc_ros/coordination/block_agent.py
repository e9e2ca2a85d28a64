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
Each agent keeps a *view* of its neighbourhood's initial states and inputs (mpc/neighbourhood.py: the agents
whose data enter its block problem, bounded by the horizon's reach rather than the plant's size), refreshed from
the plans it receives; when a member's plans of a step are all missing, its newest plan is used shifted (its own
prediction of its state, its inputs with the terminal controller's tail).

Message faults (tube mode, mpc/tubes.PlanCompatibility): the own plan must stay within the compatibility
bounds of the own previous plan, shifted (extra rows of the step's QP), so a neighbour that uses it shifted for
up to D steps errs by a bounded amount the tubes include. If a required neighbour has been silent for more than
D steps, the agent applies its own safe candidate — its previous plan, shifted — and counts a fallback.

Feasibility recovery (cooperative agents): the cooperative guarantees assume the negotiation starts from a
feasible plan (Stewart et al. 2010, Assumption 4). When an agent's view violates a row of its neighbourhood (first
step, or after a disturbance), it replaces the view by its Euclidean projection onto those rows; the event is
counted as a fallback. If even the projection is infeasible the agent keeps its plan and flags it. Where the view
is the whole plant, every agent projects onto the same set and gets the same point, so the views stay consistent;
on a larger plant each agent repairs its own neighbourhood, and views of a neighbour may differ until the
neighbour's next plan arrives.
The check runs at the first iteration of every step on the view all agents share (measured states and warm
starts; a Gauss-Seidel agent applies its predecessors' newer inputs only afterwards), and later only when
the agent's own block QP fails (views that disagree after lost or late plans).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from ..mpc.agent_problem import AgentBlockQP, Rows, positions_observed
from ..mpc.tubes import PlanCompatibility
from .base import Agent, StepStatistics, StoppingRule
from .collision import CollisionAvoidance
from .plan import Plan
from .safe_input import InputGuard
from .safety_filter import AffineStep

FEASIBILITY_TOLERANCE = 1e-7  # constraint slack below which a view counts as infeasible [constraint units]


class BlockUpdateAgent(Agent):
    def __init__(self, agent_id: int, block: AgentBlockQP, terminal_gain: np.ndarray, weight: float,
                 stopping: StoppingRule, order: Sequence[int] | None = None, required_plans: set[int] | None = None,
                 collision: CollisionAvoidance | None = None, compatibility: PlanCompatibility | None = None,
                 members: Sequence[int] | None = None) -> None:
        """`block` is the agent's block problem on its neighbourhood; members[j] is the global id of subsystem j of
        the system the block was built on (default: the same ids; dual decomposition builds on its own subsystem
        alone); terminal_gain is that system's LQR gain (the shifted plans' tail); order is the update sequence for
        sequential (Gauss-Seidel) schemes."""
        if not 0 < weight <= 1:
            raise ValueError(f"convex-combination weight must be in (0, 1], got {weight}")
        net = block.network
        global_id = (lambda j: j) if members is None else (lambda j: list(members)[j])   # noqa: E731
        self.agent_id = agent_id
        self.block, self.stopping, self.weight = block, stopping, weight
        self.horizon = N = block.horizon
        self.sequential = order is not None
        self._position = {a: i for i, a in enumerate(order)} if order is not None else {}
        self.required_plans = frozenset(required_plans if required_plans is not None
                                        else (global_id(j) for j in block.interacting_agents()))
        m_V = net.n_u
        self._input_index = {global_id(j): (np.arange(N)[:, None] * m_V + np.arange(s.start, s.stop)[None, :]).ravel()
                             for j, s in net.input_slices.items()}
        self._state_slice = {global_id(j): s for j, s in net.state_slices.items()}
        self._input_columns = {global_id(j): s for j, s in net.input_slices.items()}   # per step, in the view
        self._input_dim = {global_id(j): s.stop - s.start for j, s in net.input_slices.items()}
        self.terminal_gain = terminal_gain[np.ix_(net.input_index, net.state_index)]   # K on the view
        self._own_states = self._state_slice[agent_id]
        self._own_cost = block.own_cost
        self.U = np.zeros(N * m_V)
        self.x0 = np.zeros(net.n_x)
        self.step = -1
        self.iteration = 0
        self._stats = StepStatistics()
        self._plan: Plan | None = None
        self.collision, self.compatibility = collision, compatibility
        self._has_step_rows = False
        self._heard: dict[int, Plan] = {}          # each member's newest plan (any step)
        self._previous: Plan | None = None         # the own final plan of the previous step
        self._candidate = np.zeros(0)              # the own inputs of the warm start (previous plan, shifted)
        self._measured = np.zeros(self._own_states.stop - self._own_states.start)
        self.guard = InputGuard.of(block.own_subsystem)
        # (neighbour, lag): whose plans the view reads, and how many iterations old its plan may be without being late
        self._readable = tuple((j, 0 if self.needs_current_iteration(j) else 1)
                               for j in sorted(self.required_plans & self._input_index.keys()))
        self._input_shape = {j: (N, d) for j, d in self._input_dim.items()}
        self._state_shape = {j: (N + 1, s.stop - s.start) for j, s in self._state_slice.items()}
        self._applied: dict[int, Plan] = {}        # each neighbour's plan whose inputs the view holds
        self._seed: np.ndarray | None = None       # the first step's view inputs, when a team change gives them
        self._rejoined: Plan | None = None         # a respawned agent's own last plan (rejoin), for its first step

    # -- contract ------------------------------------------------------------------------------------
    def seed(self, inputs: Mapping[int, np.ndarray], states: Mapping[int, np.ndarray] | None = None) -> bool:
        """The first step starts from `inputs` (agent → N × m_j) and `states` (agent → x_j(k)), those of the view's
        members (a neighbour whose first plan is lost is then where the candidate puts it, not at the origin)."""
        if self.step >= 0 or not self._input_columns.keys() <= inputs.keys():
            return False
        U = np.zeros((self.horizon, self.block.network.n_u))
        for j, columns in self._input_columns.items():
            U[:, columns] = np.asarray(inputs[j], float).reshape(self.horizon, -1)
        self._seed = U.ravel()
        for j, rows in self._state_slice.items():
            if states is not None and j in states:
                self.x0[rows] = states[j]
        return True

    def needs_current_iteration(self, neighbour: int) -> bool:
        return self.sequential and self._position[neighbour] < self._position[self.agent_id]

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        if self.step >= 0:
            self._apply_inbox(inbox, accept_step=self.step)  # others' final plans of the step that ended
            self._shift_view()
        elif self._seed is not None:   # first step after a team change: the re-formed team's feasible candidate
            self.U, self._seed = self._seed, None
        else:  # first step: every member's reference inputs over the horizon (the same view in every agent), and
            # every member at its reference state until its first plan says where it is: a neighbour never heard from
            # (its plans lost at bring-up on a lossy link) stays there instead of at the origin, which for a platoon
            # meant a predecessor at standstill with no gap (bench/faults.py: inputs at their limits at cruise)
            x_ref, u_ref = self.block.reference.window(step, self.horizon)
            self.U = u_ref.ravel().astype(float)
            self.x0 = np.array(x_ref[0], float)
            self._warm_start(step, inbox)
        self._previous = self._plan if self._plan is not None and self._plan.step == step - 1 else None
        self.step, self.iteration = step, 0
        self._stats = StepStatistics()
        self.x0[self._own_states] = state
        self._measured = np.asarray(state, float).copy()
        self.solved = True
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
        if not solution.usable and self.iteration > 1 and self._recover_feasibility():  # views disagreed (lossy links)
            self._stats.count_failure(solution.infeasible)
            old = self.U[own].copy()
            solution = self.block.solve(self.x0, self.U, self.step, warm_start=old, extra_linear=self._linear_offset())
            self._stats.solve_times.append(solution.solve_time)
        self.solved = solution.usable
        if solution.usable:
            self.U[own] = self._combine(solution.z, old)
            predicted = self.block.move_own(self.U[own] - old)   # the solve's prediction, after the own update
        else:
            self._stats.fallbacks += 1
            self._stats.count_failure(solution.infeasible)
            predicted = None
        self._record_change(self.U[own] - old)
        converged = self._converged(self.U[own], old)
        neighbours_done = all(j in inbox and inbox[j].step == self.step and inbox[j].converged
                              for j in self.required_plans)
        final = self._stats.stop(self.stopping.at_limit(self.iteration), converged and neighbours_done,
                                 self._residual(self.U[own], old))
        if final and self._silent_beyond_bound():
            self._fall_back_to_candidate()
            predicted = None
        self._stats.iterations = self.iteration
        # feasible: the announced plan satisfies the constraints (a failed solve keeps the previous iterate,
        # which may well do so; the failure itself is counted as a fallback)
        feasible = solution.usable or self._slack() >= -FEASIBILITY_TOLERANCE
        self._plan = self._make_plan(converged=converged, final=final, feasible=feasible, predicted=predicted)
        return self._plan

    def rejoin(self, own: Plan | None) -> None:
        self._rejoined = own

    def _warm_start(self, step: int, inbox: Mapping[int, Plan]) -> None:
        """A rejoining agent's first step (Agent.rejoin): its own last plan and the neighbours' newest plans (of
        earlier steps), each shifted by its age, replace the reference inputs they cover; the tail stays the
        reference. At step 0 of a run nothing is there, so nothing changes."""
        plans = dict(inbox)
        if self._rejoined is not None:
            plans[self.agent_id] = self._rejoined
        U = self.U.reshape(self.horizon, -1)
        for j, plan in plans.items():
            age = step - plan.step
            if j not in self._input_columns or not 0 < age < self.horizon or \
                    plan.inputs.shape != (self.horizon, self._input_dim[j]) or not plan.finite:
                continue
            U[: self.horizon - age, self._input_columns[j]] = plan.inputs[age:]
        self._rejoined = None

    def _combine(self, best: np.ndarray, old: np.ndarray) -> np.ndarray:
        """The new own iterate from the block's best response and the previous iterate: the convex combination."""
        return self.weight * best + (1.0 - self.weight) * old

    def cut_short(self) -> Plan | None:
        """Cut short (real time): the current iterate, unless a neighbour is silent beyond the fault bound (tube
        mode): then, as at a final iterate, the shifted own plan — the one the neighbours' tubes were built around."""
        if self._plan is None or not self._silent_beyond_bound():
            return super().cut_short()
        self._fall_back_to_candidate()
        self.iteration += 1   # a plan of its own key: the neighbours' books hold the iterate under the current one
        self._stats.iterations = self.iteration
        feasible = self._slack() >= -FEASIBILITY_TOLERANCE
        self._plan = self._make_plan(converged=False, final=True, feasible=feasible, predicted=None)
        return self._plan

    def _fall_back_to_candidate(self) -> None:
        self.U[self._input_index[self.agent_id]] = self._candidate
        self._stats.fallbacks += 1
        self.solved = False

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
        parts = []
        if self.collision is not None:
            parts.append(self._collision_rows())
        if self.compatibility is not None and self._previous is not None:
            parts.append(self._compatibility_rows())
        if parts or self._has_step_rows:
            self.block.set_step_rows(Rows.stack(parts, *self.block.row_shape))
            self._has_step_rows = bool(parts)

    def _collision_rows(self) -> Rows:
        """Half-planes of the observed robots' pairs, from the view's prediction (robot ids of the block's system)."""
        block = self.block
        positions = positions_observed(block, block.predict(self.x0, self.U), self.collision.position_columns,
                                       block.num_agents)
        observed = set(block.observed)
        pairs = tuple(p for p in self.collision.pairs if p[0] in observed and p[1] in observed)
        entries, bounds = [], []
        for agent, k, normal, bound in replace(self.collision, pairs=pairs).halfplanes(positions):
            row = len(bounds)
            entries += [(row, block.state_column(agent, k, c), v) for c, v in zip(self.collision.position_columns,
                                                                                   normal)]
            bounds.append(bound)
        return Rows.of(entries, [], bounds, block.row_shape)

    def _compatibility_rows(self) -> Rows:
        """|x_i(t) − x̂_i(t)| ≤ δ_x and |u_i(t) − û_i(t)| ≤ δ_u (finite bounds only) as rows on the observed
        states and view inputs, with x̂_i(t) = previous plan's state t+1 and û_i(t) its input t+1."""
        i, previous, block = self.agent_id, self._previous, self.block
        x_entries, u_entries, bounds = [], [], []
        for t in self.compatibility.state_steps():
            for r in np.flatnonzero(np.isfinite(self.compatibility.state_change[i])):
                for sign in (1.0, -1.0):
                    x_entries.append((len(bounds), block.state_column(block.agent, t, r), sign))
                    bounds.append(self.compatibility.state_change[i][r] + sign * previous.states[t + 1, r])
        for t in self.compatibility.input_steps():
            for r in np.flatnonzero(np.isfinite(self.compatibility.input_change[i])):
                for sign in (1.0, -1.0):
                    u_entries.append((len(bounds), block.input_column(block.agent, t, r), sign))
                    bounds.append(self.compatibility.input_change[i][r] + sign * previous.inputs[t + 1, r])
        return Rows.of(x_entries, u_entries, bounds, block.row_shape)

    def _slack(self) -> float:
        """Smallest slack of the view over the block's rows and this step's extra rows."""
        return self.block.slack(self.x0, self.U)

    def _linear_offset(self) -> np.ndarray | None:
        """An extra linear cost term on the own inputs (none here; prices in dual decomposition)."""
        return None

    def _record_change(self, change: np.ndarray) -> None:
        """Residual reported for cooperative schemes: the largest change of the own plan [input units]."""
        self._stats.primal_residual = float(np.max(np.abs(change), initial=0.0))

    def _converged(self, new: np.ndarray, old: np.ndarray) -> bool:
        return self.stopping.converged(new, old)

    def _residual(self, new: np.ndarray, old: np.ndarray) -> float:
        """What _converged compares with the tolerance: the relative change of the own plan [-]."""
        return self.stopping.change(new, old)

    def planned_input(self) -> np.ndarray:
        return self.U[self._input_index[self.agent_id]][: self._input_dim[self.agent_id]].copy()

    def candidate_input(self) -> np.ndarray:
        return self._candidate[: self._input_dim[self.agent_id]].copy()

    def measured_state(self) -> np.ndarray:
        return self._measured

    def constraint_margin(self) -> float:
        return self._slack()

    def one_step_model(self, own_state: np.ndarray | None = None) -> AffineStep:
        """x_i(k+1) = B_ii u_i + A_ii x_i + Σ_j (A_ij x_j + B_ij u_j) on the view: the own state measured (or
        `own_state`), the others' states and inputs at their latest plans."""
        net, rows, own = self.block.network, self._own_states, self._input_columns[self.agent_id]
        x = self.x0.copy()
        x[rows] = self._measured if own_state is None else own_state
        first = self.U[:net.n_u].copy()
        first[own] = 0.0
        return AffineStep(net.B[rows, own], net.A[rows] @ x + net.B[rows] @ first)

    # -- view maintenance ----------------------------------------------------------------------------
    def _recover_feasibility(self) -> bool:
        """If the view violates one of the block's repair rows, project it onto them; True if the view changed.
        Cooperative agents only: an agent with its own rows has nothing to restore (its block QP already is the
        best it can do on them)."""
        if self.block.constraints == "own" or self.block.slack(self.x0, self.U, repair=True) >= -FEASIBILITY_TOLERANCE:
            return False
        self.U, ok, solve_time = self.block.project(self.x0, self.U)
        self._applied.clear()
        self._stats.solve_times.append(solve_time)
        self._stats.fallbacks += 1
        if not ok:   # no point of the neighbourhood's rows: the local problem is infeasible
            self._stats.infeasible += 1
        return ok

    def _apply_inbox(self, inbox: Mapping[int, Plan], accept_step: int, newest_inputs: int | None = None,
                     count: bool = True) -> None:
        """Take the others' measured states and planned inputs from their plans of step accept_step (inputs
        only from plans of iteration ≤ newest_inputs when given); count missing, late and rejected plans.
        Only agents the view covers are read (dual decomposition listens to agents outside its local model)."""
        stats, counting, applied, iteration = self._stats, count and self.iteration > 0, self._applied, self.iteration
        U = self.U.reshape(self.horizon, -1)
        for j, lag in self._readable:
            plan = inbox.get(j)
            if plan is None or plan.step != accept_step:
                if counting:
                    stats.messages_missing += 1
                continue
            if counting and plan.iteration < iteration - lag and not plan.final:
                stats.messages_late += 1
            if applied.get(j) is plan:   # already in the view (and the view has not changed since)
                continue
            if not self._valid(j, plan):
                if count:
                    stats.messages_rejected += 1
                continue
            if newest_inputs is None or plan.iteration <= newest_inputs:
                U[:, self._input_columns[j]] = plan.inputs
                applied[j] = plan
            self.x0[self._state_slice[j]] = plan.states[0]
            if j not in self._heard or (plan.step, plan.iteration) >= (self._heard[j].step, self._heard[j].iteration):
                self._heard[j] = plan

    def _valid(self, j: int, plan: Plan) -> bool:
        """The shapes this agent expects of j, and finite values (checked once per plan, Plan.finite)."""
        return plan.inputs.shape == self._input_shape[j] and plan.states.shape == self._state_shape[j] and plan.finite

    def _shift_view(self) -> None:
        """Advance the view one step: states to their predicted values, inputs shifted with the terminal
        controller's tail u = ū + K (x̂_N − x̄) (scaled back into each member's input set if needed; exact for the
        own tail, whose gain row the neighbourhood covers)."""
        block = self.block
        predicted = block.predict(self.x0, self.U)
        x_ref, u_ref = block.reference.at(self.step + self.horizon)
        tail = u_ref + self.terminal_gain @ (predicted[-1] - x_ref)
        held = block.held_columns   # members with a held control-horizon tail keep their last input
        tail[held] = self.U.reshape(self.horizon, -1)[-1, held]
        for j, input_set in block.input_sets.items():
            columns = block.network.input_slices[j]
            tail[columns] = input_set.scaled_into(tail[columns])
        m = block.network.n_u
        self.U = np.concatenate([self.U[m:], tail])
        self._applied.clear()
        self.x0 = predicted[1].copy()
        for j, plan in self._heard.items():   # a member's own prediction of its next state, where known
            age = self.step + 1 - plan.step
            if j != self.agent_id and age <= self.horizon:
                self.x0[self._state_slice[j]] = plan.states[age]

    def _make_plan(self, converged: bool, final: bool, feasible: bool, predicted: np.ndarray | None = None) -> Plan:
        """The own rows of the prediction under the current view (`predicted`, if the caller has it), and their local
        cost Σ x_i'Q_ii x_i + u_i'R_ii u_i + x_i,N' P_ii x_i,N (the agent's share of the plant-wide cost)."""
        if predicted is None:
            predicted = self.block.predict(self.x0, self.U)
        states = predicted[:, self._own_states].copy()
        inputs = self.U[self._input_index[self.agent_id]].reshape(self.horizon, -1).copy()
        return Plan(agent=self.agent_id, step=self.step, iteration=self.iteration, states=states, inputs=inputs,
                    cost=self._own_cost.trajectory(states, inputs, self.step), feasible=feasible, converged=converged,
                    final=final)
