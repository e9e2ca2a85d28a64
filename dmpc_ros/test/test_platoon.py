"""Platoon scenario: model against an ODE, jerk bound, reference consistency, closed-loop safety and string
stability, cost ordering, the hard minimum gap, validation of the scenario file."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dmpc_ros.coordination import CentralizedMPC, StoppingRule, build_agents
from dmpc_ros.models.platoon import SpeedProfile, platoon_signals
from dmpc_ros.scenarios import ScenarioError, load_scenario
from dmpc_ros.sim import SimulationSettings, simulate
from dmpc_ros.sim.closed_loop import negotiate
from scenario_edit import scenario_with as edited_scenario


def scenario_with(**changes):
    return edited_scenario("platoon", **changes)


def test_discrete_model_matches_ode_integration() -> None:
    """Exact ZOH of the gap/speed/acceleration dynamics against an independent ODE solution."""
    scenario = load_scenario("platoon")
    platoon, T = scenario.model, scenario.sample_time
    plant = scenario.plant()
    rng = np.random.default_rng(3)
    x = scenario.initial_state.copy()
    u = rng.uniform(-3, 2, (15, platoon.num_agents))
    Ac, Bc = platoon.continuous()
    for k in range(15):
        exact = solve_ivp(lambda t, z: Ac @ z + Bc @ u[k], (0, T), x, rtol=1e-11, atol=1e-11).y[:, -1]
        x = plant.step(x, u[k])
        np.testing.assert_allclose(x, exact, atol=1e-7)
    # gap dynamics by hand: e_1 changes by the integral of v_0 − v_1 (independent of the matrix assembly)
    x0 = scenario.initial_state.copy()
    x0[1] = 1.0    # leader accelerating at 1 m/s², follower cruising
    x1 = plant.step(x0, np.array([1.0] + [0.0] * (platoon.num_agents - 1)))
    assert x1[2] - x0[2] == pytest.approx(0.5 * T ** 2, rel=1e-9)


def test_jerk_constraint_bounds_the_continuous_jerk() -> None:
    """|u − a(k)| ≤ τ j_max at the sample bounds ȧ(t) = (u − a(t))/τ over the whole interval."""
    platoon = load_scenario("platoon").model
    tau, limit = platoon.time_constant[1], platoon.jerk_limit[1]
    for a0, u in [(0.0, tau * limit), (1.0, 1.0 - tau * limit)]:
        t = np.linspace(0, 0.2, 200)
        a = u + (a0 - u) * np.exp(-t / tau)
        assert np.max(np.abs((u - a) / tau)) <= limit + 1e-12


def test_reference_is_the_ideal_platoon() -> None:
    """Along the reference every spacing error is zero and the followers' speeds are lagged copies of the
    leader's that never overshoot it (the reference itself is string stable)."""
    scenario = load_scenario("platoon")
    reference = scenario.design().reference
    gaps, speeds, _ = platoon_signals(scenario.model, reference.states)
    np.testing.assert_allclose(gaps - scenario.model.desired_gap(speeds[:, 1:]), 0.0, atol=1e-12)
    profile = scenario.family_settings.speed_profile
    assert np.all(speeds <= max(profile.speeds) + 1e-9) and np.all(speeds >= min(profile.speeds) - 1e-9)
    # consistency: the reference gaps change as the reference speeds say, e_{k+1} − e_k ≈ T (v_{i−1} − v_i)
    T = scenario.sample_time
    drift = np.diff(gaps, axis=0) - T * (speeds[:-1, :-1] - speeds[:-1, 1:])
    assert np.max(np.abs(drift)) < 0.05


def test_speed_profile_sampling() -> None:
    profile = SpeedProfile((0.0, 2.0, 4.0), (10.0, 14.0, 14.0))
    v, a = profile.sample(0.5, 10)
    np.testing.assert_allclose(v[:5], [10, 11, 12, 13, 14])
    np.testing.assert_allclose(a[:4], 2.0)
    np.testing.assert_allclose(v[5:], 14.0)


@pytest.fixture(scope="module")
def default_runs() -> dict:
    scenario = load_scenario("platoon")
    plant, runs = scenario.plant(), {}
    for algorithm in ("centralized", "gauss_seidel", "jacobi", "noncooperative", "decentralized"):
        s = scenario.with_overrides(algorithm=algorithm)
        runs[algorithm] = simulate(s.design(), plant, s.initial_state,
                                   SimulationSettings(algorithm, s.steps, s.controller.stopping))
    s = scenario.with_overrides(algorithm="admm")   # the problem with the separable terminal cost ADMM solves
    runs["centralized_separable"] = simulate(s.design(), plant, s.initial_state,
                                             SimulationSettings("centralized", s.steps))
    runs["admm"] = simulate(s.design(), plant, s.initial_state,
                            SimulationSettings("admm", s.steps, s.controller.stopping,
                                               scheme_settings=s.controller.scheme_settings))
    return runs


def test_default_platoon_is_safe_and_string_stable(default_runs) -> None:
    scenario = load_scenario("platoon")
    for algorithm in ("centralized", "gauss_seidel", "jacobi"):
        result = default_runs[algorithm]
        metrics = scenario.metrics(result.x, result.u)
        assert result.violation.max() < 1e-6, algorithm
        assert metrics["min_gap"] >= scenario.model.min_gap, algorithm
        assert metrics["max_jerk"] <= max(scenario.model.jerk_limit) + 1e-6, algorithm
        assert 0 < metrics["string_stability_ratio"] <= 1.0, (algorithm, metrics["peak_spacing_error"])
        assert max(metrics["peak_spacing_error"]) < 0.1, algorithm   # [m] during ±2 m/s² manoeuvres


def test_cost_ordering_centralized_cooperative_decentralized(default_runs) -> None:
    cost = {name: result.closed_loop_cost for name, result in default_runs.items()}
    assert cost["centralized"] <= cost["gauss_seidel"] * (1 + 1e-9)
    assert cost["gauss_seidel"] <= cost["jacobi"] < cost["noncooperative"] < cost["decentralized"]
    assert cost["gauss_seidel"] <= 1.02 * cost["centralized"]


def test_admm_within_one_percent_of_centralized_at_the_files_iterations(default_runs) -> None:
    """The issue's goal on the default platoon: ADMM (20 iterations per step, the file's ρ) within 1 % of the
    centralized closed loop of the same problem (measured: +0.002 %, from the reference warm start)."""
    admm, central = default_runs["admm"], default_runs["centralized_separable"]
    assert np.max(admm.iterations) <= load_scenario("platoon").controller.max_iterations
    assert admm.closed_loop_cost <= 1.01 * central.closed_loop_cost
    assert admm.violation.max() < 1e-6


def test_decentralized_agents_assume_their_neighbours_on_the_reference() -> None:
    """Cruising in the ideal platoon, every vehicle on its reference: a decentralized agent that assumes the others
    on theirs predicts its own reference and plans nothing else (no fallback), so the platoon stays exactly there
    (closed-loop cost 0, no messages). An agent that dropped the coupling terms instead would predict its gap
    shrinking at its own speed below the minimum gap: an infeasible QP at every step."""
    scenario = scenario_with(**{"model.speed_profile": [[0.0, 20.0]], "simulation.steps": 15})
    design = scenario.design()
    problem = design.condensed()
    agents = build_agents(design, "decentralized", StoppingRule(1, 1e-9))
    U, _, _ = negotiate(agents, problem, 0, scenario.initial_state)
    x_ref, u_ref = design.reference.window(0, design.horizon)
    np.testing.assert_allclose(U, u_ref.ravel(), atol=1e-9)
    for agent in agents:
        assert agent.statistics.fallbacks == 0
        np.testing.assert_allclose(agent.last_plan.states, x_ref[:, design.system.state_slice(agent.agent_id)],
                                   atol=1e-9)
    result = simulate(design, scenario.plant(), scenario.initial_state,
                      SimulationSettings("decentralized", scenario.steps))
    assert result.closed_loop_cost < 1e-12
    np.testing.assert_allclose(result.x[-1], scenario.initial_state, atol=1e-9)
    assert np.sum(result.messages) == 0


def test_minimum_gap_is_a_hard_constraint() -> None:
    """An emergency stop with short headway: without the gap constraint (d_min = 0) the plan-optimal gaps
    dip below 2 m; with d_min = 2 m every follower keeps ≥ 2 m in the closed loop and in every iterate."""
    changes = {"model.vehicles.time_headway": 0.0, "model.vehicles.standstill_gap": 2.5,
               "model.vehicles.count": 4, "model.vehicles.time_constant": [0.3, 0.5, 0.6, 0.4],
               "model.speed_profile": [[0.0, 20.0], [1.0, 20.0], [5.0, 0.0]],
               "controller.spacing_weight": 1.0, "controller.speed_weight": 5.0,
               "simulation.steps": 40, "simulation.initial_state": "equilibrium"}
    free = scenario_with(**changes, **{"model.vehicles.min_gap": 0.0})
    bound = scenario_with(**changes, **{"model.vehicles.min_gap": 2.0})
    loose = simulate(free.design(), free.plant(), free.initial_state, SimulationSettings("centralized", free.steps))
    assert free.metrics(loose.x, loose.u)["min_gap"] < 2.0 - 0.05   # the constraint matters here
    design, plant = bound.design(), bound.plant()
    problem = design.condensed()
    for algorithm in ("centralized", "gauss_seidel"):
        result = simulate(design, plant, bound.initial_state,
                          SimulationSettings(algorithm, bound.steps, StoppingRule(30, 1e-8)))
        assert bound.metrics(result.x, result.u)["min_gap"] >= 2.0 - 1e-6, algorithm
        assert result.violation.max() < 1e-6
        # every planned (predicted) gap of every step respects it as well
        gaps = np.stack([platoon_signals(bound.model, result.plan_states[k])[0] for k in range(bound.steps)])
        assert gaps.min() >= 2.0 - 1e-6, algorithm
    assert problem.terminal_set is None


def test_bidirectional_topology_admm_reaches_the_centralized_optimum() -> None:
    """The bidirectional cost couples neighbouring followers' spacing errors (objective coupling). ADMM, with
    each pair term owned by the front vehicle and a copy of the follower's states, reaches the centralized
    optimum (relative input error < 1e-3) during the braking manoeuvre, with primal and dual residuals falling
    to the tolerance; without the pair terms ADMM refuses the coupled cost."""
    scenario = scenario_with(**{"model.vehicles.topology": "bidirectional", "controller.coupling_weight": 2.0,
                                "controller.algorithm": "admm"})
    design = scenario.design()
    assert np.any(design.Q[2:5, 5:8]) and len(design.coupling_terms) == 4   # follower 1 ↔ 2 coupled
    step = 22                                                                # mid-braking
    warm = simulate(design, scenario.plant(), scenario.initial_state, SimulationSettings("centralized", step))
    x = warm.x[step]
    problem = design.condensed()
    _, optimum, ok = CentralizedMPC(design.system, problem.cost, design.horizon).solve(x, step)
    assert ok
    agents = build_agents(design, "admm", StoppingRule(2000, 1e-7),
                          scheme_settings=scenario.controller.scheme_settings)
    assert agents[1].required_plans == {0, 2}    # predecessor (dynamics) and follower (cost term)
    errors, residuals = [], []

    def observe(p: int, U: np.ndarray) -> None:
        errors.append(np.linalg.norm(U - optimum.ravel()) / np.linalg.norm(optimum))
        residuals.append(max(a.statistics.primal_residual for a in agents))

    _, iterations, _ = negotiate(agents, problem, step, x, observe)
    assert errors[-1] < 1e-3 and iterations < 2000
    assert residuals[-1] < 1e-4 * residuals[1]
    with pytest.raises(ValueError, match="admm.*pair term.*1–2"):
        build_agents(dataclasses.replace(design, coupling_terms=()), "admm", StoppingRule())


@pytest.mark.parametrize("changes,expected", [
    ({"model.vehicles.count": 101}, r"model\.vehicles\.count: 101 is not allowed: must be ≤ 100"),
    ({"model.vehicles.topology": "ring"},
     r"model\.vehicles\.topology: 'ring' is not allowed: must be one of predecessor_follower, bidirectional"),
    ({"model.speed_profile": [[0, 20], [1, 10]]},
     r"model\.speed_profile\[1\]: slope -10 m/s² is not allowed: .*within \[-5\.0, 2\.5\]"),
    ({"model.speed_profile": [[0, 20], [0, 10]]},
     r"model\.speed_profile\[1\]\[0\]: 0(\.0)? is not allowed: times must increase"),
    ({"simulation.initial_state": [[20, 0], [1.0, 20, 0], [17, 20, 0], [17, 20, 0], [17, 20, 0], [17, 20, 0]]},
     r"simulation\.initial_state\[1\]\[0\]: gap 1\.0 is not allowed: below the minimum gap 2\.0"),
    ({"model.vehicles.standstill_gap": 1.0}, r"standstill_gap: 1\.0 is not allowed: must be ≥ min_gap"),
    ({"controller.coupling_weight": 1.0},
     r"controller\.coupling_weight: 1\.0 is not allowed with topology predecessor_follower"),
    ({"controller.terminal_set": True}, r"controller\.terminal_set: true is not allowed for model\.type platoon"),
    ({"simulation.disturbance_bound": {"p": 0.1}},
     r"simulation\.disturbance_bound\.p: unknown state; allowed: a, e, v"),
    ({"controller.state_weight": [1.0]}, r"controller\.state_weight: unknown field"),
])
def test_bad_platoon_files_name_the_field(changes, expected) -> None:
    with pytest.raises(ScenarioError, match=expected):
        scenario_with(**changes)


def test_disturbance_bound_by_state_name() -> None:
    scenario = scenario_with(**{"simulation.disturbance_bound": {"v": 0.02, "a": 0.1}})
    bound = scenario.disturbance_bound
    assert bound.size == scenario.plant().n_x
    np.testing.assert_allclose(bound[:2], [0.02, 0.1])          # leader (v, a)
    np.testing.assert_allclose(bound[2:5], [0.0, 0.02, 0.1])    # follower (e, v, a)


@pytest.mark.slow
def test_hundred_vehicles_build_and_run() -> None:
    scenario = scenario_with(**{"model.vehicles.count": 100, "model.vehicles.time_constant": 0.4,
                                "controller.horizon": 10, "simulation.steps": 3})
    result = simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                      SimulationSettings("gauss_seidel", 3, StoppingRule(2, 1e-6)))
    assert result.x.shape == (4, 2 + 3 * 99) and np.all(np.isfinite(result.x))
    assert result.violation.max() < 1e-6
