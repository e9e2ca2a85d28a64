"""ADMM DMPC: neighbour-only consensus reaches the centralized optimum; residuals; stopping; messages."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dmpc_ros.coordination import AdmmSettings, CentralizedMPC, StoppingRule, build_agents
from dmpc_ros.coordination.plan import Plan
from dmpc_ros.scenarios import load_scenario
from dmpc_ros.sim import SimulationSettings, simulate
from dmpc_ros.sim.closed_loop import negotiate


@pytest.fixture(scope="module")
def admm_case():
    scenario = load_scenario("mass_spring").with_overrides(algorithm="admm")
    design = scenario.design()
    assert design.separable_terminal_cost
    problem = design.condensed()
    _, optimum, ok = CentralizedMPC(design.system, problem.cost, design.horizon).solve(scenario.initial_state)
    assert ok
    return scenario, design, problem, optimum.ravel()


def run_admm(case, stopping: StoppingRule):
    scenario, design, problem, optimum = case
    agents = build_agents(design, "admm", stopping)
    errors, residuals = [], []

    def observe(p: int, U: np.ndarray) -> None:
        errors.append(np.linalg.norm(U - optimum) / np.linalg.norm(optimum))
        if p > 0:
            residuals.append(max(max(a.statistics.primal_residual, a.statistics.dual_residual) for a in agents))

    _, iterations, _ = negotiate(agents, problem, 0, scenario.initial_state, observe)
    return agents, errors, residuals, iterations


def test_admm_reaches_the_centralized_optimum_with_residuals_to_tolerance(admm_case) -> None:
    agents, errors, residuals, iterations = run_admm(admm_case, StoppingRule(1000, 1e-6))
    assert errors[-1] < 1e-3
    assert iterations < 1000                                  # the residual test stopped it, not the cap
    assert residuals[-1] <= 1e-6 * 10                          # both residuals at tolerance (scaled by 1 + ‖z‖)
    assert np.mean(residuals[-10:]) < 1e-3 * np.mean(residuals[:10])
    assert all(a.last_plan.final for a in agents)
    # neighbour-to-neighbour only: nobody listens to an agent it is not dynamically coupled with
    system = admm_case[1].system
    for agent in agents:
        coupled = {j for j in range(system.num_agents) if j != agent.agent_id and
                   (agent.agent_id in system.dynamic_neighbours(j) or j in system.dynamic_neighbours(agent.agent_id))}
        assert agent.required_plans == coupled


def test_admm_honours_the_iteration_cap(admm_case) -> None:
    agents, errors, _, iterations = run_admm(admm_case, StoppingRule(7, 0.0))
    assert iterations == 7 and len(errors) == 8
    assert errors[-1] < errors[1]


def test_admm_closed_loop_matches_centralized(admm_case) -> None:
    scenario = dataclasses.replace(admm_case[0], steps=40)
    design, plant = scenario.design(), scenario.plant()
    reference = simulate(design, plant, scenario.initial_state, SimulationSettings("centralized", scenario.steps))
    result = simulate(design, plant, scenario.initial_state,
                      SimulationSettings("admm", scenario.steps, StoppingRule(200, 1e-7), compare_centralized=True))
    assert abs(result.closed_loop_cost - reference.closed_loop_cost) <= 1e-4 * reference.closed_loop_cost
    assert np.nanmax(result.input_error) < 1e-3
    assert np.max(result.violation) < 1e-6


@pytest.mark.parametrize("penalty", [0.01, 30.0])
def test_residual_balancing_rescues_a_badly_chosen_penalty(admm_case, penalty: float) -> None:
    """Per-edge residual balancing (both ends adapt ρ_e alike) converges where a fixed bad ρ crawls."""
    scenario, design, problem, optimum = admm_case
    outcome = {}
    for balancing in (False, True):
        agents = build_agents(design, "admm", StoppingRule(1000, 1e-6),
                              scheme_settings=AdmmSettings(penalty, 1.6, balancing))
        errors = []
        _, iterations, _ = negotiate(agents, problem, 0, scenario.initial_state,
                                     lambda p, U: errors.append(np.linalg.norm(U - optimum) / np.linalg.norm(optimum)))
        outcome[balancing] = (iterations, errors[-1], agents)
    assert outcome[False][0] == 1000 and outcome[False][1] > 1e-5     # fixed ρ: still crawling at the cap
    assert outcome[True][0] < 1000 and outcome[True][1] < 1e-3        # balanced: converged
    rho = [a.rho for a in outcome[True][2]]
    assert any(value != penalty for r in rho for value in r.values())
    for holder in outcome[True][2]:                                    # both ends of every edge agree on ρ_e
        for (direction, other, kind), value in holder.rho.items():
            if direction == "in":
                assert outcome[True][2][other].rho[("out", holder.agent_id, kind)] == value


def test_accelerated_admm_reaches_the_optimum_and_both_ends_of_an_edge_restart_alike(admm_case) -> None:
    """Nesterov momentum with restart per edge: same optimum; the restart decision and the momentum step are
    computed from values both ends share, so they agree on every edge."""
    scenario, design, problem, optimum = admm_case
    agents = build_agents(design, "admm", StoppingRule(1000, 1e-6),
                          scheme_settings=AdmmSettings(0.3, 1.0, acceleration=True))
    errors = []
    _, iterations, _ = negotiate(agents, problem, 0, scenario.initial_state,
                                 lambda p, U: errors.append(np.linalg.norm(U - optimum) / np.linalg.norm(optimum)))
    assert iterations < 1000 and errors[-1] < 1e-3
    # a fixed number of iterations (nobody stops early): every edge's two ends hold the same momentum
    agents = build_agents(design, "admm", StoppingRule(25, 0.0),
                          scheme_settings=AdmmSettings(0.3, 1.0, acceleration=True))
    negotiate(agents, problem, 0, scenario.initial_state)
    assert max(m.step for a in agents for m in a.momentum.values()) > 1.0   # momentum was used
    for holder in agents:
        for (direction, other, kind), state in holder.momentum.items():
            if direction == "in":
                twin = agents[other].momentum[("out", holder.agent_id, kind)]
                assert (twin.step, twin.residual) == (state.step, state.residual)
                np.testing.assert_array_equal(twin.z, state.z)


def test_admm_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="penalty ρ must be > 0"):
        AdmmSettings(penalty=0.0)
    with pytest.raises(ValueError, match=r"over-relaxation α must be in \[1, 2\)"):
        AdmmSettings(over_relaxation=2.5)
    with pytest.raises(ValueError, match=r"restart ratio η must be in \(0, 1\)"):
        AdmmSettings(acceleration=True, restart_ratio=1.0)


def test_admm_plan_data_survives_the_message(admm_case) -> None:
    from builtin_interfaces.msg import Time

    from dmpc_ros.ros.conversions import MalformedPlan, message_to_plan, plan_to_message

    scenario, design, problem, _ = admm_case
    agents = build_agents(design, "admm", StoppingRule(3, 0.0))
    plans = {a.agent_id: a.begin_step(0, scenario.initial_state[2 * a.agent_id: 2 * a.agent_id + 2], {})
             for a in agents}
    plan = agents[1].iterate(plans)
    assert plan.data and all(isinstance(v, np.ndarray) for v in plan.data.values())
    message = plan_to_message(plan, 0.1, Time())
    back = message_to_plan(message, 20, 2, 1)
    assert back.data.keys() == plan.data.keys()
    for name in plan.data:
        np.testing.assert_array_equal(back.data[name], plan.data[name])
    message.algorithm_data_layout = message.algorithm_data_layout.replace("=20x", "=21x", 1)
    with pytest.raises(MalformedPlan, match="does not fit|layout describes"):
        message_to_plan(message, 20, 2, 1)
    message.algorithm_data_layout = "junk=axb"
    with pytest.raises(MalformedPlan, match="bad algorithm_data_layout entry"):
        message_to_plan(message, 20, 2, 1)


def test_plan_without_data_is_a_plain_plan() -> None:
    plan = Plan(0, 0, 0, np.zeros((3, 2)), np.zeros((2, 1)), 0.0, True, False, False)
    assert plan.data == {} and plan.nbytes() > 0
