"""Formation scenario: collision-free iterates, ADMM against the centralized optimum, consensus on the centre
(agreement, step-size check against the Laplacian), reconfiguration, unicycle robots through the look-ahead
point, scenario validation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dmpc_ros.coordination import CentralizedMPC, StoppingRule, build_agents
from dmpc_ros.coordination.consensus import check_step_size, laplacian
from dmpc_ros.models.unicycle import lookahead_point, wheel_command
from dmpc_ros.families.formation import formation_anchor
from dmpc_ros.scenarios import ScenarioError, load_scenario
from dmpc_ros.sim import SimulationSettings, simulate
from dmpc_ros.sim.closed_loop import SimulatedTeam
from scenario_edit import scenario_with as edited_scenario


def scenario_with(**changes):
    return edited_scenario("formation", **changes)


def pairwise_min_distance(positions: np.ndarray) -> float:
    """Smallest distance between any two robots in (… × M × 2) positions."""
    M = positions.shape[-2]
    return min(float(np.min(np.linalg.norm(positions[..., a, :] - positions[..., b, :], axis=-1)))
               for a in range(M) for b in range(a + 1, M))


@pytest.mark.parametrize("algorithm", ["jacobi", "gauss_seidel", "admm"])
def test_every_iterate_of_every_step_is_collision_free(algorithm: str) -> None:
    """Through the hexagon → line reconfiguration (robots cross), the plans every agent announces — every
    negotiation iterate of every step, every predicted position — keep all pairs ≥ min_distance apart (the
    warm start each step begins from is the data the half-planes are built from, not an iterate). Every plan, the
    warm starts included, keeps each robot's inputs in its input set: a warm start is what an agent applies when
    its QP fails (ADMM's used to carry the LQR tail unclipped, 7 m/s² over the 0.8 m/s² limit at the switch)."""
    scenario = scenario_with(**{"controller.algorithm": algorithm, "simulation.steps": 85})
    design, plant = scenario.design(), scenario.plant()
    agents = build_agents(design, algorithm, scenario.controller.stopping,
                          scheme_settings=scenario.controller.scheme_settings)
    problem = design.condensed()
    x, d = scenario.initial_state.copy(), scenario.model.min_distance
    team = SimulatedTeam(agents, problem)
    worst, violation, input_violation = np.inf, 0.0, 0.0
    for k in range(scenario.steps):
        def observe(p: int, U: np.ndarray, k=k) -> None:
            nonlocal worst, input_violation
            inputs = U.reshape(problem.horizon, -1)
            input_violation = max([input_violation] + [sub.input_constraint.violation(inputs[t, plant.input_slice(j)])
                                                        for j, sub in enumerate(plant.subsystems)
                                                        for t in range(problem.horizon)])
            first = scenario.family_settings.consensus.rounds + 1 if k == 0 else 0
            if p <= first:
                return   # consensus rounds and the warm start (the data the half-planes come from)
            predicted = problem.predict(x, U).reshape(problem.horizon + 1, -1, 4)[:, :, :2]
            worst = min(worst, pairwise_min_distance(predicted[1:]))
        U, _, _ = team.step(k, x, observe)
        violation = max(violation, plant.constraint_violation(x, U[:plant.n_u]))
        x = plant.step(x, U[:plant.n_u])
    assert worst >= d - 1e-6, worst
    assert violation < 1e-6
    assert input_violation < 1e-9, input_violation


@pytest.fixture(scope="module")
def closed_loops() -> dict:
    scenario = load_scenario("formation")
    plant, runs = scenario.plant(), {}
    for algorithm in ("centralized", "jacobi", "admm"):
        s = scenario.with_overrides(algorithm=algorithm)
        runs[algorithm] = simulate(s.design(), plant, s.initial_state,
                                   SimulationSettings(algorithm, s.steps, s.controller.stopping,
                                                      scheme_settings=s.controller.scheme_settings))
    return runs


def test_formation_follows_the_path_and_reconfigures(closed_loops) -> None:
    scenario = load_scenario("formation")
    for algorithm, result in closed_loops.items():
        metrics = scenario.metrics(result.x, result.u)
        assert metrics["min_distance"] >= scenario.model.min_distance - 1e-6, algorithm
        assert metrics["final_formation_error"] < 1e-3, algorithm
        assert metrics["time_to_reconfigure"] is not None and metrics["time_to_reconfigure"] < 6.0, algorithm
        assert result.violation.max() < 1e-6
        centre = result.x[-1].reshape(-1, 4)[:, :2].mean(axis=0)
        expected = formation_anchor(scenario) + np.array([4.0, 3.0]) + np.mean(scenario.model.offsets_after, axis=0)
        np.testing.assert_allclose(centre, expected, atol=0.05)
    reference = closed_loops["centralized"].closed_loop_cost
    for algorithm in ("jacobi", "admm"):   # the goal: within 1 % of centralized at ≤ 20 iterations
        assert abs(closed_loops[algorithm].closed_loop_cost - reference) <= 0.01 * reference, algorithm


def test_admm_reaches_the_centralized_optimum_on_the_formation() -> None:
    """At the first MPC step (the same half-planes for both: from the constant-velocity warm start), ADMM with
    formation edges as owned pair terms reaches the centralized optimum (relative input error < 1e-3) and its
    primal and dual residuals fall to the tolerance; the stopping rule ends it before the cap."""
    scenario = scenario_with(**{"controller.algorithm": "admm", "model.centre": "known"})
    design = scenario.design()
    problem = design.condensed()
    x = scenario.initial_state
    previous = problem.predict(x, np.zeros(problem.H.shape[0]))
    extra = design.collision.state_rows(design.collision.positions(design.system, previous),
                                        design.system.state_offsets, design.system.n_x)
    _, optimum, ok = CentralizedMPC(design.system, problem.cost, design.horizon).solve(x, 0, extra)
    assert ok
    agents = build_agents(design, "admm", StoppingRule(3000, 1e-8),
                          scheme_settings=scenario.controller.scheme_settings)
    errors, primal, dual = [], [], []

    def observe(p: int, U: np.ndarray) -> None:
        errors.append(np.linalg.norm(U - optimum.ravel()) / np.linalg.norm(optimum))
        primal.append(max(a.statistics.primal_residual for a in agents))
        dual.append(max(a.statistics.dual_residual for a in agents))

    _, iterations, _ = SimulatedTeam(agents, problem).step(0, x, observe)
    assert errors[-1] < 1e-3, errors[-1]
    assert iterations < 3000                      # stopped by the residual rule, not the cap
    assert primal[-1] < 1e-6 * max(primal) and dual[-1] < 1e-6 * max(dual[1:])


def test_consensus_agrees_on_the_average_centre() -> None:
    scenario = load_scenario("formation")
    design = scenario.design()
    agents = build_agents(design, "jacobi", scenario.controller.stopping)
    SimulatedTeam(agents, design.condensed()).step(0, scenario.initial_state)
    for agent in agents:
        np.testing.assert_allclose(agent.estimate, formation_anchor(scenario), atol=1e-9)
        assert agent.disagreement <= scenario.family_settings.consensus.tolerance


@pytest.mark.parametrize("edges", [((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 5)), ((0, 1), (1, 2), (2, 3))])
def test_consensus_converges_inside_and_diverges_outside_the_laplacian_range(edges) -> None:
    """ξ ← (I − αL) ξ converges to the average for 0 < α < 2/λ_max and blows up beyond; the check refuses
    the latter with the bound."""
    M = 1 + max(max(e) for e in edges)
    L = laplacian(M, edges)
    bound = 2.0 / np.linalg.eigvalsh(L)[-1]
    xi0 = np.random.default_rng(0).normal(size=M)
    for alpha, converges in ((0.9 * bound, True), (1.1 * bound, False)):
        xi = xi0.copy()
        for _ in range(400):
            xi = xi - alpha * L @ xi
        assert np.allclose(xi, xi0.mean(), atol=1e-6) == converges
        if converges:
            assert check_step_size(M, edges, alpha) < 1.0
        else:
            with pytest.raises(ValueError, match=r"α = .* does not converge on this graph: it must be in \(0, "):
                check_step_size(M, edges, alpha)
    with pytest.raises(ValueError, match="connected graph"):
        check_step_size(M + 1, edges, 0.1)


def test_bad_consensus_step_is_refused_at_configuration() -> None:
    with pytest.raises(ScenarioError, match=r"controller\.consensus\.step_size: consensus step size α = 0\.5 does "
                                            r"not converge .*\(0, 0\.3333\)"):
        scenario_with(**{"controller.consensus.step_size": 0.5})


def test_disconnected_graph_is_blamed_on_the_graph_not_the_step_size() -> None:
    with pytest.raises(ScenarioError, match=r"model\.robots\.graph: splits the robots into 2 groups that never hear "
                                            r"of each other \(\[0, 1, 2\]; \[3, 4, 5\]\)"):
        scenario_with(**{"model.robots.graph": [[0, 1], [1, 2], [3, 4], [4, 5]]})


def test_unicycle_lookahead_point_moves_like_the_double_integrator() -> None:
    """A unicycle whose (v, ω) are recomputed from its heading at 200 Hz tracks the agent's double-integrator
    prediction of the look-ahead point (independent ODE integration)."""
    T, distance = 0.2, 0.15
    rng = np.random.default_rng(1)
    pose = np.array([0.3, -0.2, 0.7])
    p = lookahead_point(pose, distance)
    velocity = np.zeros(2)
    for _ in range(25):
        u = rng.uniform(-0.8, 0.8, 2)
        def dynamics(t, z):
            w = velocity + u * t
            v, omega = wheel_command(z, w, distance)
            return [v * np.cos(z[2]), v * np.sin(z[2]), omega]
        pose = solve_ivp(dynamics, (0, T), pose, rtol=1e-10, atol=1e-12, max_step=0.005).y[:, -1]
        p = p + velocity * T + 0.5 * u * T ** 2
        velocity = velocity + u * T
        np.testing.assert_allclose(lookahead_point(pose, distance), p, atol=1e-6)
    with pytest.raises(ValueError, match="look-ahead distance must be > 0"):
        wheel_command(pose, velocity, 0.0)


@pytest.mark.parametrize("changes,expected", [
    ({"model.robots.graph": [[0, 0]]},
     r"model\.robots\.graph\[0\]: \[0, 0\] is not allowed: must be \[i, j\] with two different robots"),
    ({"model.robots.min_distance": 2.0},
     r"model\.robots\.shape: robots 0 and 1 are 1\.5 m apart in the formation, closer than min_distance 2\.0"),
    ({"model.path": [[0, 1, 0]]}, r"model\.path\[0\]: .* the path starts at \[0, 0, 0\]"),
    ({"model.centre": "guess"}, r"model\.centre: 'guess' is not allowed: must be one of consensus, known"),
    ({"simulation.initial_state": [[0, 0, 0, 0]]},
     r"simulation\.initial_state: .* expected 6 \[px, py, vx, vy\] lists"),
    ({"simulation.initial_state": [[1, 1, 0, 0]] * 6},   # every robot on the same point (was "max violation 0")
     r"simulation\.initial_state: robots 0 and 1 start 0 m apart, closer than model\.robots\.min_distance"),
])
def test_bad_formation_files_name_the_field(changes, expected) -> None:
    with pytest.raises(ScenarioError, match=expected):
        scenario_with(**changes)


def test_known_centre_skips_consensus() -> None:
    scenario = scenario_with(**{"model.centre": "known"})
    assert scenario.family_settings.consensus is None and scenario.design().centre_consensus is None
    agents = build_agents(dataclasses.replace(scenario.design()), "jacobi", scenario.controller.stopping)
    assert type(agents[0]).__name__ == "BlockUpdateAgent"


def test_a_collision_counts_as_a_constraint_violation() -> None:
    """The minimum distance is not one of the plant's sets: the family reports its shortfall, and the summary's
    max_constraint_violation includes it."""
    scenario = scenario_with()
    x = np.tile(scenario.initial_state, (3, 1))
    x[1, 4:6] = x[1, 0:2] + [0.1, 0.0]   # robot 1 passes 0.1 m from robot 0 at step 1
    metrics = scenario.metrics(x, np.zeros((2, scenario.plant().n_u)))
    assert metrics["constraint_violation"] == pytest.approx(scenario.model.min_distance - 0.1)
    assert scenario_with().metrics(np.tile(scenario.initial_state, (3, 1)), None)["constraint_violation"] == 0.0
