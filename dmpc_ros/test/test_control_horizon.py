"""`controller.control_horizon` for every scheme (mpc/input_parametrization.py): the inputs after N_c,i held or given
by the terminal law, checked against independent references (a QP with the tail as equality rows, the centralized
MPC of the same parametrization) and on random chains (hypothesis)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cooperative import FEASIBILITY, chains, check_guarantees

from dmpc_ros.coordination import ControllerDesign, StoppingRule
from dmpc_ros.mpc.input_parametrization import ControlHorizons, InputParametrization
from dmpc_ros.mpc.neighbourhood import toeplitz_response
from dmpc_ros.mpc.qp import DenseQP
from dmpc_ros.mpc.qp_backends import qp_backend
from dmpc_ros.mpc.reference import ReferenceTrajectory
from dmpc_ros.scenarios import ScenarioError
from dmpc_ros.scenarios.schema import parse_scenario, scenario_path
from dmpc_ros.sim import SimulationSettings, simulate


def scenario_with(name: str, steps: int, **controller):
    data = yaml.safe_load(scenario_path(name).read_text())
    data["controller"].update(controller)
    data["simulation"]["steps"] = steps
    return parse_scenario(data, str(scenario_path(name)))


def run(scenario, algorithm: str | None = None, iterations: int = 30):
    return simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                    SimulationSettings(algorithm or scenario.controller.algorithm, scenario.steps,
                                       StoppingRule(iterations, scenario.controller.tolerance),
                                       scheme_settings=scenario.controller.scheme_settings))


def random_system(rng: np.random.Generator, n: int, width: int, N: int):
    A = rng.normal(size=(n, n)) * 0.5
    B = rng.normal(size=(n, width))
    responses = np.empty((N, n, width))
    responses[0] = B
    for s in range(1, N):
        responses[s] = A @ responses[s - 1]
    return toeplitz_response(responses, np.arange(n))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), N=st.integers(1, 8), width=st.integers(1, 3), data=st.data())
def test_expanded_inputs_follow_the_tail_rule(seed: int, N: int, width: int, data) -> None:
    """Any v expands to a sequence whose tail is the held input, or exactly the terminal law along the prediction
    x = F + G z (checked by simulating it), and the head entries come back unchanged."""
    rng = np.random.default_rng(seed)
    free = np.array(data.draw(st.lists(st.integers(1, N), min_size=width, max_size=width)))
    n = 3
    G = random_system(rng, n, width, N)
    K = rng.normal(size=(width, n))
    F, x_ref, u_ref = rng.normal(size=(N + 1, n)), rng.normal(size=(N + 1, n)), rng.normal(size=(N, width))
    hold = InputParametrization(N, free)
    terminal = InputParametrization(N, free, "terminal", G, K)
    v = rng.normal(size=hold.size)
    z_hold = hold.expand(v).reshape(N, width)
    z_term = terminal.expand(v, terminal.offset(F, x_ref, u_ref)).reshape(N, width)
    x = F + (G @ z_term.ravel()).reshape(N + 1, n)
    for c in range(width):
        for k in range(free[c], N):
            assert z_hold[k, c] == z_hold[free[c] - 1, c]
            assert z_term[k, c] == pytest.approx(u_ref[k, c] + K[c] @ (x[k] - x_ref[k]), abs=1e-9)
    assert np.array_equal(hold.reduce(z_hold.ravel()), v) and np.allclose(terminal.reduce(z_term.ravel()), v)
    assert hold.size == terminal.size == int(free.sum())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), tail=st.sampled_from(["hold", "terminal"]))
def test_the_reduced_qp_equals_the_full_qp_with_tail_equalities(seed: int, tail: str) -> None:
    """The QP in v (DAQP) has the optimum of the QP in z with the tail as equality rows, solved by Clarabel (an
    interior-point method on the sparse form: an independent solver and formulation)."""
    rng = np.random.default_rng(seed)
    N, width, n = 6, 2, 3
    free = np.array([2, 4])
    G = random_system(rng, n, width, N)
    K = rng.normal(size=(width, n)) * 0.3
    p = InputParametrization(N, free, tail, G, K)
    F, x_ref, u_ref = rng.normal(size=(N + 1, n)), np.zeros((N + 1, n)), np.zeros((N, width))
    c = p.offset(F, x_ref, u_ref)
    M = rng.normal(size=(N * width, N * width))
    H, q = M @ M.T + np.eye(N * width), rng.normal(size=N * width)
    C = np.vstack([np.eye(N * width), -np.eye(N * width)])
    bound = np.full(2 * N * width, 3.0)
    qp = p.qp(H, C)
    qp.offset = c
    solution = qp.solve(q, np.full(bound.size, -np.inf), bound)
    if not solution.usable:   # the tail cannot keep the box: then the equality form must be infeasible too
        return
    # reference: z with rows E z = e (tail) and C z ≤ bound
    tail_rows = np.eye(N * width)[p.tail_entries] - p.T[p.tail_entries] @ np.eye(N * width)[p.head]
    e = np.zeros(p.tail_entries.size) if c is None else c[p.tail_entries]
    A = sp.csc_matrix(np.vstack([tail_rows, C]))
    model = qp_backend("clarabel", "sparse").sparse(sp.triu(sp.csc_matrix(H), format="csc"), q, A,
                                                    np.concatenate([e, bound]), tail_rows.shape[0], 1e-10)
    reference = model.solve()
    assert reference.ok
    assert np.allclose(solution.z, reference.x, atol=1e-6)


def test_full_control_horizon_is_bit_identical_to_none() -> None:
    """N_c = N (either tail) is the identity: the same closed loop as without the setting, to the last bit."""
    plain = run(scenario_with("mass_spring", 8))
    for tail in ("hold", "terminal"):
        same = run(scenario_with("mass_spring", 8, control_horizon=20, control_tail=tail))
        assert np.array_equal(same.x, plain.x) and np.array_equal(same.u, plain.u)


def test_gauss_seidel_reaches_the_centralized_mpc_of_the_same_held_parametrization() -> None:
    """Dissimilar held horizons (3, 8, 5, 12): Gauss-Seidel to convergence equals the sparse centralized MPC with
    the tails as equality rows (Clarabel; another formulation and solver), plan for plan; fewer variables cost
    more than the full horizon."""
    horizons = [3, 8, 5, 12]
    scenario = scenario_with("mass_spring", 6, control_horizon=horizons, tolerance=1e-10)
    agents, central = run(scenario, "gauss_seidel", 400), run(scenario, "centralized")
    assert central.fallbacks.sum() == 0
    assert np.max(np.abs(agents.plan_inputs[0] - central.plan_inputs[0])) < 1e-4
    assert agents.closed_loop_cost == pytest.approx(central.closed_loop_cost, rel=1e-5)
    for i, free in enumerate(horizons):
        assert np.allclose(central.plan_inputs[:, free:, i], central.plan_inputs[:, free - 1: free, i], atol=1e-7)
    full = run(scenario_with("mass_spring", 6), "centralized")
    assert full.plan_cost[0] < central.plan_cost[0]


def test_terminal_tails_follow_the_law_and_the_agents_come_close_to_the_joint_optimum() -> None:
    """Terminal tails (8, 12, 10, 14): the centralized plan's tails are ū + K(x − x̄) along its own prediction to
    1e-9. An agent's tail follows κ along its prediction with the others' plans fixed, so the agents' fixed point
    is not the optimum of the jointly parametrized problem (the others' tails do not answer its inputs): Jacobi and
    Gauss-Seidel reach the same point, whose plan costs within 0.5 % of the centralized one (measured 0.05 %)."""
    horizons = [8, 12, 10, 14]
    scenario = scenario_with("mass_spring", 6, control_horizon=horizons, control_tail="terminal", tolerance=1e-10)
    seidel, jacobi, central = (run(scenario, name, 400) for name in ("gauss_seidel", "jacobi", "centralized"))
    assert central.fallbacks.sum() == 0
    design = scenario.design()
    K, (x_ref, u_ref) = design.terminal_gain(), design.reference.at(0)
    for k in range(scenario.steps):
        X, U = central.plan_states[k], central.plan_inputs[k]
        for i, free in enumerate(horizons):
            law = u_ref[i] + (X[free:20] - x_ref) @ K[i]
            assert np.allclose(U[free:, i], law, atol=1e-9)
    assert seidel.closed_loop_cost == pytest.approx(jacobi.closed_loop_cost, rel=1e-6)
    assert seidel.plan_cost[0] == pytest.approx(central.plan_cost[0], rel=5e-3)


@pytest.mark.parametrize("algorithm", ["jacobi", "noncooperative", "decentralized", "admm"])
def test_every_linear_scheme_holds_its_tail_and_keeps_the_limits(algorithm: str) -> None:
    """Held tails in the applied plans of every scheme that honours them, at every step: Jacobi's step-0 feasibility
    repair projects within the held sets too (before that fix its residue was 2.6e-5 and decayed with the
    combination); inputs and states inside their sets."""
    scenario = scenario_with("mass_spring", 12, control_horizon=[4, 6, 4, 6], algorithm=algorithm)
    result = run(scenario)
    deviation = np.max([np.max(np.abs(result.plan_inputs[:, free:, i] - result.plan_inputs[:, free - 1: free, i]),
                               axis=1) for i, free in enumerate((4, 6, 4, 6))], axis=0)
    assert np.max(deviation) < 1e-9, (algorithm, deviation)
    assert np.max(result.violation) < 1e-6 and np.max(np.abs(result.u)) <= 1.0 + 1e-9


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chains(), data=st.data())
def test_cooperative_guarantees_hold_with_held_tails(case, data) -> None:
    """Cooperative Jacobi and Gauss-Seidel with random dissimilar held horizons on random chains: from the first
    feasible iterate every iterate keeps every row and the plant-wide cost never rises (the held set is a linear
    subspace, so the convex combination stays in it)."""
    chain, x0 = case
    M, N = chain.num_masses, 8
    horizons = ControlHorizons(tuple(data.draw(st.lists(st.integers(1, N), min_size=M, max_size=M))), "hold")
    design = ControllerDesign(chain.discrete(0.1, coupling_tolerance=1e-6), np.diag(np.tile([4.0, 0.5], M)),
                              0.2 * np.eye(M), N, ReferenceTrajectory.constant(np.zeros(2 * M), np.zeros(M)),
                              control_horizons=horizons)
    check_guarantees(design, x0, data.draw(st.sampled_from(["jacobi", "gauss_seidel"])))


def test_qp_size_falls_with_the_control_horizon() -> None:
    """An agent's QP has N_c,i·n_u,i variables (its solve returns all N inputs)."""
    scenario = scenario_with("mass_spring", 2, control_horizon=[3, 8, 5, 12])
    design = scenario.design()
    sizes = [design.block(i, "plant", "affected", "daqp").qp.num_variables for i in range(4)]
    assert sizes == [3, 8, 5, 12]
    assert DenseQP(np.eye(2), np.eye(2)).num_variables == 2


@pytest.mark.parametrize("name,changes,message", [
    ("mass_spring", dict(control_horizon=21), "controller.control_horizon: 21"),
    ("mass_spring", dict(control_horizon=[3, 4]), "controller.control_horizon: has 2 entries"),
    ("mass_spring", dict(control_horizon=0), "controller.control_horizon: 0"),
    ("mass_spring", dict(control_horizon=4, control_tail="zero"), "controller.control_tail: 'zero'"),
    ("facet_two_plants", dict(control_horizon=2, control_tail="terminal", algorithm="explicit_facet"),
     "allowed control_tail hold"),
    ("mass_spring", dict(control_horizon=4, control_tail="terminal", algorithm="admm"), "allowed control_tail hold"),
    ("mass_spring", dict(control_horizon=4, algorithm="horizons"), "allowed control_tail terminal"),
    ("four_tank_nonlinear", dict(control_horizon=4, control_tail="terminal", algorithm="sensitivity"),
     "nonlinear agents' inputs with controller.control_tail terminal"),
])
def test_what_a_scheme_cannot_honour_is_refused_in_one_line(name: str, changes: dict, message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        scenario_with(name, 2, **changes)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_horizons_scheme_takes_the_generic_setting() -> None:
    """`horizons` reads controller.control_horizon when its own section gives none (its tail contains κ)."""
    scenario = scenario_with("mass_spring", 3, algorithm="horizons", control_horizon=[3, 8, 5, 12],
                             control_tail="terminal")
    agents = scenario.design().agents("horizons", StoppingRule(3, 1e-6))
    assert [a.control_horizon for a in agents] == [3, 8, 5, 12]


def test_tube_mode_runs_with_held_tails() -> None:
    """The robust (tube) scenario with held horizons: the nominal plans hold their tails and the plant keeps its
    limits (plans stay N long, so controller.tube.missed_steps ≤ N − 1 is unchanged)."""
    scenario = scenario_with("mass_spring_robust", 10, control_horizon=6)
    result = run(scenario)
    assert np.max(result.violation) <= FEASIBILITY
    deviation = np.max(np.abs(result.plan_inputs[:, 6:] - result.plan_inputs[:, 5:6]), axis=(1, 2))
    assert np.max(deviation) < 1e-9, deviation


def test_design_field_reaches_the_dual_decomposition_agents() -> None:
    """dual_decomposition's one-agent local designs keep the agent's own control horizon."""
    scenario = scenario_with("mass_budget", 2, control_horizon=5)
    local = scenario.design().local_design(2)
    assert local.control_horizons == dataclasses.replace(scenario.controller.control_horizons, values=(5,))


def test_explicit_laws_of_held_horizons_apply_what_the_qp_dmpc_applies(tmp_path, monkeypatch) -> None:
    """The explicit schemes' mpQPs in the control horizon's variables, with the neighbours' held inputs out of the
    parameter θ (only their free inputs are in it), so fewer regions: their laws, expanded by the hold, apply the
    inputs of QP Jacobi with the same horizons (the paper plants, N = 3, N_c = 2, 1)."""
    from dmpc_ros import simulate as simulate_scenario
    from dmpc_ros.scenarios.explicit_cache import build

    monkeypatch.setenv("DMPC_EXPLICIT_CACHE", str(tmp_path))
    full = scenario_with("facet_two_plants", 15)
    held = scenario_with("facet_two_plants", 15, control_horizon=[2, 1])
    from dmpc_ros.scenarios.explicit_cache import agent_problems
    parameters = [[entry.problem.num_parameters for entry in agent_problems(s.design(with_laws=False))]
                  for s in (full, held)]
    assert parameters[1][0] == parameters[0][0] - 2 and parameters[1][1] == parameters[0][1] - 1, parameters
    sizes = {}
    for name, scenario in (("full", full), ("held", held)):
        solutions = build(scenario.design(with_laws=False), log=lambda line: None)
        sizes[name] = [len(s.regions) for s in solutions]
    assert all(h < f for h, f in zip(sizes["held"], sizes["full"])), sizes
    qp = simulate_scenario(held, "jacobi")
    assert not np.allclose(qp.u, simulate_scenario(full, "jacobi").u, atol=1e-6)   # the horizon changes the loop
    np.testing.assert_allclose(simulate_scenario(held, "explicit_iterative").u, qp.u, atol=1e-9)
    for algorithm in ("explicit_iteration_free", "explicit_facet"):
        result = simulate_scenario(held, algorithm)
        np.testing.assert_allclose(result.u, qp.u, atol=1e-6)
        assert result.counter_totals()["qp_fallbacks"] == 0


def test_nonlinear_sensitivity_dmpc_reaches_the_centralized_nmpc_of_the_same_held_horizon() -> None:
    """Four tanks (nonlinear), N_c = 4 of N = 30, held: the sensitivity agents (their OCPs with N_c input variables,
    the neighbours' gradients over all N inputs added onto them) reach centralized IPOPT on the same
    parametrization; the tails are held exactly and the short horizon costs more than the full one."""
    held = scenario_with("four_tank_nonlinear", 3, control_horizon=4)
    agents, central = run(held, "sensitivity"), run(held, "centralized")
    # the agents stop at the scenario's tolerance (measured 4.5e-5 relative over 3 steps, 5e-7 over 15)
    assert agents.closed_loop_cost == pytest.approx(central.closed_loop_cost, rel=2e-4)
    for result in (agents, central):
        assert np.max(np.abs(result.plan_inputs[:, 4:] - result.plan_inputs[:, 3:4])) < 1e-12
    assert run(scenario_with("four_tank_nonlinear", 3), "centralized").plan_cost[0] < central.plan_cost[0]


def test_overrides_round_trip_for_ros_runs() -> None:
    """The flags' fields are OVERRIDES: a scenario changed by them in Python (api.run_ros) yields the node
    parameters again (changed_fields), and a per-agent list stays a list."""
    from dmpc_ros.api import changed_fields
    from dmpc_ros.scenarios import load_scenario

    original = load_scenario("mass_spring")
    changed = original.with_overrides(control_horizon=6, control_tail="terminal")
    assert changed_fields(original, changed) == {"control_horizon": 6, "control_tail": "terminal"}
    assert changed_fields(original, original) == {}
    assert scenario_with("mass_spring", 2, control_horizon=[3, 8, 5, 12]).controller.control_horizon == [3, 8, 5, 12]
