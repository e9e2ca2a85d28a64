"""Closed-loop simulation: the plant and the agents of one algorithm, negotiating over an in-memory network.

Per control step k: every agent measures x_i(k) and announces its warm start (iteration 0); then iterations
p = 1, 2, … run until every agent has flagged its plan final; the plant applies u(k) and steps with the
optional disturbance. Parallel schemes read the plans of iteration p − 1, sequential ones (Gauss-Seidel)
also the plans of iteration p of the agents before them.
"""
from __future__ import annotations

from collections.abc import Callable
import time
from dataclasses import dataclass, field

import numpy as np

from ..coordination import AdmmSettings, ControllerDesign, StoppingRule
from ..coordination.nonlinear import NonlinearDesign
from ..models.linear import CoupledLinearSystem
from ..models.nonlinear import NonlinearPlant
from .network import TICKS_PER_ITERATION, InMemoryNetwork
from .results import SimulationResult


@dataclass
class SimulationSettings:
    algorithm: str
    steps: int
    stopping: StoppingRule = field(default_factory=StoppingRule)
    backend: str = "daqp"
    weights: list[float] | None = None
    compare_centralized: bool = False   # centralized optimum at every visited state (cost gap, input error)
    network: InMemoryNetwork = field(default_factory=InMemoryNetwork)
    disturbance: np.ndarray | None = None  # steps × n_x additive disturbance w(k)
    admm: AdmmSettings = field(default_factory=AdmmSettings)
    strict: bool = False   # end the run after the first step that applied a fallback input for want of a solution


def simulate(design: ControllerDesign | NonlinearDesign, plant: CoupledLinearSystem | NonlinearPlant, x0: np.ndarray,
             settings: SimulationSettings, progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Run the closed loop for settings.steps steps from x0; progress(k, steps) is called after each step."""
    T, N, n, m = settings.steps, design.horizon, plant.n_x, plant.n_u
    if settings.algorithm != "centralized":   # what the scheme needs (ADMM: separable terminal cost), for the
        design = design.for_algorithm(settings.algorithm)   # agents and the centralized comparison alike
    centralized = design.centralized() if settings.algorithm == "centralized" or settings.compare_centralized \
        else None
    agents = [] if settings.algorithm == "centralized" else design.agents(
        settings.algorithm, settings.stopping, settings.backend, settings.weights, settings.admm)
    max_iterations = 1 if settings.algorithm == "centralized" else settings.stopping.max_iterations
    if design.centre_consensus is not None and settings.algorithm != "centralized":   # step 0 agrees first
        max_iterations += design.centre_consensus.rounds + 1
    result = SimulationResult.empty(settings.algorithm, T, N, n, m, len(agents) or 1, max_iterations, plant.sample_time)
    result.communication = {a.agent_id: sorted(a.required_plans) for a in agents}
    tube_mode = bool(agents) and design.tubes is not None
    if tube_mode:
        result.nominal_x = np.full((T, n), np.nan)
    network = settings.network
    x = np.asarray(x0, float).copy()
    result.x[0] = x
    stride = TICKS_PER_ITERATION * (max_iterations + 2)
    shifted_inputs = None   # the centralized plan of the previous step, shifted (its next warm start)
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

            U, iterations, solve_times = negotiate(agents, design, network, k, x, stride, record)
            result.agent_solve_times[k] = solve_times
            result.agent_call_times[k] = [list(a.statistics.call_times) for a in agents]
        else:
            U, iterations = ref_inputs.ravel(), 1
            result.cost_per_iteration[k, 0] = design.trajectory_cost(ref_states, ref_inputs, k)
            result.agent_solve_times[k] = [[centralized.last_solve_time]]
            result.agent_call_times[k] = [[centralized.last_solve_time]]
        # what the controllers apply (agents in id order), guarded: their plans' first inputs (plus the ancillary
        # feedback in tube mode), or a fallback that is inside U_i (coordination/safe_input.py)
        controllers = agents or [centralized]
        u = np.concatenate([c.control() for c in controllers])
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
        w = None if settings.disturbance is None else settings.disturbance[k]
        x = plant.step(x, u, w)
        result.x[k + 1] = x
        if progress:
            progress(k + 1, T)
        if settings.strict and result.step_failed(k):
            result.violation[k + 1] = plant.constraint_violation(x)
            return result.truncated(k + 1, f"strict: step {k} applied a fallback input after "
                                           f"{result.failure_text(k)}")
    result.violation[T] = plant.constraint_violation(x)
    return result


def negotiate(agents, design, network: InMemoryNetwork, step: int, x: np.ndarray, stride: int,
              observe: Callable[[int, np.ndarray], None]) -> tuple[np.ndarray, int, list[list[float]]]:
    """One step's negotiation; observe(p, U) sees the assembled plans after every iteration p (0 = warm start).
    `design` assembles the plans (a ControllerDesign or a plant prediction). Returns the assembled inputs U
    (time-major), the iterations used and each agent's solve times; every whole agent call is timed into the
    agent's statistics (call_times: begin_step, then each iterate)."""
    system = design.system
    base = step * stride
    listeners = {a.agent_id: {b.agent_id for b in agents if a.agent_id in b.required_plans} for a in agents}
    latest = {}
    for agent in agents:
        inbox = network.inbox(agent.agent_id, base)
        started = time.perf_counter()
        plan = agent.begin_step(step, x[system.state_slice(agent.agent_id)], inbox)
        agent.statistics.call_times.append(time.perf_counter() - started)
        latest[agent.agent_id] = plan
        network.send(plan, listeners[agent.agent_id], base + 1)
    observe(0, design.assemble(latest))
    active = list(agents)
    iteration = 0
    while active:
        iteration += 1
        read_tick = base + TICKS_PER_ITERATION * iteration
        for agent in active:
            inbox = network.inbox(agent.agent_id, read_tick)
            started = time.perf_counter()
            plan = agent.iterate(inbox)
            agent.statistics.call_times.append(time.perf_counter() - started)
            latest[agent.agent_id] = plan
            network.send(plan, listeners[agent.agent_id], read_tick if agent.sequential else read_tick + 1)
        active = [a for a in active if not latest[a.agent_id].final]
        observe(iteration, design.assemble(latest))
    return design.assemble(latest), iteration, [list(a.statistics.solve_times) for a in agents]
