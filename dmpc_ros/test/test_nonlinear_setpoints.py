"""Nonlinear setpoints with free entries (issue 31): `null` entries of model.setpoints (NaN in Python) are solved for
the steady state f(x̄, ū) = 0, as the linear family solves its free states; too many free entries, or fixed ones no
steady state fits, are refused in one line."""
from __future__ import annotations

import numpy as np
import pytest

from dmpc_ros.models.nonlinear import NonlinearSetpoint
from dmpc_ros.models.nonlinear_examples import four_tank
from dmpc_ros.models.nonlinear_steady import NoSteadyState, complete_setpoint
from dmpc_ros.scenarios import ScenarioError, parse_scenario

NAN = np.nan


def four_tank_scenario(setpoints: list) -> dict:
    return {"name": "four_tank_free", "model": {"type": "nonlinear", "example": "four_tank", "sample_time": 5.0,
                                                "setpoints": setpoints},
            "controller": {"algorithm": "sensitivity", "horizon": 10}, "simulation": {"steps": 2}}


def test_free_levels_and_voltages_are_the_steady_state_the_example_computes_by_hand() -> None:
    network = four_tank()
    for given in network.setpoints:
        free = NonlinearSetpoint(given.time, np.array([given.state[0], NAN, given.state[2], NAN]), np.full(2, NAN))
        solved = complete_setpoint(network, free)
        assert np.allclose(solved.state, given.state, atol=1e-9) and np.allclose(solved.input, given.input, atol=1e-7)
        assert solved.time == given.time


def test_a_yaml_setpoint_with_nulls_loads_as_a_steady_state() -> None:
    scenario = parse_scenario(four_tank_scenario([{"time": 0, "x": [0.124, None, 0.127, None]},
                                                  {"time": 50, "x": [0.174, None, 0.167, None], "u": [None, None]}]),
                              source="test")
    expected = four_tank().setpoints
    for got, want in zip(scenario.model.setpoints, expected):
        assert np.allclose(got.state, want.state, atol=1e-9) and np.allclose(got.input, want.input, atol=1e-7)
    assert scenario.initial_state == pytest.approx(expected[0].state)


def test_a_fixed_input_leaves_a_level_free() -> None:
    network = four_tank()
    given = network.setpoints[1]
    solved = complete_setpoint(network, NonlinearSetpoint(0.0, np.array([given.state[0], NAN, NAN, NAN]),
                                                          np.array([NAN, given.input[1]])))
    assert np.allclose(solved.state, given.state, atol=1e-8) and np.allclose(solved.input, given.input, atol=1e-6)


def test_too_many_free_entries_are_refused_in_one_line() -> None:
    with pytest.raises(NoSteadyState, match=r"leaves 6 entries free .* at most 4 .* fix 2 more") as error:
        complete_setpoint(four_tank(), NonlinearSetpoint(0.0, np.full(4, NAN), np.full(2, NAN)))
    assert "\n" not in str(error.value)


def test_fixed_entries_no_steady_state_fits_are_refused() -> None:
    with pytest.raises(ScenarioError, match=r"model.setpoints: the setpoint from t = 0 s has no steady state"):
        parse_scenario(four_tank_scenario([{"time": 0, "x": [0.1, 0.1, 0.1, 0.1]}]), source="test")


def test_setpoints_are_refused_for_an_example_that_follows_a_path() -> None:
    data = four_tank_scenario([{"time": 0, "x": [0.0] * 12}])
    data["model"]["example"] = "unicycle_formation"
    with pytest.raises(ScenarioError, match="follows a reference path"):
        parse_scenario(data, source="test")
