"""Closed-loop simulation: the plant and the agents of one algorithm, negotiating over an in-memory network.

Per control step k: every agent measures x_i(k) and announces its warm start (iteration 0); then iterations
p = 1, 2, … run until every agent has flagged its plan final; the plant applies u(k) and steps with the
optional disturbances (sim/disturbances.py). Each agent runs in a Negotiator (coordination/negotiator.py), the
same rules the ROS agent node runs: it iterates once the plans the iteration needs are in (of iteration p − 1 for
parallel schemes, p for a Gauss-Seidel predecessor) and uses substitutes after its iteration timeout, in simulated
time on the in-memory network (sim/network.py: latency, drops, outages, lossy links between hosts) and with the
agents' injected hold on received plans (plan_delay).
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..coordination import ControllerDesign, StoppingRule
from ..coordination.negotiator import DEFAULT_ITERATION_TIMEOUT, ApplyInput, Negotiator, PublishPlan, StepDone, WakeAt
from ..coordination.nonlinear import NonlinearDesign
from ..coordination.scheme import scheme_of
from ..models.linear import CoupledLinearSystem
from ..models.nonlinear import NonlinearPlant
from .disturbances import PlantDisturbance
from .network import InMemoryNetwork
from .plant_inputs import InputRules, PlantInputs
from .results import SimulationResult


class SeedRefused(ValueError):
    """The run's agents cannot start from the given warm start (SimulationSettings.warm_start)."""


@dataclass
class SimulationSettings:
    algorithm: str
    steps: int
    stopping: StoppingRule = field(default_factory=StoppingRule)
    backend: str = "daqp"
    weights: list[float] | None = None
    compare_centralized: bool = False   # centralized optimum at every visited state (cost gap, input error)
    network: InMemoryNetwork = field(default_factory=InMemoryNetwork)
    disturbance: np.ndarray | None = None  # steps × n_x additive disturbance w(k) on x(k+1)
    scheme_settings: Any = None   # the scheme's own settings, opaque (None: its defaults)
    strict: bool = False   # end the run after the first step that applied a fallback input for want of a solution
    iteration_timeout: float = DEFAULT_ITERATION_TIMEOUT   # [s] simulated wait for a late plan (negotiator.py)
    input_disturbance: np.ndarray | None = None   # steps × n_u d(k) added to the applied input (a load)
    input_rules: InputRules = field(default_factory=InputRules)   # the plant's clamp, rate limit, stale rule
    plan_delay: float = 0.0   # [s, simulated] every agent holds a received plan this long (negotiator.py)
    warm_start: np.ndarray | None = None   # N × n_u: the first step's candidate (a team change), else the reference


def simulate(design: ControllerDesign | NonlinearDesign, plant: CoupledLinearSystem | NonlinearPlant, x0: np.ndarray,
             settings: SimulationSettings, progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Run the closed loop for settings.steps steps from x0; progress(k, steps) is called after each step."""
    T, N, n, m = settings.steps, design.horizon, plant.n_x, plant.n_u
    scheme = scheme_of(settings.algorithm)
    design = design.for_algorithm(settings.algorithm)   # what the scheme needs (ADMM: separable terminal cost), for
    controllers = design.controllers(settings.algorithm, settings.stopping, settings.backend,   # the agents and the
                                     settings.weights, settings.scheme_settings)   # centralized comparison alike
    agents = controllers if scheme.runs_as_agents else []
    if settings.warm_start is not None:   # each agent's columns of the candidate
        inputs = {i: settings.warm_start[:, plant.input_slice(i)] for i in range(plant.num_agents)}
        states = {i: x0[plant.state_slice(i)] for i in range(plant.num_agents)}
        if not all(a.seed(inputs, states) for a in agents):
            raise SeedRefused(f"controller.algorithm {settings.algorithm}: its agents cannot start from a given "
                             f"candidate (team_changes need agents that can, e.g. jacobi, gauss_seidel)")
    centralized = controllers[0] if not scheme.runs_as_agents else \
        design.centralized() if settings.compare_centralized else None
    max_iterations = settings.stopping.max_iterations if agents else 1
    if design.centre_consensus is not None and agents:   # step 0 agrees first
        max_iterations += design.centre_consensus.rounds + 1
    result = SimulationResult.empty(settings.algorithm, T, N, n, m, len(agents) or 1, max_iterations, plant.sample_time)
    result.communication = {a.agent_id: sorted(a.required_plans) for a in agents}
    if agents:   # the limit and tolerance a capped step is reported against (a centralized run has none)
        result.iteration_limit, result.tolerance = settings.stopping.max_iterations, settings.stopping.tolerance
    else:
        result.iteration_limit = 0
    tube_mode = bool(agents) and design.tubes is not None
    if tube_mode:
        result.nominal_x = np.full((T, n), np.nan)
    network = settings.network
    x = np.asarray(x0, float).copy()
    result.x[0] = x
    plant_inputs = PlantInputs(plant.subsystems, settings.input_rules)
    disturbance = PlantDisturbance(settings.disturbance, settings.input_disturbance)
    team = SimulatedTeam(agents, design, network, max_iteration=max_iterations, steps=T,
                         sample_time=plant.sample_time, iteration_timeout=settings.iteration_timeout,
                         plan_delay=settings.plan_delay) \
        if agents else None
    shifted_inputs = None   # the centralized plan of the previous step, shifted (its next warm start)
    stale_used = 0   # plans an agent used from an earlier iteration (its statistics.messages_late, as AgentStatus adds)
    for k in range(T):
        messages_before, bytes_before = network.messages, network.bytes
        if centralized is not None:
            extra = None
            if design.collision is not None:   # half-planes from its own previous plan, shifted (as the agents do)
                warm = shifted_inputs if k else design.reference.window(0, N)[1].ravel()   # the agents' start
                previous = design.predict(x, warm)
                extra = design.collision.state_rows(design.collision.positions(plant, previous), plant.state_offsets, n)
            ref_states, ref_inputs, reference_ok = centralized.plan(x, k, extra)
            shifted_inputs = np.concatenate([ref_inputs.ravel()[m:], ref_inputs.ravel()[-m:]])
            if reference_ok:
                result.centralized_cost[k] = design.trajectory_cost(ref_states, ref_inputs, k)
            if agents:   # the comparison's own failures (a centralized run counts them as its controller's)
                result.reference_failed[k] = not reference_ok
            result.centralized_solve_time[k] = centralized.last_solve_time
        if agents:
            trace = result.cost_per_iteration[k]

            def record(p: int, U_p: np.ndarray, trace=trace) -> None:
                if p < trace.size:
                    trace[p] = design.plan_cost(x, U_p, k)

            U, iterations, solve_times = team.step(k, x, record)
            result.agent_solve_times[k] = solve_times
            result.agent_call_times[k] = [list(a.statistics.call_times) for a in agents]
            stale_used += sum(a.statistics.messages_late for a in agents)
        else:
            U, iterations = ref_inputs.ravel(), 1
            result.cost_per_iteration[k, 0] = design.trajectory_cost(ref_states, ref_inputs, k)
            result.agent_solve_times[k] = [[centralized.last_solve_time]]
            result.agent_call_times[k] = [[centralized.last_solve_time]]
        # what the controllers apply (agents in id order), guarded: their plans' first inputs (plus the ancillary
        # feedback in tube mode), or a fallback that is inside U_i (coordination/safe_input.py)
        controllers = agents or [centralized]
        offered = [team.applied[a.agent_id] for a in agents] if agents else \
            np.split(centralized.control(), np.cumsum([plant.subsystems[i].n_u for i in range(plant.num_agents)])[:-1])
        for i, u_i in enumerate(offered):   # the plant's own guard, as the ROS plant node applies it
            plant_inputs.offer(i, u_i, x[plant.state_slice(i)], now=k)
        u = plant_inputs.apply(x, now=k, step=k)
        result.refused_inputs, result.plant_inputs = plant_inputs.refused, plant_inputs.counts()
        result.record_failures(k, [c.statistics for c in controllers])
        result.iterations[k] = iterations
        result.plan_inputs[k] = U.reshape(N, m)
        result.plan_states[k] = design.predict(x, U)
        result.plan_cost[k] = design.trajectory_cost(result.plan_states[k], result.plan_inputs[k], k)
        if centralized is not None and reference_ok:
            result.input_error[k] = np.linalg.norm(U - ref_inputs.ravel()) / max(np.linalg.norm(ref_inputs), 1e-12)
        result.u[k] = u
        if tube_mode:
            result.nominal_x[k] = np.concatenate([a.nominal for a in agents])
        result.stage_cost[k] = design.stage_cost(x, u, k)
        result.violation[k] = plant.constraint_violation(x, u)
        result.messages[k] = network.messages - messages_before
        result.bytes[k] = network.bytes - bytes_before
        x = disturbance.step(plant, x, u, k)
        result.x[k + 1] = x
        if progress:
            progress(k + 1, T)
        if settings.strict and result.step_failed(k):
            result.violation[k + 1] = plant.constraint_violation(x)
            return result.truncated(k + 1, f"strict: step {k} applied a fallback input after "
                                           f"{result.failure_text(k)}")
    result.violation[T] = plant.constraint_violation(x)
    if team is not None:
        result.messages_missing = team.counts.get("missing", 0)
        result.messages_late = team.counts.get("late", 0) + stale_used   # AgentStatus.messages_late, summed
    return result


class SimulatedTeam:
    """The agents of one run as negotiators on the in-memory network, in simulated time (lock-step: step k's
    measurements go out once step k − 1's inputs are all applied, and no earlier than k·Δt). Messages still in flight
    at the end of a step arrive during the next one, as they would on a real link."""

    def __init__(self, agents, design, network: InMemoryNetwork | None = None, *, max_iteration: int = 100_000,
                 steps: int = 10**9, sample_time: float = 1.0,
                 iteration_timeout: float = DEFAULT_ITERATION_TIMEOUT, plan_delay: float = 0.0) -> None:
        """`design` assembles the plans (a ControllerDesign or a plant prediction) and knows the state slices;
        `max_iteration` bounds the iterations of a step (the negotiators refuse plans beyond it); `plan_delay` [s]:
        each negotiator holds a received plan that long (the same as that latency on every link into it)."""
        network = InMemoryNetwork() if network is None else network
        self.agents, self.design, self.network, self.sample_time = agents, design, network, sample_time
        self.negotiators = {a.agent_id: Negotiator(a, max_iteration, steps, iteration_timeout, plan_delay=plan_delay)
                            for a in agents}
        self.listeners = {a.agent_id: {b.agent_id for b in agents if a.agent_id in b.required_plans} for a in agents}
        self.now = 0.0
        self._wakes: list[tuple[float, int, int]] = []
        self._order = itertools.count()
        for negotiator in self.negotiators.values():
            negotiator.activate(self.now)
        self.counts: dict[str, int] = {}

    def step(self, step: int, x: np.ndarray, observe: Callable[[int, np.ndarray], None] | None = None) -> tuple[
            np.ndarray, int, list[list[float]]]:
        """Step `step`'s negotiation from the measured plant state x; observe(p, U) sees the assembled plans after
        every iteration p (0 = warm start). Returns the assembled inputs U (time-major), the iterations used and
        each agent's solve times; `applied` then holds each agent's input (every whole agent call is timed into
        its statistics.call_times)."""
        self._observe, self._observed, self._assembled = observe, -1, None
        self._negotiate(step, x)
        self._observe_complete()
        return self._assembled, self._observed, [list(a.statistics.solve_times) for a in self.agents]

    def _negotiate(self, step: int, x: np.ndarray) -> None:
        state_slice = self.design.system.state_slice
        self._run_until(step * self.sample_time)
        self.now = max(self.now, step * self.sample_time)
        self.applied: dict[int, np.ndarray] = {}
        self._plans: dict[int, list] = {i: [] for i in self.negotiators}
        self._step = step
        for i, negotiator in self.negotiators.items():
            self._handle(i, negotiator.measure(step, x[state_slice(i)], self.now))
        while len(self.applied) < len(self.negotiators):
            if not self._next_event():
                waiting = sorted(set(self.negotiators) - set(self.applied))
                raise RuntimeError(f"step {step}: agents {waiting} wait with no deadline armed (a negotiator bug)")

    def _run_until(self, t: float) -> None:
        """Deliver what arrives and fire what is due up to time t (late plans of the step before)."""
        while min(self.network.next_delivery() or np.inf, self._wakes[0][0] if self._wakes else np.inf) <= t:
            self._next_event()

    def _next_event(self) -> bool:
        arrival = self.network.next_delivery()
        wake = self._wakes[0][0] if self._wakes else None
        if arrival is None and wake is None:
            return False
        if wake is None or (arrival is not None and arrival <= wake):
            due, receiver, plan = self.network.deliver()
            self.now = max(self.now, due)
            self._handle(receiver, self.negotiators[receiver].receive(plan, self.now))
        else:
            due, _, i = heapq.heappop(self._wakes)
            self.now = max(self.now, due)
            self._handle(i, self.negotiators[i].tick(self.now))
        return True

    def _observe_complete(self) -> None:
        """Once every agent has announced iteration p (or stopped before it), the assembled plans of iteration p
        (each agent's plan of iteration min(p, its last)) go to the observer, with the agents' statistics as they
        are then: zero-latency deliveries arrive in the order sent, so no agent has started p + 1 yet."""
        histories = self._plans.values()
        last = max((h[-1].iteration for h in histories if h), default=-1)
        while self._observed < last:
            p = self._observed + 1
            if not all(h and (h[-1].iteration >= p or h[-1].final) for h in histories):
                return
            self._assembled = self.design.assemble(
                {i: next(plan for plan in reversed(h) if plan.iteration <= p) for i, h in self._plans.items()})
            self._observed = p
            if self._observe is not None:
                self._observe(p, self._assembled)

    def _handle(self, i: int, actions) -> None:
        for action in actions:
            if isinstance(action, PublishPlan):
                self.network.send(action.plan, self.listeners[i], self.now)
                if action.plan.step == self._step:
                    self._plans[i].append(action.plan)
                    self._observe_complete()
            elif isinstance(action, ApplyInput) and action.step == self._step and not action.stop:
                self.applied[i] = action.input
            elif isinstance(action, WakeAt):
                heapq.heappush(self._wakes, (action.time, next(self._order), i))
            elif isinstance(action, StepDone):
                for name, value in action.counts.items():
                    self.counts[name] = self.counts.get(name, 0) + value




def negotiate(agents, design, step: int, x: np.ndarray, observe: Callable[[int, np.ndarray], None] | None = None,
              network: InMemoryNetwork | None = None) -> tuple[np.ndarray, int, list[list[float]]]:
    """One step's negotiation by fresh negotiators (tests and benchmarks of a single step): SimulatedTeam.step."""
    return SimulatedTeam(agents, design, network).step(step, x, observe)
