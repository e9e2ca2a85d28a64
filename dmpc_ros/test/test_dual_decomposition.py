"""Dual decomposition: prices on a shared net-force budget coordinate dynamically decoupled agents."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dmpc_ros.coordination import CentralizedMPC, StoppingRule, build_agents
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario
from dmpc_ros.sim import SimulationSettings, simulate
from dmpc_ros.sim.closed_loop import negotiate


@pytest.fixture(scope="module")
def budget_case():
    scenario = load_scenario("mass_budget")
    design = scenario.design()
    problem = design.condensed()
    _, optimum, ok = CentralizedMPC(design.system, problem.cost, design.horizon).solve(scenario.initial_state)
    assert ok
    return scenario, design, problem, optimum


def test_prices_reach_the_centralized_optimum_with_the_budget_active(budget_case) -> None:
    scenario, design, problem, optimum = budget_case
    net = np.abs(optimum.sum(axis=1))
    assert np.max(net) == pytest.approx(1.2, abs=1e-6)              # the shared budget binds at the optimum
    agents = build_agents(design, "dual_decomposition", StoppingRule(3000, 1e-7))
    errors, excess = [], []

    def observe(p: int, U: np.ndarray) -> None:
        errors.append(np.linalg.norm(U - optimum.ravel()) / np.linalg.norm(optimum))
        excess.append(max(0.0, np.max(np.abs(U.reshape(design.horizon, -1).sum(axis=1))) - 1.2))

    _, iterations, _ = negotiate(agents, problem, 0, scenario.initial_state, observe)
    assert iterations < 3000 and errors[-1] < 1e-3
    assert excess[-1] < 1e-4 and excess[1] > 0.1                   # the first plans overdraw, the last do not
    prices = [a.prices for a in agents]
    for p in prices[1:]:
        np.testing.assert_allclose(p, prices[0])                    # everyone computed the same prices
    assert np.max(prices[0]) > 0


def test_closed_loop_respects_the_budget_that_other_schemes_would_ignore(budget_case) -> None:
    scenario = dataclasses.replace(budget_case[0], steps=30)
    design, plant = scenario.design(), scenario.plant()
    reference = simulate(design, plant, scenario.initial_state, SimulationSettings("centralized", scenario.steps))
    priced = simulate(design, plant, scenario.initial_state,
                      SimulationSettings("dual_decomposition", scenario.steps, StoppingRule(1500, 1e-7)))
    assert np.max(priced.violation) < 1e-3
    assert abs(priced.closed_loop_cost - reference.closed_loop_cost) < 1e-3 * reference.closed_loop_cost
    for algorithm in ("decentralized", "noncooperative", "admm"):   # they ignore the budget (2.8 N over it, measured)
        with pytest.raises(ValueError, match=f"'{algorithm}' is not allowed here: .* which {algorithm} ignores"):
            simulate(design, plant, scenario.initial_state, SimulationSettings(algorithm, scenario.steps))
        with pytest.raises(ScenarioError, match=f"controller.algorithm: {algorithm} is not allowed here: the model "
                                                "has a constraint shared by all agents' inputs"):
            budget_case[0].with_overrides(algorithm=algorithm)


def test_dual_decomposition_refuses_coupled_dynamics_and_missing_budget() -> None:
    chain = load_scenario("mass_spring")
    with pytest.raises(ScenarioError, match="it prices a constraint shared by all agents' inputs and the model has "
                                            "none"):   # at load, in one line (a ValueError traceback at build before)
        chain.with_overrides(algorithm="dual_decomposition")
    with pytest.raises(ValueError, match="shared by all agents' inputs and the model has none"):
        build_agents(chain.design(), "dual_decomposition", StoppingRule())   # a design built in code: refused too
    coupled = dataclasses.replace(chain, model=dataclasses.replace(chain.model, net_force_limit=1.0))
    with pytest.raises(ValueError, match="needs dynamically decoupled agents and agent 0 is coupled to"):
        build_agents(coupled.design(), "dual_decomposition", StoppingRule())


def test_budget_must_be_positive() -> None:
    import yaml

    from conftest import PACKAGE_DIR

    data = yaml.safe_load((PACKAGE_DIR / "config" / "mass_budget.yaml").read_text())
    data["model"]["masses"]["net_force_limit"] = -1.0
    with pytest.raises(ScenarioError, match=r"model\.masses\.net_force_limit: -1\.0 is not allowed: must be > 0"):
        parse_scenario(data)
