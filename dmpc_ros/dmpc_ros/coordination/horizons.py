"""`HorizonsAgent`: cooperative DMPC with dissimilar and time-varying control horizons (Chanfreut, Maestre, Zhu &
Heemels; after Stewart, Wright & Rawlings 2011) on a `HorizonModel`: the linear one (mpc/control_horizon.py, QPs)
or the nonlinear one (coordination/nonlinear_horizons.py, IPOPT NLPs).

Every agent holds the plant-wide model and the whole plan U (the paper's Assumption 1: every agent knows the plant
state; fully connected team), so the scheme is for small plants, like cooperative Jacobi's step bound. One message
round per iteration; agent i's Plan of iteration p carries
- `inputs`: its block of the agreed iterate U^(p−1), `states[0]`: its measured state (read by all at p = 1);
- `data["proposal"]`: its solution of (8) against U^(p−1) (N × n_u,i; its N_c,i·n_u,i + 1 decision values would
  do, since every agent knows u_i^p and κ_i along x^p, but the full block keeps the check simple).
At iteration p + 1 every agent has every proposal and runs the supervisor (problem (9), or Remark 2's dominant
proposal) itself: the same data and a deterministic QP (or IPOPT from the same start) give every agent the same
U^p, without a supervisor node or an extra round. Message cost per iteration: M·(M − 1) plans of (N + 1)·n_x,i +
2·N·n_u,i values. The stopping decision uses only U (the plant-wide relative change ≤ tolerance, or the iteration
limit), so all agents stop at the same iteration; the last iteration only combines (max_iterations = 1 applies the
shifted candidate). The supervisor needs every proposal: with lost plans (or real-time runs cut short at different
iterations) the agents' U may differ, which `view_disagreements` counts (a received block that differs from the
own copy, which then takes it, so the copies agree again from the next plans on); a missing proposal is left out
of the combination, so the iterate is then a combination the others did not compute, and the guarantees hold only
with reliable delivery, as a lock-step run has.

Iteration 0 of step k + 1 (Remark 1, (10)): the final U of step k shifted, κ(x_N) appended, from the state it
predicts; every agent forms the same one. At step 0 (or when a disturbance makes it infeasible at the measured
state) it is projected onto the plant's rows (counted in `repairs`), the same projection in every agent.

Dynamic horizons (Section III-C, `dynamic: true`): after solving (8) with N_c,i, the candidate that starts the
tail one step earlier (input N_c,i − 1 replaced by α* u_i^p + (1 − α*) κ_i, α* of the solution, 0 when
N_c,i = N) is evaluated; if it keeps every row and V(candidate) ≤ (1 + ε)·V(solution), the agent's next
solves use N_c,i − 1 (not below `minimum`). The reduced horizon carries over to the next steps (the paper
restarts each step from the previous step's mean; a monotone horizon is simpler to reason about and plot). The
horizon of the step's last solve is the counter `control_horizon`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..mpc.control_horizon import LocalResult, Tail
from ..mpc.reference import ReferenceTrajectory
from .base import Agent, StepStatistics, StoppingRule
from .plan import Plan

FEASIBILITY_TOLERANCE = 1e-7   # row slack below which an iterate counts as infeasible [constraint units]
AGREEMENT = 1e-8               # a received block further than this from the own copy is a disagreement [input units]
SUPERVISORS = ("weights", "dominant")

COUNTERS = {
    "control_horizon": "the agent's control horizon N_c,i at its last solve of the step [steps]",
    "decision_variables": "decision variables of the agent's last problem (8) of the step: N_c,i·n_u,i (+1 for α)",
    "horizon_reductions": "times the agent shortened its control horizon (dynamic horizons)",
    "repairs": "steps whose warm start violated a row at the measured state and was projected onto the rows",
    "view_disagreements": "received plan blocks that differed from the agent's own copy of the iterate (lost plans)",
}


@dataclass(frozen=True)
class HorizonSettings:
    """controller.horizons: control horizons (one for all or one per agent), the supervisor rule, dynamic
    reduction with its tolerance ε and the smallest horizon it may reach."""

    control_horizon: tuple[int, ...] | int | None = None   # None: N (every input a decision variable)
    supervisor: str = "weights"
    dynamic: bool = False
    reduction_tolerance: float = 0.01
    minimum: int = 1

    def horizons(self, num_agents: int, horizon: int) -> list[int]:
        """Every agent's control horizon (ValueError in one line when it does not fit the problem)."""
        given = self.control_horizon
        values = [horizon] * num_agents if given is None else \
            [int(given)] * num_agents if isinstance(given, int) else list(given)
        if len(values) != num_agents:
            raise ValueError(f"controller.horizons.control_horizon: has {len(values)} entries, expected "
                             f"{num_agents} (one per agent) or one number")
        for i, value in enumerate(values):
            if not 1 <= value <= horizon:
                raise ValueError(f"controller.horizons.control_horizon[{i}]: {value} is not allowed: must be in "
                                 f"1 … {horizon} (the prediction horizon controller.horizon)")
        if self.minimum > horizon:
            raise ValueError(f"controller.horizons.minimum: {self.minimum} is not allowed: must be ≤ {horizon} "
                             f"(controller.horizon)")
        return values


class HorizonModel(Protocol):
    """What the agent negotiates on, plant-wide (the paper's Assumption 1): the linear condensed problem
    (mpc/control_horizon.CondensedHorizons) or the nonlinear one (coordination/nonlinear_horizons.py). U is the
    plant-wide input sequence, time-major; costs are V(U) with constants; slacks are the smallest row slack."""

    system: Any                    # slices: state_slice(j), input_slice(j), num_agents, n_x, n_u
    horizon: int
    reference: ReferenceTrajectory
    gain: np.ndarray               # the terminal law's K (plant-wide, n_u × n_x)

    def columns(self, agent: int) -> np.ndarray: ...
    def predict(self, x0: np.ndarray, U: np.ndarray) -> np.ndarray: ...
    def cost(self, x0: np.ndarray, U: np.ndarray, step: int) -> float: ...
    def slack(self, x0: np.ndarray, U: np.ndarray) -> float: ...
    def own_cost(self, agent: int, states: np.ndarray, inputs: np.ndarray, step: int) -> float: ...
    def repair(self, x0: np.ndarray, U: np.ndarray, backend: str) -> tuple[np.ndarray, bool, float]: ...
    def tail(self, x0: np.ndarray, U: np.ndarray, agent: int, step: int) -> Tail: ...
    def local(self, agent: int, control_horizon: int, tail: Tail, x0: np.ndarray, U: np.ndarray, step: int,
              backend: str) -> LocalResult: ...
    def combine(self, x0: np.ndarray, U: np.ndarray, step: int, proposals: dict[int, np.ndarray], rule: str,
                backend: str) -> np.ndarray: ...


class HorizonsAgent(Agent):
    """One agent of the dissimilar-horizon scheme (module docstring) on a HorizonModel."""

    def __init__(self, agent_id: int, model: HorizonModel, stopping: StoppingRule, settings: HorizonSettings,
                 guard, backend: str = "daqp") -> None:
        system = model.system
        self.agent_id, self.model, self.gain, self.stopping = agent_id, model, model.gain, stopping
        self.settings, self.guard, self.backend = settings, guard, backend
        self.horizon = model.horizon
        self.control_horizon = settings.horizons(system.num_agents, self.horizon)[agent_id]
        self.required_plans = frozenset(range(system.num_agents)) - {agent_id}
        self._columns = [model.columns(j) for j in range(system.num_agents)]
        self._states = system.state_slice(agent_id)
        self._n_u = system.input_slice(agent_id).stop - system.input_slice(agent_id).start
        self.U = np.zeros(self.horizon * system.n_u)
        self.x0 = np.zeros(system.n_x)
        self.step, self.iteration = -1, 0
        self._stats = StepStatistics()
        self._plan: Plan | None = None
        self._proposal: np.ndarray | None = None
        self._candidate = np.zeros(self._n_u)

    # -- contract ------------------------------------------------------------------------------------
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        if self.step >= 0:   # (10): the final iterate shifted, κ(x_N) appended
            predicted = self.model.predict(self.x0, self.U)
            x_ref, u_ref = self.model.reference.at(self.step + self.horizon)
            tail = u_ref + self.gain @ (predicted[-1] - x_ref)
            self.U = np.concatenate([self.U[tail.size:], tail])
            self.x0 = predicted[1].copy()
        else:                # first step: the reference (repaired at iteration 1 if it violates a row)
            x_ref, u_ref = self.model.reference.window(step, self.horizon)
            self.U = u_ref.ravel().astype(float)
            self.x0 = np.array(x_ref[0], float)
        self.step, self.iteration, self._proposal = step, 0, None
        self._stats = StepStatistics()
        self.x0[self._states] = state
        self._measured = np.asarray(state, float).copy()
        self._candidate = self._own(self.U)[0].copy()
        self.solved = True
        self._plan = self._make_plan(converged=False, final=False)
        return self._plan

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        self.iteration += 1
        stats = self._stats
        if self.iteration == 1:
            self._read_states(inbox)
            self._repair()
            change = np.inf
        else:
            proposals = self._read_proposals(inbox)
            new = self.model.combine(self.x0, self.U, self.step, proposals, self.settings.supervisor, self.backend)
            change = self.stopping.change(new, self.U)
            self.U = new
        converged = change <= self.stopping.tolerance
        residual = change if np.isfinite(change) else 0.0   # iteration 1 has no previous iterate to compare with
        final = stats.stop(self.stopping.at_limit(self.iteration), converged, residual)
        stats.iterations = self.iteration
        stats.primal_residual = residual
        self._proposal = None if final else self._solve()
        self._plan = self._make_plan(converged=converged, final=final)
        return self._plan

    def planned_input(self) -> np.ndarray:
        return self._own(self.U)[0].copy()

    def candidate_input(self) -> np.ndarray:
        return self._candidate.copy()

    def measured_state(self) -> np.ndarray:
        return self._measured

    def constraint_margin(self) -> float:
        return self.model.slack(self.x0, self.U)

    # -- the iteration ---------------------------------------------------------------------------------
    def _solve(self) -> np.ndarray:
        """Problem (8) against the current iterate: the own proposal (N × n_u,i; the previous iterate's block when
        the solve fails, which is feasible for (8)); then the dynamic-horizon test."""
        model, stats = self.model, self._stats
        tail = model.tail(self.x0, self.U, self.agent_id, self.step)
        result = model.local(self.agent_id, self.control_horizon, tail, self.x0, self.U, self.step, self.backend)
        stats.solve_times.append(result.solve_time)
        stats.counters["control_horizon"] = self.control_horizon
        stats.counters["decision_variables"] = result.variables
        self.solved = result.usable
        if not result.usable:
            stats.fallbacks += 1
            stats.count_failure(result.infeasible)
        elif self.settings.dynamic and self.control_horizon > self.settings.minimum:
            self._maybe_shorten(result.proposal, tail, result.alpha if result.has_alpha else 0.0)
        return result.proposal

    def _maybe_shorten(self, proposal: np.ndarray, tail: Tail, alpha: float) -> None:
        """Section III-C: N_c,i − 1 when the candidate with κ one step earlier costs ≤ (1 + ε) of the solution."""
        k = self.control_horizon - 1
        candidate = proposal.copy()
        candidate[k] = alpha * tail.previous[k] + (1.0 - alpha) * tail.terminal[k]
        solved, shorter = self._with_own(proposal), self._with_own(candidate)
        if self.model.slack(self.x0, shorter) < -FEASIBILITY_TOLERANCE:
            return
        bound = (1.0 + self.settings.reduction_tolerance) * self.model.cost(self.x0, solved, self.step)
        if self.model.cost(self.x0, shorter, self.step) <= bound:
            self.control_horizon = k
            self._stats.count("horizon_reductions")

    def _read_states(self, inbox: Mapping[int, Plan]) -> None:
        """Iteration 1: every agent's measured state and warm-start block from its plan 0 (else the own prediction
        and copy stay). Taking the blocks re-synchronizes iterates that lost plans made differ, at every step."""
        system = self.model.system
        for j in self.required_plans:
            plan = inbox.get(j)
            rows, columns = system.state_slice(j), self._columns[j]
            shape = (self.horizon + 1, rows.stop - rows.start)
            if plan is None or plan.step != self.step or plan.states.shape != shape \
                    or plan.inputs.size != columns.size or not plan.finite:
                self._stats.messages_missing += 1
                continue
            self.x0[rows] = plan.states[0]
            self._adopt(j, plan.inputs)

    def _adopt(self, j: int, inputs: np.ndarray) -> None:
        """Agent j's block as j announced it (counted when it differs from the own copy)."""
        columns = self._columns[j]
        if np.max(np.abs(inputs.ravel() - self.U[columns]), initial=0.0) > AGREEMENT:
            self._stats.count("view_disagreements")
            self.U[columns] = inputs.ravel()

    def _read_proposals(self, inbox: Mapping[int, Plan]) -> dict[int, np.ndarray]:
        """The proposals of the previous iteration (own included); a missing one counts and is left out."""
        proposals = {} if self._proposal is None else {self.agent_id: self._proposal}
        for j in sorted(self.required_plans):
            plan = inbox.get(j)
            proposal = None if plan is None or plan.step != self.step or plan.iteration != self.iteration - 1 \
                else plan.data.get("proposal")
            if proposal is None or proposal.shape != (self.horizon, self._columns[j].size // self.horizon) \
                    or not plan.finite:
                self._stats.messages_missing += 1
                continue
            if plan.inputs.size == self._columns[j].size:
                self._adopt(j, plan.inputs)
            proposals[j] = proposal
        return proposals

    def _repair(self) -> None:
        """Project the warm start onto the plant's rows at the measured state when it violates one (the same
        projection in every agent)."""
        if self.model.slack(self.x0, self.U) >= -FEASIBILITY_TOLERANCE:
            return
        self.U, ok, solve_time = self.model.repair(self.x0, self.U, self.backend)
        self._stats.solve_times.append(solve_time)
        self._stats.count("repairs")
        self._stats.fallbacks += 1
        if not ok:
            self._stats.infeasible += 1
        self._candidate = self._own(self.U)[0].copy()

    # -- helpers -----------------------------------------------------------------------------------------
    def _own(self, U: np.ndarray) -> np.ndarray:
        return U[self._columns[self.agent_id]].reshape(self.horizon, -1)

    def _with_own(self, own: np.ndarray) -> np.ndarray:
        U = self.U.copy()
        U[self._columns[self.agent_id]] = own.ravel()
        return U

    def _make_plan(self, converged: bool, final: bool) -> Plan:
        states = self.model.predict(self.x0, self.U)
        inputs = self._own(self.U).copy()
        own_states = states[:, self._states].copy()
        data = {} if self._proposal is None else {"proposal": self._proposal}
        feasible = self.model.slack(self.x0, self.U) >= -FEASIBILITY_TOLERANCE
        cost = self.model.own_cost(self.agent_id, own_states, inputs, self.step)
        return Plan(agent=self.agent_id, step=self.step, iteration=self.iteration, states=own_states, inputs=inputs,
                    cost=cost, feasible=feasible, converged=converged, final=final, data=data)
