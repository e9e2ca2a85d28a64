"""Average consensus over neighbour messages, and agents that agree on their formation's centre before the MPC.

Consensus: ξ_i ← ξ_i + α Σ_{j ∈ N_i} (ξ_j − ξ_i), i.e. ξ ← (I − α L) ξ with the graph Laplacian L. On a
connected undirected graph it converges to the average of the initial values iff 0 < α < 2/λ_max(L); the
rate is max(|1 − α λ_2|, |1 − α λ_max|), best at α = 2/(λ_2 + λ_max). `check_step_size` refuses a disconnected
graph or an α outside that range at configuration, naming the bound, instead of diverging at run time.

CentreConsensusAgent: in the formation scenario the robots do not know where the formation is. Each starts from
the centre its own position implies, ĉ_i = p_i(0) − o_i, and the team runs `rounds` consensus rounds (one per
negotiation iteration of step 0, estimates carried in the plans) before the first MPC negotiation. Every agent
then works in the frame of its agreed centre (positions minus ĉ_i), where the reference path starts at 0, so
the inner MPC agents and their messages are unchanged. The rounds are a fixed number (the same for everyone, so
all agents switch at the same iteration); the remaining disagreement is measured and an agent whose
neighbourhood still disagrees by more than the tolerance flags its plan infeasible and counts a fallback.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from ..mpc.reference import ReferenceTrajectory
from .base import Agent, StepStatistics
from .plan import Plan
from .safe_input import InputGuard

# counter: a step's iterations before its MPC negotiation began (the consensus rounds and the switch iteration, where
# each agent forms its first plan), so the summary tells them from negotiation iterations
CONSENSUS_ITERATIONS = "consensus_iterations"


def laplacian(num_agents: int, edges: tuple[tuple[int, int], ...]) -> np.ndarray:
    L = np.zeros((num_agents, num_agents))
    for a, b in edges:
        L[a, b] -= 1.0
        L[b, a] -= 1.0
        L[a, a] += 1.0
        L[b, b] += 1.0
    return L


def components(num_agents: int, edges: tuple[tuple[int, int], ...]) -> list[list[int]]:
    """The connected components of the undirected graph (each sorted, in order of their smallest agent)."""
    parent = list(range(num_agents))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for a in range(num_agents):
        groups.setdefault(root(a), []).append(a)
    return sorted(groups.values())


def check_step_size(num_agents: int, edges: tuple[tuple[int, int], ...], step_size: float) -> float:
    """The convergence factor of ξ ← (I − αL)ξ on the disagreement subspace; ValueError if the graph is not
    connected or α is outside (0, 2/λ_max)."""
    eigenvalues = np.linalg.eigvalsh(laplacian(num_agents, edges))
    if num_agents > 1 and eigenvalues[1] <= 1e-9:
        raise ValueError(f"consensus needs a connected graph; this one has {int(np.sum(eigenvalues <= 1e-9))} "
                         f"components")
    largest = eigenvalues[-1]
    if not 0 < step_size < 2.0 / largest:
        raise ValueError(f"consensus step size α = {step_size} does not converge on this graph: it must be in "
                         f"(0, {2.0 / largest:.4g}) = (0, 2/λ_max) with λ_max = {largest:.4g}; the fastest is "
                         f"α = 2/(λ_2 + λ_max) = {2.0 / (eigenvalues[1] + largest):.4g}")
    return float(max(abs(1 - step_size * eigenvalues[1]), abs(1 - step_size * largest))) if num_agents > 1 else 0.0


@dataclass(frozen=True)
class CentreConsensus:
    """How the formation agrees on its centre: graph, α, number of rounds, tolerance [m], own offsets o_i, and
    the reference in the agreed-centre frame (the path starting at 0) the MPC agents use."""

    edges: tuple[tuple[int, int], ...]
    offsets: tuple[tuple[float, float], ...]
    step_size: float
    rounds: int
    reference: ReferenceTrajectory
    tolerance: float = 1e-6
    position_columns: tuple[int, int] = (0, 1)

    def neighbours(self, i: int) -> set[int]:
        return {b if a == i else a for a, b in self.edges if i in (a, b)}


class CentreConsensusAgent(Agent):
    """Runs the centre consensus in the first iterations of step 0, then drives `inner` in the agreed frame."""

    def __init__(self, inner: Agent, consensus: CentreConsensus, horizon: int, input_size: int) -> None:
        self.inner, self.consensus = inner, consensus
        self.horizon, self.input_size = horizon, input_size
        self.agent_id = inner.agent_id
        self.neighbours = consensus.neighbours(self.agent_id)
        self.required_plans = frozenset(inner.required_plans | self.neighbours)
        self.estimate = np.zeros(2)
        self.disagreement = np.inf
        self._offset = 0         # negotiation iterations spent on consensus in the current step
        self._state = np.zeros(0)
        self.step, self.iteration = -1, 0
        self._stats = StepStatistics()
        self._plan: Plan | None = None

    @property
    def sequential(self) -> bool:
        """Consensus rounds are synchronous (Jacobi) whatever the inner scheme is."""
        return self.inner.sequential and self.iteration > self._offset

    @property
    def statistics(self) -> StepStatistics:
        """The consensus rounds' statistics, then the inner agent's (its iterations counted from the start of
        the step, rounds included: see _wrap)."""
        return self._stats if self._offset and self.iteration <= self._offset else self.inner.statistics

    def needs_current_iteration(self, neighbour: int) -> bool:
        return self.iteration > self._offset and self.inner.needs_current_iteration(neighbour)

    def _shift(self) -> np.ndarray:
        shift = np.zeros(self._state.size)
        shift[list(self.consensus.position_columns)] = self.estimate
        return shift

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        self.step, self.iteration = step, 0
        self._state = np.asarray(state, float)
        if step == 0:   # consensus first: start from the centre the own position implies
            self.estimate = (self._state[list(self.consensus.position_columns)]
                             - np.asarray(self.consensus.offsets[self.agent_id]))
            self._offset = self.consensus.rounds
            self._stats = StepStatistics()
            self._plan = self._consensus_plan()
            return self._plan
        self._offset = 0
        return self._wrap(self.inner.begin_step(step, self._state - self._shift(), self._unwrap(inbox)))

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        self.iteration += 1
        if self.iteration <= self._offset:
            values = [inbox[j].data["centre"] for j in self.neighbours
                      if j in inbox and inbox[j].step == self.step and "centre" in inbox[j].data]
            self._stats.messages_missing += len(self.neighbours) - len(values)
            self.estimate = self.estimate + self.consensus.step_size * sum((v - self.estimate for v in values),
                                                                           np.zeros(2))
            self.disagreement = max((float(np.max(np.abs(v - self.estimate))) for v in values), default=0.0)
            self._stats.iterations = self.iteration
            self._plan = self._consensus_plan()
            return self._plan
        if self._offset and self.iteration == self._offset + 1:   # agreed (or out of rounds): start the MPC
            plan = self.inner.begin_step(self.step, self._state - self._shift(), {})
            if self.disagreement > self.consensus.tolerance:
                self.inner.statistics.fallbacks += 1
                plan = replace(plan, feasible=False)
            return self._wrap(plan)
        return self._wrap(self.inner.iterate(self._unwrap(inbox)))

    def cut_short(self) -> Plan | None:
        """In the MPC iterations the inner agent's (its rules for a step cut short), in the agreed frame."""
        if self.iteration > self._offset:
            before = self.inner.last_plan
            plan = self.inner.cut_short()
            if plan is None:
                return None
            if before is not None:
                self.iteration += plan.iteration - before.iteration   # an extra plan of its own (fault bound)
            return self._wrap(plan)
        return super().cut_short()

    def _consensus_plan(self) -> Plan:
        """A plan that carries only the estimate (the state as measured, no inputs planned yet)."""
        return Plan(agent=self.agent_id, step=self.step, iteration=self.iteration,
                    states=np.tile(self._state, (self.horizon + 1, 1)),
                    inputs=np.zeros((self.horizon, self.input_size)),
                    cost=0.0,
                    feasible=True, converged=self.disagreement <= self.consensus.tolerance, final=False,
                    data={"centre": self.estimate.copy()})

    def _wrap(self, plan: Plan) -> Plan:
        """The inner plan as the network sees it: iteration counted from the start of the step, the
        estimate attached (positions stay in the agreed frame, which every agent shares)."""
        self._plan = replace(plan, iteration=self.iteration, data={**plan.data, "centre": self.estimate.copy()})
        self.inner.statistics.iterations = self.iteration
        if self._offset:
            self.inner.statistics.counters[CONSENSUS_ITERATIONS] = self._offset + 1
        if plan.final and self._offset and self.disagreement > self.consensus.tolerance:   # rounds ran out [m]
            self.inner.statistics.stop(True, False, max(self.inner.statistics.residual, self.disagreement))
        return self._plan

    def _unwrap(self, inbox: Mapping[int, Plan]) -> dict[int, Plan]:
        """Neighbours' plans with iterations counted as the inner agents count them; consensus-only plans
        of this step are hidden from the inner agent."""
        skip = self._offset + (1 if self._offset else 0)
        result = {}
        for j, plan in inbox.items():
            if plan.step == self.step and plan.iteration < skip:
                continue
            result[j] = replace(plan, iteration=plan.iteration - skip) if plan.step == self.step else plan
        return result

    def planned_input(self) -> np.ndarray:
        return self.inner.planned_input()

    def candidate_input(self) -> np.ndarray:
        return self.inner.candidate_input()

    def measured_state(self) -> np.ndarray:
        return self.inner.measured_state()

    @property
    def guard(self) -> InputGuard:
        return self.inner.guard

    @property
    def solved(self) -> bool:
        return self.inner.solved

    @property
    def nominal(self) -> np.ndarray:
        """A tube agent inside: its nominal state, back in the absolute frame."""
        return self.inner.nominal + self._shift()

    def constraint_margin(self) -> float:
        return self.inner.constraint_margin()
