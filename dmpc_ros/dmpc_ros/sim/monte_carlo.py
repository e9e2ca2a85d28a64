"""One seeded closed-loop run of a (robust) scenario, with the figures a Monte Carlo collects: constraint
violation, failed and fallback solves, tube fill, minimum inter-robot distance, cost and step time. Used by the
robust tests and benchmarks alike."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ..coordination import build_agents
from ..mpc.condensed import QuadraticCost
from .closed_loop import SimulatedTeam
from .network import InMemoryNetwork


@dataclass
class RunFigures:
    violation: float          # largest state/input violation [constraint units]
    failed: int               # final plans flagged infeasible (summed over steps and agents)
    fallbacks: int            # every fallback the agents counted
    fill: float               # max |x − x̄| / tube radius (tube mode; 0 otherwise)
    min_distance: float       # formation: closest pair [m] (nan otherwise)
    cost: float               # closed-loop cost Σ ℓ(x, u) against the scenario's setpoint
    step_time: float          # wall time per control step [s]
    dropped: int              # plans the network lost
    states: np.ndarray        # T+1 × n
    nominal: np.ndarray | None   # T × n nominal states (tube mode)

    def violating(self, min_distance: float | None = None) -> bool:
        """Any state/input violation, or (formation) a pair closer than min_distance."""
        return self.violation > 1e-9 or (min_distance is not None and self.min_distance < min_distance - 1e-9)


_DESIGNS: dict[tuple[int, bool], tuple] = {}   # (id(scenario), tube) → (scenario, design, problem, performance cost)


def design_of(scenario, tube: bool):
    """(design, plant prediction, performance cost) of the scenario in tube or nominal mode, built once per
    scenario object in this process (runs differ only in their seeds; a terminal set takes a while to compute)."""
    key = (id(scenario), tube)
    if key not in _DESIGNS or _DESIGNS[key][0] is not scenario:
        if len(_DESIGNS) > 8:
            _DESIGNS.clear()
        design = (scenario if tube else dataclasses.replace(scenario, tubes=None)).design()
        # performance is measured against the scenario's own setpoint (a terminal-set target may differ by mode)
        performance = QuadraticCost(design.Q, design.R, design.cost().P,
                                    scenario.reference_trajectory(scenario.prediction_model()))
        _DESIGNS[key] = (scenario, design, design.prediction, performance)
    return _DESIGNS[key][1:]


def closed_loop_run(scenario, seed: int, tube: bool = True, network: InMemoryNetwork | None = None,
                    initial_state: np.ndarray | None = None) -> RunFigures:
    """The scenario with disturbance seed `seed`, in tube mode or (tube=False) as nominal DMPC, over `network`
    (lossless by default); the tube radii for the fill are the scenario's."""
    design, problem, performance = design_of(scenario, tube)
    radii = None if scenario.tubes is None else np.concatenate([z.radii() for z in scenario.tubes.tubes])
    scenario = dataclasses.replace(scenario, disturbance_seed=seed)
    network = network or InMemoryNetwork()
    plant = scenario.plant()
    agents = build_agents(design, scenario.controller.algorithm, scenario.controller.stopping)
    x = (scenario.initial_state if initial_state is None else initial_state).copy()
    disturbance = scenario.plant_disturbance()
    states, inputs, nominal = [x], [], []
    violation, failed, fallbacks, fill, cost = 0.0, 0, 0, 0.0, 0.0
    started = time.perf_counter()
    team = SimulatedTeam(agents, problem, network)
    for k in range(scenario.steps):
        team.step(k, x)
        u = np.concatenate([a.control() for a in agents])
        inputs.append(u)
        failed += sum(1 for a in agents if not a.last_plan.feasible)
        fallbacks += sum(a.statistics.fallbacks for a in agents)
        if tube:
            nominal.append(np.concatenate([a.nominal for a in agents]))
            fill = max(fill, float(np.max(np.abs(x - nominal[-1]) / radii)))
        violation = max(violation, plant.constraint_violation(x, u))
        cost += performance.stage(x, u, k)
        x = disturbance.step(plant, x, u, k)
        states.append(x)
    elapsed = (time.perf_counter() - started) / scenario.steps
    states = np.array(states)
    distance = scenario.metrics(states, np.array(inputs)).get("min_distance", float("nan"))
    return RunFigures(max(violation, plant.constraint_violation(x)), failed, fallbacks, fill, distance, cost,
                      elapsed, network.dropped, states, np.array(nominal) if tube else None)
