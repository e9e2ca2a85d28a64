"""The dissimilar-horizon scheme (schemes/horizons.py): settings at the boundary, Theorems 1 and 2 of Chanfreut,
Maestre, Zhu & Heemels on random chains and horizons, and the centralized MPC as the independent reference."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_cooperative import chains, check_guarantees

from dmpc_ros.coordination import ControllerDesign, StoppingRule
from dmpc_ros.coordination.horizons import HorizonSettings
from dmpc_ros.coordination.scheme import scheme_of
from dmpc_ros.mpc.control_horizon import LocalProblem, combine, terminal_tail
from dmpc_ros.mpc.reference import ReferenceTrajectory
from dmpc_ros.scenarios import ScenarioError, load_scenario
from dmpc_ros.schemes.horizons import check_settings, parse_settings
from dmpc_ros.sim import InMemoryNetwork, SimulationSettings, simulate
from dmpc_ros.sim.closed_loop import negotiate

FEASIBILITY = 1e-7
COST_TOLERANCE = 1e-8   # relative: the QPs are solved to DAQP's primal tolerance (as test_cooperative.py)


def design_for(chain, horizon: int = 8) -> ControllerDesign:
    """The chain with the LQR terminal ingredients: DARE cost and the maximal admissible set (the theorems' setting)."""
    M = chain.num_masses
    return ControllerDesign(chain.discrete(0.1, coupling_tolerance=1e-6), np.diag(np.tile([4.0, 0.5], M)),
                            0.2 * np.eye(M), horizon, ReferenceTrajectory.constant(np.zeros(2 * M), np.zeros(M)),
                            use_terminal_set=True)


def horizon_settings(draw, M: int, N: int) -> HorizonSettings:
    return HorizonSettings(tuple(draw(st.lists(st.integers(1, N), min_size=M, max_size=M))),
                           draw(st.sampled_from(("weights", "dominant"))), dynamic=draw(st.booleans()),
                           reduction_tolerance=draw(st.sampled_from((0.0, 0.05, 1.0))))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chains(), data=st.data())
def test_every_iterate_feasible_and_cost_non_increasing(case, data) -> None:
    """Theorem 1 (within a step) and Theorem 2 (over iterations): from the first feasible iterate (the warm start,
    or its projection at iteration 1) every iterate keeps every row and the plant-wide cost never rises."""
    chain, x0 = case
    design = design_for(chain)
    check_guarantees(design, x0, "horizons", horizon_settings(data.draw, chain.num_masses, design.horizon))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chains(), data=st.data())
def test_recursive_feasibility_and_cost_decrease_over_time(case, data) -> None:
    """Theorem 1 over time and Theorem 2's (12) on the nominal closed loop: once step 0 is feasible no later warm
    start needs a repair, no constraint is violated, V(t+1) ≤ V(t) − ℓ(x(t), u(t)); and every applied plan costs
    at least the centralized optimum of the same state (the independent reference: a feasible plan of the same
    problem cannot beat it)."""
    chain, x0 = case
    design = design_for(chain)
    chosen = horizon_settings(data.draw, chain.num_masses, design.horizon)
    result = simulate(design, design.system, x0, SimulationSettings(
        "horizons", 6, StoppingRule(8, 0.0), compare_centralized=True, scheme_settings=chosen))
    if np.any(result.infeasible[0]) or np.any(result.reference_failed):
        event("x0 outside the feasible set")
        return
    event("closed loop checked")
    assert np.all(result.counter("repairs")[1:] == 0)
    assert np.max(result.violation) <= 1e-7
    V, stage = result.plan_cost, result.stage_cost
    assert np.all(V[1:] <= V[:-1] - stage[:-1] + COST_TOLERANCE * (1 + V[:-1])), (V, stage)
    assert np.all(V >= result.centralized_cost * (1 - 1e-7) - 1e-9), (V, result.centralized_cost)


def test_full_horizons_reach_the_centralized_closed_loop() -> None:
    """N_c,i = N for every agent and enough iterations: the closed loop of mass_spring (terminal set on) is the
    centralized one to 0.01 %; with short horizons it costs more, dissimilar ones in between here."""
    scenario = load_scenario("mass_spring")
    design = dataclasses.replace(scenario.design(), use_terminal_set=True)
    plant, x0, steps = scenario.plant(), scenario.initial_state, 25
    reference = simulate(design, plant, x0, SimulationSettings("centralized", steps)).closed_loop_cost

    def cost(horizons, supervisor: str = "weights") -> float:
        chosen = HorizonSettings(horizons, supervisor)
        result = simulate(design, plant, x0, SimulationSettings("horizons", steps, StoppingRule(60, 1e-9),
                                                                scheme_settings=chosen))
        assert np.max(result.violation) < 1e-9
        return result.closed_loop_cost

    full = cost(None)
    assert abs(full - reference) <= 1e-4 * reference
    assert cost(None, "dominant") == pytest.approx(reference, rel=1e-4)
    short, mixed = cost(3), cost((3, 6, 10, 20))
    assert reference < mixed < short


def test_local_problem_keeps_the_previous_iterate_and_counts_its_variables() -> None:
    """(8): (v, α) = (u_i^p head, 1) reproduces U^p, N_c·n_u + 1 variables; (9) never returns a worse iterate."""
    scenario = load_scenario("mass_spring")
    design = dataclasses.replace(scenario.design(), use_terminal_set=True)
    problem, x0 = design.condensed(), scenario.initial_state
    rng = np.random.default_rng(3)
    U = np.clip(rng.normal(scale=0.3, size=problem.H.shape[0]), -1, 1)
    tail = terminal_tail(problem, design.terminal_gain(), x0, U, 1, 0)
    local = LocalProblem(problem, 1, 5, tail, x0, U, 0)
    assert local.num_variables == 5 + 1
    assert np.allclose(local.own_inputs(local.keep), U[problem.input_indices(1)].reshape(-1, 1))
    proposals = {j: rng.uniform(-1, 1, size=(problem.horizon, 1)) for j in range(4)}
    for rule in ("weights", "dominant"):
        new, weights = combine(problem, x0, U, 0, proposals, rule)
        assert problem.cost_value(x0, new) <= problem.cost_value(x0, U) + 1e-12
        assert all(w >= 0 for w in weights.values()) and sum(weights.values()) <= 1 + 1e-12


def test_dynamic_horizons_shrink_and_are_published() -> None:
    """Section III-C with a generous ε: the horizons only shrink, never below `minimum`, and the counter carries
    them per step and agent; every step stays feasible."""
    scenario = load_scenario("mass_spring")
    design = dataclasses.replace(scenario.design(), use_terminal_set=True)
    chosen = HorizonSettings(12, dynamic=True, reduction_tolerance=0.05, minimum=2)
    result = simulate(design, scenario.plant(), scenario.initial_state,
                      SimulationSettings("horizons", 20, StoppingRule(10, 1e-9), scheme_settings=chosen))
    trace = result.counter("control_horizon")          # steps × agents
    assert trace.shape == (20, 4)
    assert np.all(np.diff(trace, axis=0) <= 0) and np.all(trace >= 2) and np.all(trace <= 12)
    assert trace[-1].sum() < trace[0].sum() and result.counter("horizon_reductions").sum() > 0
    assert np.max(result.violation) < 1e-9


@pytest.mark.parametrize("section,message", [
    ({"control_horizon": 0}, "controller.horizons.control_horizon: 0"),
    ({"control_horizon": [4, 4]}, "has 2 entries, expected 4"),
    ({"control_horizon": [4, 4, 4, 21]}, "control_horizon[3]: 21 is not allowed"),
    ({"supervisor": "vote"}, "controller.horizons.supervisor: 'vote' is not allowed"),
    ({"dynamic": "yes"}, "controller.horizons.dynamic"),
    ({"reduction_tolerance": -1}, "controller.horizons.reduction_tolerance"),
    ({"horizon": 4}, "controller.horizons"),
])
def test_settings_are_refused_in_one_line(section: dict, message: str) -> None:
    """Each bad field of controller.horizons is refused in one line naming it, at parse or against the problem."""
    problem = load_scenario("mass_spring").design().problem()
    try:
        reason = check_settings(section, problem)
    except ScenarioError as error:
        reason = str(error)
    assert reason is not None and message in reason and "\n" not in reason


def test_registered_with_its_section_and_counters() -> None:
    scheme = scheme_of("horizons")
    assert scheme.settings_section == "horizons" and "control_horizon" in scheme.counters
    assert parse_settings({"control_horizon": [2, 3]}).control_horizon == (2, 3)
    problem = load_scenario("mass_spring").design().problem()
    assert scheme.refusal(problem) is None and scheme.refusal(dataclasses.replace(problem, nonlinear=True)) is None
    assert "collision" in scheme.refusal(dataclasses.replace(problem, collision=True))
    assert "tube" in scheme.refusal(dataclasses.replace(problem, tube_mode=True))


def test_lost_plans_are_counted_and_the_inputs_stay_in_their_sets() -> None:
    """With 30 % of the plans lost the agents' iterates may differ (the supervisor needs every proposal): counted as
    view disagreements and missing messages; every applied input stays finite and inside U_i."""
    scenario = load_scenario("mass_spring_horizons")
    network = InMemoryNetwork(drop_probability=0.3, seed=5)
    result = simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                      SimulationSettings("horizons", 15, StoppingRule(10, 1e-8), network=network,
                                         scheme_settings=scenario.controller.scheme_settings))
    assert network.dropped > 0 and result.messages_missing > 0
    assert result.counter("view_disagreements").sum() > 0
    assert np.all(np.isfinite(result.u)) and np.max(np.abs(result.u)) <= 1.0 + 1e-9


def test_one_iteration_applies_the_shifted_candidate() -> None:
    """max_iterations 1: no problem (8) is solved, the warm start (10) is applied, and it stays feasible."""
    scenario = load_scenario("mass_spring_horizons")
    result = simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                      SimulationSettings("horizons", 10, StoppingRule(1, 0.0),
                                         scheme_settings=scenario.controller.scheme_settings))
    assert np.all(result.iterations == 1) and not any(t for step in result.agent_solve_times[1:] for t in step)
    assert np.max(result.violation) < 1e-9


@pytest.mark.parametrize("supervisor", ["weights", "dominant"])
def test_nonlinear_iterates_feasible_and_cost_non_increasing(supervisor: str) -> None:
    """The nonlinear agents (IPOPT on (8) and (9), three_mass_horizons, N_c = 4, 12, 8): from a feasible start every
    iterate keeps every row of their model and its plant-wide cost never rises (Theorems 1 and 2 within a step)."""
    scenario = load_scenario("three_mass_horizons")
    design = scenario.design()
    chosen = HorizonSettings((4, 12, 8), supervisor)
    agents = design.agents("horizons", StoppingRule(6, 0.0), scheme_settings=chosen)
    model = agents[0].model
    for x0 in (scenario.initial_state, np.array([-1.2, 0.5, 1.0, -0.5, 0.3, 1.0])):
        costs, slacks = [], []

        def observe(p: int, U: np.ndarray, x0=x0) -> None:
            costs.append(model.cost(x0, U, 0))
            slacks.append(model.slack(x0, U))

        negotiate(agents, design, 0, x0, observe)
        assert min(slacks) >= -FEASIBILITY, slacks
        assert all(b <= a + COST_TOLERANCE * (1 + a) for a, b in zip(costs, costs[1:])), costs
        assert costs[-1] < costs[0]
