"""State limits that neighbours drive: which states they are (models/coupled_limits.py, against an independent
reachability computation), the load-time note (scenarios/coupled_limit_check.py) and the sensitivity scheme's exact
penalty on a quadruple tank whose neighbour-filled upper tanks meet their limits (mpc/nonlinear_ocp.SoftLimits)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
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
    assert "no distributed scheme here keeps them at every iterate" in note


def test_limit_penalty_is_validated_at_the_boundary() -> None:
    base = ROOT / "dmpc_ros" / "config" / "four_tank_nonlinear.yaml"
    sections = read_yaml(base)
    sections["controller"]["sensitivity"] = {"limit_penalty": -1.0}
    with pytest.raises(ScenarioError, match="controller.sensitivity.limit_penalty"):
        parse_scenario(sections, str(base))
    sections["controller"]["sensitivity"] = {"penalty": 1.0}
    with pytest.raises(ScenarioError, match="controller.sensitivity"):
        parse_scenario(sections, str(base))


def pushed_four_tank(steps: int, algorithm: str, upper_tank_limit: float = 0.045) -> dmpc.Scenario:
    """The quadruple tank with low upper-tank limits: raising h2 (pump 2 up) overfills tank 3 unless pump 2 holds
    back, so the centralized optimum rides tank 3's limit, which the left agent cannot keep alone."""
    net = four_tank(h1=(0.124, 0.10), h2=(0.127, 0.19), setpoint_times=(0.0, 10.0))
    agents = tuple(dataclasses.replace(a, state_upper=np.array([0.20, upper_tank_limit])) for a in net.agents)
    return dmpc.scenario(dataclasses.replace(net, agents=agents), name="pushed_four_tank",
                         controller={"algorithm": algorithm, "horizon": 20, "max_iterations": 30, "tolerance": 1e-7,
                                     "nonlinear": {"method": "sqp"}},
                         simulation={"steps": steps, "initial_state": "setpoint"})


@pytest.mark.slow
def test_sensitivity_keeps_a_neighbour_driven_limit_as_centralized_does() -> None:
    limit, steps = 0.045, 25
    reference = dmpc.reference(pushed_four_tank(steps, "centralized"))
    result = dmpc.simulate(pushed_four_tank(steps, "sensitivity"))
    assert reference.x[:, 1].max() >= limit - 1e-6            # the optimum rides tank 3's limit
    assert result.x[:, 1].max() <= limit + 1e-6               # so does the distributed run, not over it
    assert result.closed_loop_cost <= reference.closed_loop_cost * (1 + 1e-3)
    assert sum(s.fallbacks for step in result.statistics for s in step) == 0
