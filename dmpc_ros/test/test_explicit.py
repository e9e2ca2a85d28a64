"""Explicit DMPC: the mpQP solver against the online QP and PPOPT, the three online schemes against the QP DMPC they
replace (Jacobi), the cache's refusals, and a lock-step ROS run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from dmpc_ros import simulate
from dmpc_ros.coordination import build_agents
from dmpc_ros.coordination.explicit import ExplicitBlock
from dmpc_ros.mpc.explicit_law import ExplicitLaw, parametric_block
from dmpc_ros.mpc.multiparametric import (CriticalRegion, ParametricQP, adjacency, explore, shares_facet,
                                          solution_arrays, solution_of)
from dmpc_ros.scenarios import ScenarioError, load_scenario
from dmpc_ros.scenarios.explicit_cache import build, tractability

SCENARIO = "facet_two_plants"
DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A cache of the paper plant's laws of its own (the user's cache is never touched)."""
    directory = tmp_path_factory.mktemp("explicit-cache")
    previous = os.environ.get("DMPC_EXPLICIT_CACHE")
    os.environ["DMPC_EXPLICIT_CACHE"] = str(directory)
    build(load_scenario(SCENARIO).design(with_laws=False), log=lambda line: None)
    yield directory
    if previous is None:
        os.environ.pop("DMPC_EXPLICIT_CACHE")
    else:
        os.environ["DMPC_EXPLICIT_CACHE"] = previous


def paper_problem(agent: int):
    design = load_scenario(SCENARIO).design(with_laws=False)
    block = design.block(agent, "plant", "affected", "daqp")
    problem, layout = parametric_block(block)
    return block, problem, layout


@pytest.mark.parametrize("agent", [0, 1])
def test_explicit_law_equals_the_online_block_qp(agent: int) -> None:
    block, problem, layout = paper_problem(agent)
    reduced, kept = problem.reduced()
    assert 0 < kept.size < problem.A.shape[0]   # state rows that no parameter can make active are dropped
    solution = explore(reduced)
    law = ExplicitLaw(solution, layout)
    rng = np.random.default_rng(agent)
    compared = 0
    for _ in range(300):
        theta = rng.uniform(problem.lower, problem.upper)
        online = block.solve(*layout.view(theta))
        region = law.scan(theta)
        assert (region is not None) == online.usable   # the regions cover the feasible parameters
        if region is not None:
            np.testing.assert_allclose(law.evaluate(region, theta), online.z, atol=1e-7)
            walked = law.walk(theta, 0)
            np.testing.assert_allclose(law.evaluate(walked, theta), online.z, atol=1e-7)
            compared += 1
    assert compared > 200


def test_regions_and_laws_agree_with_ppopt() -> None:
    from ppopt.mp_solvers.solve_mpqp import mpqp_algorithm, solve_mpqp
    from ppopt.mpqp_program import MPQP_Program
    from ppopt.solver import Solver

    _, problem, layout = paper_problem(1)
    law = ExplicitLaw(explore(problem.reduced()[0]), layout)
    p = problem.num_parameters
    reference = solve_mpqp(MPQP_Program(problem.A, problem.b[:, None], problem.f[:, None], problem.F, problem.H,
                                        np.vstack([np.eye(p), -np.eye(p)]),
                                        np.r_[problem.upper, -problem.lower][:, None], problem.B,
                                        solver=Solver({"lp": "glpk", "qp": "daqp", "milp": "glpk", "miqp": "daqp"})),
                           mpqp_algorithm.combinatorial)
    assert len(reference.critical_regions) == law.num_regions
    rng = np.random.default_rng(7)
    for theta in rng.uniform(problem.lower, problem.upper, size=(200, p)):
        region, theirs = law.scan(theta), reference.evaluate(theta[:, None])
        assert (region is None) == (theirs is None)
        if region is not None:
            np.testing.assert_allclose(law.evaluate(region, theta), theirs.ravel(), atol=1e-7)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(st.integers(0, 10_000))
def test_random_mpqp_solution_is_the_qp_optimum(seed: int) -> None:
    """Random strictly convex mpQPs (3 variables, 3 parameters, 8 rows): every sampled parameter's QP optimum is the
    explicit law's value, and the regions' neighbour lists are consistent."""
    rng = np.random.default_rng(seed)
    L = rng.normal(size=(3, 3))
    problem = ParametricQP(L @ L.T + 0.5 * np.eye(3), rng.normal(size=3), rng.normal(size=(3, 3)),
                           rng.normal(size=(8, 3)), rng.uniform(0.5, 2.0, 8), rng.normal(size=(8, 3)) * 0.5,
                           -np.ones(3), np.ones(3))
    solution = explore(problem)
    adjacency(solution)
    for i, neighbours in enumerate(solution.facet_neighbours):
        assert set(neighbours) <= set(solution.hyperplane_neighbours[i])
        assert all(i in solution.facet_neighbours[j] for j in neighbours)
    restored = solution_of(solution_arrays(solution))
    law = ExplicitLaw(restored, None)
    for theta in rng.uniform(-1, 1, size=(60, 3)):
        solved = problem.solve_at(theta)
        region = law.scan(theta)
        if solved is None:
            assert region is None
            continue
        assert region is not None
        np.testing.assert_allclose(law.evaluate(region, theta), solved[0], atol=1e-6)


def test_regions_touching_in_one_point_are_not_facet_neighbours() -> None:
    """LP (14) with both regions' rows: two squares meeting at a corner share the line x = 0 but no facet."""
    square = lambda lo, hi: (np.vstack([np.eye(2), -np.eye(2)]), np.r_[hi, -lo])   # noqa: E731
    Phi, phi = square(np.array([-1.0, -1.0]), np.array([0.0, 0.0]))
    left = CriticalRegion((), Phi, phi, np.zeros((1, 2)), np.zeros(1))
    Phi, phi = square(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    corner = CriticalRegion((), Phi, phi, np.zeros((1, 2)), np.zeros(1))
    Phi, phi = square(np.array([0.0, -1.0]), np.array([1.0, 0.0]))
    beside = CriticalRegion((), Phi, phi, np.zeros((1, 2)), np.zeros(1))
    assert not shares_facet(left, 0, corner, 2)   # x ≤ 0 of one, −x ≤ 0 of the other: only the point (0, 0)
    assert shares_facet(left, 0, beside, 2)


def test_wegstein_weights_reach_the_same_fixed_point() -> None:
    scenario = load_scenario(SCENARIO)
    accelerated = simulate(_parse_with(scenario, {"wegstein": True}), "explicit_iterative")
    np.testing.assert_allclose(accelerated.u, simulate(scenario, "jacobi").u, atol=1e-6)


def test_schemes_apply_the_inputs_of_the_qp_dmpc_they_replace() -> None:
    scenario = load_scenario(SCENARIO)
    qp = simulate(scenario, "jacobi")
    iterative = simulate(scenario, "explicit_iterative")
    np.testing.assert_allclose(iterative.u, qp.u, atol=1e-9)
    np.testing.assert_array_equal(iterative.iterations, qp.iterations)
    assert qp.iterations.max() > 1   # the paper's point: the QP DMPC needs rounds of negotiation
    for algorithm in ("explicit_iteration_free", "explicit_facet"):
        result = simulate(scenario, algorithm)
        np.testing.assert_allclose(result.u, qp.u, atol=1e-6)
        assert np.all(result.iterations == 1)   # one data exchange per step
        totals = result.counter_totals()   # the scheme's own counters, by name
        assert totals["iterative_fallbacks"] == 0 and totals["qp_fallbacks"] == 0   # no fallback needed
    centralized = simulate(scenario, "centralized")
    np.testing.assert_allclose(qp.u, centralized.u, atol=1e-5)


def test_outside_the_explored_set_the_online_qp_is_used_and_counted() -> None:
    """x(0) beyond the state limits: no region holds it, the agents solve their QPs online (counted), and the inputs
    still equal Jacobi's."""
    scenario = load_scenario(SCENARIO)
    outside = scenario.initial_state.copy()
    outside[0] = 35.0   # x11 ≤ 29.6809
    design = scenario.design()
    agents = build_agents(design, "explicit_iterative", scenario.controller.stopping)
    block = agents[0].block
    assert isinstance(block, ExplicitBlock)
    x0 = np.r_[outside]
    solution = block.solve(x0, np.zeros(block.network.n_u * block.horizon))
    assert block.misses == 1 and solution.status != "explicit"


def test_a_missing_or_stale_cache_refuses_with_the_command(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIO)
    with pytest.raises(ScenarioError, match="dmpc explicit build"):
        scenario.with_overrides(horizon=4).design()   # another problem: its hash is not in the cache
    previous = os.environ["DMPC_EXPLICIT_CACHE"]
    os.environ["DMPC_EXPLICIT_CACHE"] = str(tmp_path)
    try:
        with pytest.raises(ScenarioError, match=f"no explicit solution for agent 0 .* in {tmp_path}"):
            scenario.design()
        build(scenario.design(with_laws=False), log=lambda line: None)
        for file in tmp_path.glob("agent0-*.npz"):
            file.write_bytes(b"not a zip file")
        with pytest.raises(ScenarioError, match="cannot be read"):
            scenario.design()
    finally:
        os.environ["DMPC_EXPLICIT_CACHE"] = previous


@pytest.mark.parametrize("tamper,reason", [
    ("swap", "checksum does not match"), ("nan", "checksum does not match"), ("drop_checksum", "checksum"),
    ("nan_resealed", "gains has non-finite values"), ("swap_resealed", "region arrays do not fit"),
    ("problem_resealed", "is not this agent's problem")])
def test_a_tampered_cache_file_is_refused_in_one_line_saying_to_rebuild(tmp_path: Path, tamper: str,
                                                                       reason: str) -> None:
    """Arrays swapped or made NaN, with or without a checksum recomputed to match (a forger who knows the format):
    one line naming the file, what is wrong and the command that rebuilds it."""
    from dmpc_ros.scenarios.explicit_cache import agent_problems, checksum

    scenario = load_scenario(SCENARIO)
    previous = os.environ["DMPC_EXPLICIT_CACHE"]
    os.environ["DMPC_EXPLICIT_CACHE"] = str(tmp_path)
    try:
        design = scenario.design(with_laws=False)
        build(design, log=lambda line: None)
        scenario.design()   # as built: loads
        entry = agent_problems(design)[0]
        with np.load(entry.path) as data:
            arrays = {key: data[key] for key in data.files}
        if tamper.startswith("swap"):
            arrays["Phi"], arrays["phi"] = arrays["phi"], arrays["Phi"]
        elif tamper.startswith("nan"):
            arrays["gains"] = arrays["gains"].copy()
            arrays["gains"].flat[0] = np.nan
        elif tamper == "problem_resealed":
            arrays["f"] = arrays["f"] + 1.0
        elif tamper == "drop_checksum":
            del arrays["checksum"]
        if tamper.endswith("resealed"):
            arrays["checksum"] = np.array(checksum(arrays, entry.problem.digest()))
        np.savez(entry.path, **arrays)
        with pytest.raises(ScenarioError) as error:
            scenario.design()
        message = str(error.value)
        assert reason in message, message
        assert "\n" not in message and "dmpc explicit build" in message and str(entry.path.name) in message
    finally:
        os.environ["DMPC_EXPLICIT_CACHE"] = previous


def test_intractable_designs_are_refused_with_an_estimate() -> None:
    rng = np.random.default_rng(0)
    n, p, m = 30, 40, 200
    problem = ParametricQP(np.eye(n), np.zeros(n), rng.normal(size=(n, p)), rng.normal(size=(m, n)), np.ones(m),
                           rng.normal(size=(m, p)), -np.ones(p), np.ones(p))
    reason = tractability(problem)
    assert reason is not None and "40 entries" in reason and "critical regions" in reason
    _, small, _ = paper_problem(0)
    assert tractability(small) is None


def test_explicit_settings_are_validated() -> None:
    scenario = load_scenario(SCENARIO)
    with pytest.raises(ScenarioError, match="controller.explicit.point_location"):
        _parse_with(scenario, {"point_location": "tree"})
    with pytest.raises(ScenarioError, match="controller.explicit.max_combinations"):
        _parse_with(scenario, {"max_combinations": 0})
    with pytest.raises(ScenarioError, match="controller.explicit.wegstein"):
        _parse_with(scenario, {"wegstein": "yes"})
    kept = _parse_with(scenario, {"wegstein": True}, algorithm="jacobi")   # ignored by the QP scheme, kept
    assert kept.controller.scheme_settings is None   # jacobi has no settings; the section was validated, and kept:
    assert kept.with_overrides(algorithm="explicit_iterative").controller.scheme_settings.wegstein


def _parse_with(scenario, explicit: dict, algorithm: str | None = None, **simulation):
    from dmpc_ros.scenarios import parse_scenario
    from dmpc_ros.scenarios.yaml_file import read_yaml

    data = read_yaml(Path(scenario.source))
    data["controller"]["explicit"] = explicit
    data["simulation"].update(simulation)
    if algorithm:
        data["controller"]["algorithm"] = algorithm
    return parse_scenario(data, scenario.source)


def test_the_agents_own_iteration_starts_from_a_repaired_warm_start() -> None:
    """From x(0) where the zero-input warm start breaks a state limit: the iterative fallback of an iteration-free
    agent projects it first (as the QP agents do), so it ends at Jacobi's plan and inside every limit."""
    scenario = _parse_with(load_scenario(SCENARIO), {}, initial_state=[[22.3, -43.4], [6.9, -23.3]], steps=1)
    design = scenario.design()
    agents = build_agents(design, "explicit_facet", scenario.controller.stopping)
    x0 = scenario.initial_state
    for agent in agents:
        agent.begin_step(0, x0[design.system.state_slice(agent.agent_id)], {})
    agent = agents[0]
    agent.x = x0.copy()
    law, block = agent.laws[0], agent.blocks[0].block
    assert block.slack(x0, agent.U[law.view_to_plant], repair=True) < -1.0   # the warm start is infeasible
    U = agent._iterate_locally()
    assert agent.statistics.fallbacks == 1 and block.slack(x0, U[law.view_to_plant], repair=True) > -1e-7
    np.testing.assert_allclose(U, simulate(scenario, "jacobi").plan_inputs[0].ravel(), atol=1e-6)


@pytest.mark.ros
@pytest.mark.slow
def test_lock_step_ros_run_of_facet_dimpc_equals_the_simulation(tmp_path: Path, cache: Path) -> None:
    env = dict(os.environ, DMPC_EXPLICIT_CACHE=str(cache))
    steps = 8
    ros, sim = tmp_path / "ros", tmp_path / "sim"
    run = subprocess.run(DMPC + ["run", SCENARIO, "--steps", str(steps), "--output", str(ros), "--no-reference",
                                "--iteration-timeout", "30"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    simulated = subprocess.run(DMPC + ["sim", SCENARIO, "--steps", str(steps), "--output", str(sim),
                                       "--no-reference"], capture_output=True, text=True, timeout=300, env=env)
    assert simulated.returncode == 0, simulated.stderr
    a, b = np.load(ros / "trajectory.npz"), np.load(sim / "trajectory.npz")
    np.testing.assert_array_equal(a["u"], b["u"])
    np.testing.assert_array_equal(a["x"], b["x"])
    exchanges = []
    with (ros / "run.mcap").open("rb") as handle:
        for _, channel, _, message in make_reader(handle, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            if channel.topic.endswith("/status"):
                counters = dict(zip(message.counter_names, message.counter_values))
                exchanges.append((message.data_exchanges, counters.get("iterative_fallbacks"),
                                  counters.get("qp_fallbacks")))
    assert exchanges and all(e == (1, 0, 0) for e in exchanges)
    assert json.loads((ros / "summary.json").read_text())["counters"]["iterative_fallbacks"] == 0


def test_problems_the_offline_laws_cannot_serve_are_refused() -> None:
    from dmpc_ros.coordination import build_agent

    design = load_scenario(SCENARIO).design()
    with pytest.raises(ValueError, match="sum to 1"):
        build_agent(design, "explicit_facet", 0, load_scenario(SCENARIO).controller.stopping, weights=[0.9, 0.9])
    formation = load_scenario("formation")
    with pytest.raises(ValueError, match="half-planes change every step"):
        build_agent(formation.design(), "explicit_iterative", 0, formation.controller.stopping)
    robust = load_scenario("mass_spring_robust")
    with pytest.raises(ValueError, match="tube mode"):
        build_agent(robust.design(), "explicit_iterative", 0, robust.controller.stopping)


@pytest.mark.parametrize("command", ["sim", "run"])
def test_commands_without_the_cache_say_what_to_run(tmp_path: Path, command: str) -> None:
    env = dict(os.environ, DMPC_EXPLICIT_CACHE=str(tmp_path / "empty"))
    done = subprocess.run(DMPC + [command, SCENARIO, "--steps", "2", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if not line.startswith("note: ")]   # load-time advice aside
    assert len(errors) == 1 and "run `dmpc explicit build" in errors[0], done.stderr
    assert not (tmp_path / "out").exists()   # refused before any node started or output was written
    built = subprocess.run(DMPC + ["explicit", "build", SCENARIO], capture_output=True, text=True, timeout=120, env=env)
    assert built.returncode == 0 and "agent 1: θ 7, U_i 3" in built.stdout and "14 regions" in built.stdout
    if command == "sim":
        ran = subprocess.run(DMPC + ["sim", SCENARIO, "--steps", "2", "--output", str(tmp_path / "out"),
                                     "--no-reference"], capture_output=True, text=True, timeout=120,
                             env=dict(env, COLUMNS="200"))
        assert ran.returncode == 0, ran.stderr
        for counter in ("qp fallbacks", "full searches", "iterative fallbacks", "combinations"):   # by name
            assert f"explicit_facet: {counter}" in ran.stdout, ran.stdout
