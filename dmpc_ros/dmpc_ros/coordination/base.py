"""The sans-IO negotiation contract every DMPC algorithm implements (see docs/ARCHITECTURE.md).

Per control step k:  begin_step(k, x_i, inbox) → Plan⁰ (warm start, carries x_i(k));
                     iterate(inbox) → Planᵖ, p = 1, 2, … until the plan is flagged final;
                     control() → u_i(k).
`inbox` maps agent id → the newest plan received from it (any step and iteration; possibly stale or
absent). `required_plans` says whose plans the agent uses; `needs_current_iteration(j)` tells the driver
whether agent j's plan of the *same* iteration is needed (sequential schemes such as Gauss-Seidel) or the
previous one (parallel schemes).
"""
from __future__ import annotations

import dataclasses

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .plan import Plan
from .safe_input import GuardDecision, InputGuard
from .safety_filter import OneStepModel


@dataclass
class StepStatistics:
    """What an agent did during one control step (fed to AgentStatus and the simulator's records)."""

    iterations: int = 0
    solve_times: list[float] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)   # whole begin_step / iterate calls, timed by the driver [s]
    fallbacks: int = 0
    infeasible: int = 0              # local problems the solver reported infeasible (repairs included)
    solver_failures: int = 0         # other failed solves (iteration limits, numerical trouble, rejected results)
    input_source: str = "solved"     # where the applied input came from (safe_input.INPUT_SOURCES)
    messages_missing: int = 0
    messages_late: int = 0
    messages_rejected: int = 0
    primal_residual: float = 0.0
    dual_residual: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)   # the scheme's own counts (Scheme.counters), by name
    feedback_times: list[float] = field(default_factory=list)   # RTI: the feedback phase of each solve [s]
    capped: bool = False     # the step stopped at its iteration limit (max_iterations) without meeting its tolerance
    residual: float = 0.0    # the scheme's convergence measure at the last iteration, on the tolerance's scale [-]

    def count(self, name: str, amount: float = 1) -> None:
        """Add to one of the scheme's counters (declared with their meaning in its Scheme.counters)."""
        self.counters[name] = self.counters.get(name, 0) + amount

    def stop(self, at_limit: bool, agreed: bool, residual: float) -> bool:
        """Record one iteration's stopping decision and return whether the plan is final: the agent stops when it
        and its neighbours agreed (met the tolerance) or at its iteration limit; stopping at the limit without
        agreement marks the step capped. `residual` is what the scheme compares with its tolerance (relative plan
        change, ADMM's scaled residuals, …), so capped steps say how far from the tolerance they stopped."""
        self.capped, self.residual = at_limit and not agreed, float(residual)
        return at_limit or agreed

    def count_failure(self, infeasible: bool) -> None:
        if infeasible:
            self.infeasible += 1
        else:
            self.solver_failures += 1

    @property
    def fallback_input(self) -> bool:
        """Whether the applied input came from a fallback rather than this step's final solve."""
        return self.input_source != "solved"


SAFETY_COUNTERS = {   # reported by every agent whose guard checks X_i (StepStatistics.counters, summary, AgentStatus)
    "safety_inputs": "applied inputs the one-step safety rule chose, as x_i(k+1) would have left X_i",
    "checked_fallbacks": "fallback inputs whose predicted x_i(k+1) was checked against X_i",
    "fallback_state_margin": "margin of that x_i(k+1) in X_i [state units, negative: outside]; worst in summary",
}


def record_safety(stats: StepStatistics, decisions: Iterable[GuardDecision]) -> None:
    """The step's safety counters from the guard's decisions (one per subsystem a controller applies): 1 if any, the
    smallest margin; idempotent, since control() may be asked twice."""
    for decision in decisions:
        if decision.rule == "safety":
            stats.counters["safety_inputs"] = 1
        if stats.fallback_input and decision.state_margin is not None and np.isfinite(decision.state_margin):
            stats.counters["checked_fallbacks"] = 1
            stats.counters["fallback_state_margin"] = min(stats.counters.get("fallback_state_margin", np.inf),
                                                          decision.state_margin)


@dataclass(frozen=True)
class StoppingRule:
    """Stop at max_iterations, or once the own change and every required neighbour's change are small:
    ‖U_i⁽ᵖ⁾ − U_i⁽ᵖ⁻¹⁾‖∞ ≤ tolerance · (1 + ‖U_i⁽ᵖ⁻¹⁾‖∞)."""

    # the default of controller.max_iterations: 10 stopped cooperative Jacobi 0.2 % short of the optimum on a 3-area
    # load-frequency system (issue 26) and capped 18 of mass_spring's 60 steps; 30 reaches 1e-6 there
    max_iterations: int = 30
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be ≥ 1, got {self.max_iterations}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be ≥ 0, got {self.tolerance}")

    def converged(self, new: np.ndarray, old: np.ndarray) -> bool:
        return bool(np.max(np.abs(new - old), initial=0.0) <= self.tolerance * (1 + np.max(np.abs(old), initial=0.0)))

    @staticmethod
    def change(new: np.ndarray, old: np.ndarray) -> float:
        """The relative change ‖new − old‖∞ / (1 + ‖old‖∞) that `converged` compares with the tolerance."""
        return float(np.max(np.abs(new - old), initial=0.0) / (1 + np.max(np.abs(old), initial=0.0)))

    def at_limit(self, iteration: int) -> bool:
        return iteration >= self.max_iterations


class Agent(ABC):
    """One DMPC agent: owns subsystem `agent_id`, negotiates through Plans, applies u_i."""

    agent_id: int
    required_plans: frozenset[int]
    sequential: bool = False   # True: within an iteration, agents update one after another (Gauss-Seidel)

    def needs_current_iteration(self, neighbour: int) -> bool:
        return False

    @abstractmethod
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan: ...

    @abstractmethod
    def iterate(self, inbox: Mapping[int, Plan]) -> Plan: ...

    def seed(self, inputs: Mapping[int, np.ndarray], states: Mapping[int, np.ndarray] | None = None) -> bool:
        """Start the first step from a given candidate (each agent's inputs over the horizon, N × m_j: a team
        change's shifted plans, coordination/team_change.py) instead of the reference, and from the agents' states
        `states` (x_j(k), what the shifted plans predict) until their first plans tell them; False: this agent
        cannot (its warm start is its own), and the driver refuses the run."""
        return False

    _stats: StepStatistics
    _plan: Plan | None = None
    guard: InputGuard          # the agent's input set (what control() may return)
    solved: bool = True        # the announced plan came from this step's last solve (False: a kept iterate)

    def control(self) -> np.ndarray:
        """u_i(k), always finite and inside U_i (coordination/safe_input.py): the announced plan's first input, else
        the feasible candidate's, else its projection; statistics.input_source says which."""
        decision = self.guard.decide(self.planned_input(), self.candidate_input(), self.measured_state(),
                                     self.one_step_model())
        rule, stats = decision.rule, self.statistics
        stats.input_source = ("solved" if self.solved else "previous_iterate") if rule == "plan" else rule
        record_safety(stats, (decision,))
        return decision.input

    def cut_short(self) -> Plan | None:
        """The negotiation stops before this agent's final iterate (overtaken by the next measurement, or its real-time
        step budget spent): the plan to announce as final, whose first input control() then applies. Default: the
        current iterate (every iterate of the cooperative schemes is feasible)."""
        return None if self._plan is None else dataclasses.replace(self._plan, final=True)

    def rejoin(self, own: Plan | None) -> None:
        """A respawned agent (issue 28): `own` is its last final plan from before the crash (None: lost). Called
        before its first step; an agent that can warm-start from it (and from the neighbours' newest plans its first
        begin_step receives) does so, shifted to the step it measures first. Default: a cold start, as at step 0."""

    def one_step_model(self, own_state: np.ndarray | None = None) -> OneStepModel | None:
        """x_i(k+1) as a function of u_i(k) by the agent's nominal model from the measured x_i (or `own_state`: tube
        mode's real state), the neighbours at their latest known plans (what the guard keeps inside X_i,
        coordination/safety_filter.py); None: the agent has none."""
        return None

    @abstractmethod
    def planned_input(self) -> np.ndarray:
        """The first input of the announced plan (what the neighbours expect to be applied)."""

    @abstractmethod
    def candidate_input(self) -> np.ndarray:
        """The first input of this step's feasible candidate (the previous plan shifted; reference at step 0)."""

    @abstractmethod
    def measured_state(self) -> np.ndarray:
        """x_i(k) as measured (the mixed input rows depend on it)."""

    @property
    def statistics(self) -> StepStatistics:
        """What the agent did in the current control step."""
        return self._stats

    @property
    def last_plan(self) -> Plan | None:
        """The plan the agent announced last."""
        return self._plan

    def next_step_law(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(v, z, K): what the plant may apply at step k + 1 should this agent's input of that step not reach it,
        u = v + K (x − z) — the announced plan's next input and state, i.e. the shifted plan the agent itself would
        start step k + 1 from; K = 0 here (the planned input as it is; tube agents add their ancillary gain). None
        without a plan of at least two steps."""
        plan = self.last_plan
        if plan is None or plan.horizon < 2:
            return None
        return plan.inputs[1], plan.states[1], np.zeros((plan.inputs.shape[1], plan.states.shape[1]))

    @abstractmethod
    def constraint_margin(self) -> float:
        """Smallest constraint slack of the agent's current view (negative: violated) [constraint units]."""
