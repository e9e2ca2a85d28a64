"""Nonlinear DMPC: the prediction model against an ODE solver, the local solvers against each other and against the
linear QP, the sensitivity-based scheme against the centralized NLP, the closed loop, failures and validation."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import casadi as ca
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from dmpc_ros import scenario as make_scenario
from dmpc_ros import simulate
from dmpc_ros.coordination import StoppingRule
from dmpc_ros.coordination.centralized import CentralizedMPC
from dmpc_ros.models.linear import CoupledLinearSystem
from dmpc_ros.models.nonlinear import NonlinearNetwork
from dmpc_ros.models.nonlinear_examples import spring_chain, water_tanks
from dmpc_ros.mpc.condensed import QuadraticCost
from dmpc_ros.mpc.nonlinear_ocp import OptimalControlProblem, SolverSettings
from dmpc_ros.mpc.reference import ReferenceTrajectory
from dmpc_ros.scenarios import ScenarioError, load_scenario
from dmpc_ros.sim.closed_loop import SimulatedTeam

from conftest import REPO_DIR

DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


def chain_problem(network: NonlinearNetwork, members, N: int, method: str = "sqp", **options) -> OptimalControlProblem:
    return OptimalControlProblem(network, members, N, {m: 5.0 * np.eye(2) for m in members},
                                 SolverSettings(method, tolerance=1e-10, **options))


def parameters(ocp: OptimalControlProblem, N: int, neighbours: dict | None = None) -> np.ndarray:
    net = ocp.network
    ext = neighbours or {}
    return ocp.parameters({j: ext[j][0] for j in ocp.layout.external}, {j: ext[j][1] for j in ocp.layout.external},
                          {m: np.zeros((N + 1, net.agents[m].n_x)) for m in ocp.members},
                          {m: np.zeros((N, net.agents[m].n_u)) for m in ocp.members})


@settings(max_examples=15, deadline=None)
@given(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5), st.floats(-1.0, 1.0))
def test_rk4_prediction_model_converges_to_an_adaptive_ode_solver_at_fourth_order(p: float, v: float,
                                                                                    force: float) -> None:
    """One agent without neighbours: its RK4 map equals solve_ivp of ẋ = f(x, u) to 1e-6 with 16 substeps, and
    halving the substep divides the error by about 16 (fourth order)."""
    base = spring_chain(1, sample_time=0.2, cubic_stiffness=3.0)
    rhs = base.continuous
    exact = solve_ivp(lambda t, x: np.asarray(rhs(x, [force]), float).ravel(), (0, 0.2), [p, v], rtol=1e-12,
                      atol=1e-12).y[:, -1]
    errors = []
    for substeps in (8, 16):
        phi = dataclasses.replace(base, substeps=substeps).discrete_map(0)
        errors.append(np.max(np.abs(np.asarray(phi([p, v], [force], ca.DM(0, 1)), float).ravel() - exact)))
    assert errors[1] < 1e-6
    assert errors[1] < 1e-10 or errors[0] / errors[1] > 10


def test_interpolated_neighbours_make_the_coupling_error_third_order() -> None:
    """The neighbours' states interpolated over the interval: the plant-wide prediction differs from the coupled ODE
    by O(Δt³) per step (halving the sample time cuts the one-step error about eight times)."""
    errors = []
    for dt in (0.2, 0.1):
        net = dataclasses.replace(spring_chain(3, sample_time=dt), substeps=8)
        x, u = np.array([0.5, 0.2, -0.4, 0.1, 0.3, -0.2]), np.array([0.3, -0.2, 0.1])
        from dmpc_ros.coordination.nonlinear import NonlinearDesign
        design = NonlinearDesign(net, None, 1, ReferenceTrajectory.constant(np.zeros(6), np.zeros(3)),
                                 (np.eye(2),) * 3)
        predicted = design.predict(x, u)[1]
        exact = solve_ivp(lambda t, s: np.asarray(net.continuous(s, u), float).ravel(), (0, dt), x, rtol=1e-12,
                          atol=1e-12).y[:, -1]
        errors.append(np.max(np.abs(predicted - exact)))
    assert errors[1] < errors[0] / 6 and errors[0] < 0.015


def test_sqp_on_a_linear_model_equals_the_qp_solution() -> None:
    """k₃ = 0 makes the chain linear; RK4 of a linear ODE with the neighbours interpolated is the linear implicit
    map x⁺ = A x + B u + E x⁺, so the SQP solution equals the centralized QP MPC's on
    ((I − E)⁻¹A, (I − E)⁻¹B) with the same weights and terminal cost."""
    N, dt = 12, 0.2
    net = dataclasses.replace(spring_chain(2, sample_time=dt, cubic_stiffness=0.0, force_limit=0.4), substeps=2)
    x0 = np.array([0.9, 0.0, -0.6, 0.2])
    A, B, E = np.zeros((4, 4)), np.zeros((4, 2)), np.zeros((4, 4))
    for i, s in enumerate((slice(0, 2), slice(2, 4))):
        x, u, z = ca.SX.sym("x", 2), ca.SX.sym("u", 1), ca.SX.sym("z", 5)
        out = net.discrete_map(i)(x, u, z)
        j = 1 - i
        own, other = slice(2 * i, 2 * i + 2), slice(2 * j, 2 * j + 2)
        A[s, own] = np.asarray(ca.evalf(ca.jacobian(out, x)))
        A[s, other] = np.asarray(ca.evalf(ca.jacobian(out, z[:2])))
        E[s, other] = np.asarray(ca.evalf(ca.jacobian(out, z[3:])))
        B[s, i] = np.asarray(ca.evalf(ca.jacobian(out, u))).ravel()
        B[s, j] = np.asarray(ca.evalf(ca.jacobian(out, z[2]))).ravel()
    A, B = np.linalg.solve(np.eye(4) - E, A), np.linalg.solve(np.eye(4) - E, B)
    system = CoupledLinearSystem.from_full(net.subsystems(), A, B, dt)
    Q, R, P = np.diag([10.0, 1, 10, 1]), np.eye(2), 5.0 * np.eye(4)
    qp = CentralizedMPC(system, QuadraticCost(Q, R, P, ReferenceTrajectory.constant(np.zeros(4), np.zeros(2))), N)
    _, inputs, ok = qp.solve(x0)
    ocp = chain_problem(net, (0, 1), N)
    solution = ocp.solve(np.zeros(ocp.layout.size), x0, parameters(ocp, N))
    assert ok and solution.ok and solution.iterations <= 3
    U = np.hstack([ocp.layout.inputs(solution.w, 0), ocp.layout.inputs(solution.w, 1)])
    np.testing.assert_allclose(U, inputs, atol=1e-6)
    assert np.max(np.abs(U)) == pytest.approx(0.4)   # the force limit is active


def test_sqp_ipopt_and_rti_agree_and_rti_converges_at_a_held_state() -> None:
    """On the hardening chain the SQP (exact and Gauss-Newton Hessians) and IPOPT reach the same optimum and
    multipliers; RTI from a poor start, one step per sample at a held state, converges to it."""
    N = 15
    net = spring_chain(3)
    x0 = np.array([0.8, 0.0, -0.5, 0.3, 0.2, 0.0])
    results = {}
    for key, method, hessian in (("sqp", "sqp", "exact"), ("gn", "sqp", "gauss_newton"), ("ipopt", "ipopt", "exact")):
        ocp = chain_problem(net, (0, 1, 2), N, method, hessian=hessian, max_iterations=100)
        results[key] = ocp.solve(np.zeros(ocp.layout.size), x0, parameters(ocp, N))
        assert results[key].ok, results[key].status
    for key in ("gn", "ipopt"):
        np.testing.assert_allclose(results[key].w, results["sqp"].w, atol=1e-7)
        np.testing.assert_allclose(results[key].dynamics_multipliers, results["sqp"].dynamics_multipliers, atol=1e-5)
    rti = chain_problem(net, (0, 1, 2), N, "rti")
    w, lam, p = np.zeros(rti.layout.size), None, parameters(rti, N)
    for _ in range(12):
        step = rti.solve(w, x0, p, lam)
        w, lam = step.w, step.dynamics_multipliers
        assert step.feedback_time > 0 and rti.last_preparation_time > 0
    np.testing.assert_allclose(w, results["sqp"].w, atol=1e-7)


@pytest.mark.parametrize("name", ["spring_chain", "water_tanks"])
def test_sensitivity_iterations_reach_the_centralized_nlp_optimum(name: str) -> None:
    """At a fixed state, the sensitivity-based negotiation converges to the centralized NLP's inputs (< 1e-4)."""
    scenario = load_scenario(name)
    design = scenario.design()
    x0 = scenario.initial_state
    agents = design.agents("sensitivity", StoppingRule(200, 1e-11))
    U, iterations, _ = SimulatedTeam(agents, design).step(0, x0)
    _, inputs, ok = design.centralized().plan(x0, 0)
    assert ok and iterations < 200
    np.testing.assert_allclose(U.reshape(inputs.shape), inputs, atol=1e-4)
    assert np.max(np.abs(U.reshape(inputs.shape) - inputs)) < 1e-6


@pytest.mark.parametrize("name, changes, rho", [("water_tanks", {}, 1e4),
                                                ("spring_chain", {"masses": 3, "stiffness": 0.25,
                                                                  "cubic_stiffness": 0.5}, 10.0)])
def test_nonlinear_admm_reaches_the_centralized_nlp_optimum(name: str, changes: dict, rho: float) -> None:
    """Edge-based ADMM with local NLPs (copies of the neighbours' trajectories) converges to the centralized NLP's
    inputs at a fixed state (relative input error < 1e-4); both ends of every edge agree on its residual."""
    from dmpc_ros.coordination import AdmmSettings
    from dmpc_ros.scenarios import parse_scenario
    from dmpc_ros.scenarios.yaml_file import read_yaml

    data = read_yaml(Path(load_scenario(name).source))
    data["model"]["parameters"].update(changes)
    if changes:
        data["simulation"]["initial_state"] = [[0.8, 0.0], [-0.5, 0.3], [0.2, 0.0]]
    scenario = parse_scenario(data, source=name)
    design = scenario.design()
    agents = design.agents("admm", StoppingRule(500, 1e-7), scheme_settings=AdmmSettings(penalty=rho))
    U, iterations, _ = SimulatedTeam(agents, design).step(0, scenario.initial_state)
    _, inputs, ok = design.centralized().plan(scenario.initial_state, 0)
    assert ok and iterations < 500
    assert np.max(np.abs(U.reshape(inputs.shape) - inputs)) < 1e-4 * np.max(np.abs(inputs))
    assert max(a.residual for a in agents) < 1e-5


def test_closed_loop_sensitivity_dmpc_is_within_one_percent_of_centralized_nmpc() -> None:
    """spring_chain at its iteration cap: closed-loop cost within 1 % of centralized NMPC, no plant violation."""
    scenario = load_scenario("spring_chain").with_overrides(steps=20)
    distributed, central = simulate(scenario), simulate(scenario, "centralized")
    gap = (distributed.stage_cost.sum() - central.stage_cost.sum()) / central.stage_cost.sum()
    assert abs(gap) < 0.01
    assert np.max(distributed.violation) <= 1e-9 and np.max(central.violation) <= 1e-9
    assert not distributed.fallback_input.any()
    assert np.linalg.norm(distributed.x[-1]) < 0.1 * np.linalg.norm(distributed.x[0])


def test_unicycle_formation_keeps_its_distances_and_its_inputs_are_speed_and_turn_rate() -> None:
    """Four unicycles, 10 steps: inputs (v, ω) within their limits, neighbours never closer than 0.6 m (the pair
    constraint is kept with a 0.01 m back-off for the prediction model), the formation error shrinks."""
    scenario = load_scenario("unicycle_formation").with_overrides(steps=10)
    result = simulate(scenario)
    metrics = scenario.metrics(result.x, result.u)
    assert metrics["min_neighbour_distance"] >= 0.6 and metrics["constraint_violation"] == 0.0
    assert scenario.model.agents[0].input_names == ("v_0", "omega_0")
    assert np.all(result.u[:, 0::2] >= 0.0) and np.all(result.u[:, 0::2] <= 0.8)
    assert np.all(np.abs(result.u[:, 1::2]) <= 1.5) and not result.fallback_input.any()


def test_injected_solver_failure_is_counted_and_the_applied_input_stays_in_its_limits(monkeypatch) -> None:
    """Agent 1's solves of step 2 fail with NaN: it flags them, applies its shifted candidate, counts a fallback."""
    scenario = load_scenario("spring_chain").with_overrides(steps=4)
    from dmpc_ros.coordination import sensitivity

    original = sensitivity.SensitivityAgent.iterate

    def failing(self, inbox):
        if self.agent_id == 1 and self.step == 2:
            solve = self.ocp.solve

            def broken(*args, **kwargs):
                solution = solve(*args, **kwargs)
                return dataclasses.replace(solution, w=np.full_like(solution.w, np.nan), ok=False, status="injected")
            self.ocp.solve = broken
            try:
                return original(self, inbox)
            finally:
                self.ocp.solve = solve
        return original(self, inbox)

    monkeypatch.setattr(sensitivity.SensitivityAgent, "iterate", failing)
    result = simulate(scenario)
    assert result.solver_failures[2, 1] >= 1 and result.fallbacks[2, 1] == 1 and result.fallback_input[2, 1]
    assert not result.fallback_input[[0, 1, 3]].any()
    assert np.all(np.isfinite(result.u)) and np.max(np.abs(result.u)) <= 1.0


def test_a_users_own_nonlinear_system_is_validated_like_a_file() -> None:
    """examples/pendulum_pair_api.py (CasADi dynamics written by a user, not an example family) through
    dmpc_ros.scenario: the controller.nonlinear section meets the file's rules, the inputs agree with centralized
    NMPC."""
    from dmpc_ros import load

    built = load(str(REPO_DIR / "examples" / "pendulum_pair_api.py") + ":scenario").with_overrides(steps=8)
    distributed, central = simulate(built), simulate(built, "centralized")
    np.testing.assert_allclose(distributed.u, central.u, atol=1e-4)
    controller = dict(built.sections["controller"], nonlinear={"method": "newton"})
    with pytest.raises(ScenarioError, match="controller.nonlinear.method: 'newton' is not allowed"):
        make_scenario(built.model, controller=controller, simulation={"initial_state": [[1.0, 0.0], [-0.8, 0.5]]})


def test_scenario_errors_name_the_field_and_what_is_allowed(tmp_path: Path) -> None:
    from dmpc_ros.scenarios import parse_scenario
    from dmpc_ros.scenarios.yaml_file import read_yaml

    data = read_yaml(Path(load_scenario("water_tanks").source))
    cases = [
        (("model", "parameters", "tank"), 3, "model.parameters.tank: unknown field; allowed: area"),
        (("controller", "algorithm"), "jacobi", "controller.algorithm: jacobi is not allowed here: "
                                                "cooperative Jacobi's descent"),
        (("controller", "algorithm"), "gauss_seidel", "each agent would need the whole nonlinear model"),
        (("model", "parameters", "levels"), [0.05, 0.3, 0.35, 0.59], "need inflows"),
        (("controller", "nonlinear"), {"hessian": "bfgs"}, "controller.nonlinear.hessian: 'bfgs' is not allowed"),
        (("model", "example"), "pendulum", "model.example: 'pendulum' is not allowed: must be one of four_tank"),
    ]
    for path, value, message in cases:
        edited = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        target = edited
        for key in path[:-1]:
            target[key] = dict(target.get(key) or {})
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_scenario(edited, source="water_tanks")
    linear = read_yaml(Path(load_scenario("mass_spring").source))
    linear["controller"]["algorithm"] = "sensitivity"
    with pytest.raises(ScenarioError, match="needs a nonlinear model"):
        parse_scenario(linear)


def test_water_tank_example_levels_are_a_steady_state_of_the_true_dynamics() -> None:
    net = water_tanks(5, levels=(0.2, 0.25, 0.3, 0.35, 0.4))
    x, u = net.reference_at(0.0)
    assert np.max(np.abs(net.steady_state_residual(x, u))) < 1e-12


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("algorithm, steps, iterations", [("sensitivity", 6, 30), ("admm", 3, 8)])
def test_lock_step_ros_run_of_nonlinear_dmpc_equals_the_simulation(tmp_path: Path, algorithm: str, steps: int,
                                                                   iterations: int) -> None:
    """Three masses: `dmpc run` (one process per agent; sensitivities, or ADMM's copies of the neighbours'
    trajectories, in algorithm_data) equals `dmpc sim`. The iteration timeout is long: ADMM's local solves take up
    to ~1 s (IPOPT finishing a stalled SQP), and a plan substituted after a timeout is not reproducible."""
    source = tmp_path / "chain.yaml"
    text = Path(load_scenario("spring_chain").source).read_text().replace("masses: 5", "masses: 3")
    source.write_text(text.replace("initial_state: [[0.8, 0.0], [-0.5, 0.3], [0.2, 0.0], [0.6, -0.2], [-0.4, 0.0]]",
                                   "initial_state: [[0.8, 0.0], [-0.5, 0.3], [0.2, 0.0]]"))
    ros, sim = tmp_path / "ros", tmp_path / "sim"
    env = dict(os.environ)
    flags = ["--algorithm", algorithm, "--steps", str(steps), "--iterations", str(iterations), "--no-reference"]
    run = subprocess.run(DMPC + ["run", str(source), "--output", str(ros), "--iteration-timeout", "60"] + flags,
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "not reproducible" not in run.stdout, run.stdout[-3000:]
    simulated = subprocess.run(DMPC + ["sim", str(source), "--output", str(sim)] + flags, capture_output=True,
                               text=True, timeout=600, env=env)
    assert simulated.returncode == 0, simulated.stderr
    a, b = np.load(ros / "trajectory.npz"), np.load(sim / "trajectory.npz")
    np.testing.assert_array_equal(a["u"], b["u"])
    np.testing.assert_allclose(a["x"], b["x"], rtol=0, atol=1e-12)
