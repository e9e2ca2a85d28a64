"""State limits that neighbours drive: which states they are (models/coupled_limits.py, against an independent
reachability computation), the load-time note (scenarios/coupled_limit_check.py) and the sensitivity scheme's exact
penalty on a quadruple tank whose neighbour-filled upper tanks meet their limits (mpc/nonlinear_ocp.SoftLimits)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dmpc_ros as dmpc
from dmpc_ros.models.coupled_limits import driven_states, nonlinear_driven_states, outside_driven
from dmpc_ros.models.nonlinear_examples import four_tank
from dmpc_ros.scenarios import ScenarioError, parse_scenario
from dmpc_ros.scenarios.source import load_source
from dmpc_ros.scenarios.yaml_file import read_yaml

ROOT = Path(__file__).resolve().parents[2]


def reachable(own: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """States reached from `rows` through x⁺ = own x over n steps (boolean matrix powers)."""
    n = own.shape[0]
    reach, frontier = rows.copy(), rows.copy()
    for _ in range(n):
        frontier = (own.astype(int) @ frontier.astype(int)) > 0
        reach |= frontier
    return reach


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(
    st.lists(st.booleans(), min_size=n * n, max_size=n * n),
    st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=0, max_size=3))))
def test_driven_states_are_those_a_neighbour_reaches(data) -> None:
    flat, driver_rows = data
    n = int(round(len(flat) ** 0.5))
    own = np.array(flat).reshape(n, n)
    drivers = {j: np.array(rows) for j, rows in enumerate(driver_rows)}
    found = driven_states(own, drivers)
    for r in range(n):
        expected = {j for j, rows in drivers.items() if reachable(own, rows)[r]}
        assert found.get(r, frozenset()) == expected


def test_the_quadruple_tank_upper_tanks_are_driven_by_the_other_pump() -> None:
    net = four_tank()
    assert nonlinear_driven_states(net, 0) == {0: frozenset({1}), 1: frozenset({1})}   # h3 filled by v2, h1 below
    assert outside_driven(net, 0, (0, 1)) == set()                                     # the centralized NLP: none


def test_the_note_names_the_state_and_the_neighbour_and_the_schemes_that_keep_it() -> None:
    linear = load_source(str(ROOT / "examples" / "four_tank.yaml"))
    note = linear.with_overrides(algorithm="noncooperative").notes[0]
    assert "noncooperative" in note and "(driven by" in note and "not kept" in note
    assert "jacobi, gauss_seidel" in note
    assert linear.with_overrides(algorithm="jacobi").notes == ()
    nonlinear = load_source(str(ROOT / "dmpc_ros" / "config" / "four_tank_nonlinear.yaml"))
    note = nonlinear.notes[0]
    assert "left.h3 (driven by right)" in note and "exact penalty" in note
    assert "schemes here that keep them at every iterate: horizons" in note   # every iterate feasible (issue 29)


def test_limit_penalty_is_validated_at_the_boundary() -> None:
    base = ROOT / "dmpc_ros" / "config" / "four_tank_nonlinear.yaml"
    sections = read_yaml(base)
    sections["controller"]["sensitivity"] = {"limit_penalty": -1.0}
    with pytest.raises(ScenarioError, match="controller.sensitivity.limit_penalty"):
        parse_scenario(sections, str(base))
    sections["controller"]["sensitivity"] = {"penalty": 1.0}
    with pytest.raises(ScenarioError, match="controller.sensitivity"):
        parse_scenario(sections, str(base))


def pushed_four_tank(steps: int, algorithm: str, upper_tank_limit: float = 0.045, horizon: int = 20,
                     h1: float = 0.10, h2: float = 0.19, **sensitivity) -> dmpc.Scenario:
    """The quadruple tank with low upper-tank limits: raising h2 (pump 2 up) overfills tank 3 unless pump 2 holds
    back, so the centralized optimum rides tank 3's limit, which the left agent cannot keep alone."""
    net = four_tank(h1=(0.124, h1), h2=(0.127, h2), setpoint_times=(0.0, 10.0))
    agents = tuple(dataclasses.replace(a, state_upper=np.array([0.20, upper_tank_limit])) for a in net.agents)
    return dmpc.scenario(dataclasses.replace(net, agents=agents), name="pushed_four_tank",
                         controller={"algorithm": algorithm, "horizon": horizon, "max_iterations": 30,
                                     "tolerance": 1e-7, "nonlinear": {"method": "sqp"},
                                     **({"sensitivity": sensitivity} if sensitivity else {})},
                         simulation={"steps": steps, "initial_state": "setpoint"})


@pytest.mark.slow
def test_sensitivity_keeps_a_neighbour_driven_limit_as_centralized_does() -> None:
    limit, steps = 0.045, 25
    reference = dmpc.reference(pushed_four_tank(steps, "centralized"))
    result = dmpc.simulate(pushed_four_tank(steps, "sensitivity"))
    assert reference.x[:, 1].max() >= limit - 1e-6            # the optimum rides tank 3's limit
    assert result.x[:, 1].max() <= limit + 1e-6               # so does the distributed run, not over it
    assert result.closed_loop_cost <= reference.closed_loop_cost * (1 + 1e-3)
    assert result.fallbacks.sum() == 0 and result.solver_failures.sum() == 0 and result.infeasible.sum() == 0


def test_the_rows_a_neighbour_sends_are_its_states_linearized_in_the_drivers_trajectory() -> None:
    """limit_rows' (S, r) against finite differences of the left agent's rollout in the right agent's trajectory."""
    from dmpc_ros.mpc.nonlinear_ocp import OptimalControlProblem, SoftLimits

    net, N = four_tank(), 6
    P = {0: np.eye(2)}
    ocp = OptimalControlProblem(net, (0,), N, P, soft_limits=SoftLimits())
    # h1, h3 soft (both downstream of pump 2); the right agent sends rows for h2 and h4 (both downstream of pump 1)
    assert ocp.layout.soft[0] == (0, 1) and ocp.layout.neighbour_rows == {1: (0, 1)}
    rng = np.random.default_rng(3)
    x0, U = np.array([0.12, 0.03]), rng.uniform(1.0, 4.0, (N, 1))
    right_x, right_u = rng.uniform(0.05, 0.15, (N + 1, 2)), rng.uniform(1.0, 5.0, (N, 1))
    phi = net.discrete_map(0)

    def rollout(rx: np.ndarray, ru: np.ndarray) -> np.ndarray:
        x, out = x0, []
        for k in range(N):
            x = np.asarray(phi(x, U[k], np.concatenate([rx[k], ru[k], rx[k + 1]])), float).ravel()
            out.append(x)
        return np.array(out)

    X = rollout(right_x, right_u)
    w = ocp.layout.pack({0: np.vstack([x0, X])}, {0: U})
    p = ocp.parameters({1: right_x}, {1: right_u}, {0: np.zeros((N + 1, 2))}, {0: np.zeros((N, 1))})
    S, r = ocp.limit_rows(w, x0, p)[1]
    trajectory = np.concatenate([right_x.ravel(), right_u.ravel()])
    np.testing.assert_allclose(r + S @ trajectory, X.ravel(), atol=1e-12)      # h1, h3: what the left agent sends
    for column in (2 * (N + 1) + 1, 2 * 3 + 1, 2 * (N + 1) + N - 1):   # an input, a state, the last input
        step = 1e-6
        bumped = trajectory.copy()
        bumped[column] += step
        moved = rollout(bumped[:2 * (N + 1)].reshape(N + 1, 2), bumped[2 * (N + 1):].reshape(N, 1))
        np.testing.assert_allclose(S[:, column], (moved - X).ravel() / step, atol=1e-5)


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(limit=st.floats(0.035, 0.05), h1=st.floats(0.08, 0.12), h2=st.floats(0.17, 0.19))
def test_on_random_pushed_tanks_sensitivity_keeps_the_limit_and_meets_centralized(limit, h1, h2) -> None:
    """Random upper-tank limits and setpoints: the distributed run never exceeds the limit and costs what
    centralized NMPC costs (the fixed point is its KKT point: the right agent keeps tank 3's rows itself)."""
    steady = four_tank(h1=(h1,), h2=(h2,), setpoint_times=(0.0,)).setpoints[0].state
    assume(limit > steady[1] + 1e-3 and steady[3] > 3e-3)   # the new setpoint inside the limits (else refused)
    reference = dmpc.reference(pushed_four_tank(10, "centralized", limit, 12, h1, h2))
    result = dmpc.simulate(pushed_four_tank(10, "sensitivity", limit, 12, h1, h2))
    assert result.violation.max() <= 1e-6
    assert result.closed_loop_cost == pytest.approx(reference.closed_loop_cost, rel=1e-4)
    assert result.fallbacks.sum() == 0
