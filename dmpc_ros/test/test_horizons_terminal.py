"""The nonlinear terminal set of the dissimilar-horizon scheme (mpc/terminal_region.py, used by
coordination/nonlinear_horizons.py with controller.terminal_set: true): the level set is invariant with the
decrease V_f(Φ) − V_f ≤ −ℓ on random points, the terminal row holds along the closed loop of
three_mass_horizons, and the closed loop is recursively feasible on the prediction model from random feasible
initial states."""
from __future__ import annotations

import copy
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dmpc_ros.coordination import StoppingRule
from dmpc_ros.coordination.horizons import HorizonSettings
from dmpc_ros.coordination.nonlinear_horizons import NonlinearHorizons
from dmpc_ros.models.nonlinear import NonlinearPlant
from dmpc_ros.mpc.terminal_region import RegionProblem, sets_level, terminal_region
from dmpc_ros.scenarios import ScenarioError, parse_scenario, scenario_path
from dmpc_ros.scenarios.yaml_file import read_yaml
from dmpc_ros.sim import SimulationSettings, simulate

ROW = 1e-7            # the scheme's row slack (coordination/horizons.FEASIBILITY_TOLERANCE)


@cache
def scenario(horizon: int = 24, algorithm: str = "horizons"):
    """three_mass_horizons with the terminal set on (and, for the tests' speed, a shorter horizon)."""
    data = copy.deepcopy(read_yaml(scenario_path("three_mass_horizons")))
    data["controller"].update(terminal_set=True, horizon=horizon, algorithm=algorithm)
    data["controller"]["horizons"]["control_horizon"] = [min(h, horizon) for h in (4, 12, 8)]
    return parse_scenario(data, source="three_mass_horizons")


@cache
def model(horizon: int = 24) -> NonlinearHorizons:
    return NonlinearHorizons(scenario(horizon).design())


class NominalPlant(NonlinearPlant):
    """The plant stepped by the agents' own prediction map Φ: the nominal closed loop of the guarantees."""

    def __init__(self, scenario, step_map) -> None:
        super().__init__(scenario.model, scenario.sample_time)
        self._map = step_map

    def step(self, x: np.ndarray, u: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self._map(x, u), float).ravel() + (0.0 if w is None else w)


@settings(max_examples=200, deadline=None)
@given(direction=st.lists(st.floats(-1, 1), min_size=6, max_size=6), radius=st.floats(0, 1))
def test_the_level_set_is_invariant_with_decrease(direction, radius) -> None:
    """Any point of X_f: κ keeps its input and state rows and V_f(Φ(x, κ(x))) ≤ V_f(x) − ℓ(x, κ(x))."""
    m = model()
    region = m.region
    d = np.asarray(direction)
    if np.linalg.norm(d) < 1e-6:
        return
    tilde = np.sqrt(radius * region.level / (d @ region.P @ d)) * d      # V_f = radius · c
    x = region.setpoint + tilde
    u = region.law(x)
    assert np.all(u >= m.u_lower - 1e-9) and np.all(u <= m.u_upper + 1e-9)
    assert np.all(x >= m.x_lower) and np.all(x <= m.x_upper)
    after = np.asarray(m.step_map(x, u), float).ravel()
    stage = float(m.stage(x, u, region.setpoint, region.input_setpoint))
    assert region.value(after) <= region.value(x) - stage + 1e-12 * (1 + region.value(x))


def test_the_region_is_the_largest_verified_level_and_refuses_a_setpoint_on_a_limit() -> None:
    """The accepted level is positive and inside the sets' level; the sets' level is exact for a box; a setpoint
    on a limit has no level set (one-line refusal)."""
    m = model()
    region = m.region
    assert 0 < region.level <= region.level_of_sets and region.lipschitz > 0
    assert np.allclose(m.gain, region.K)
    P_inverse = np.linalg.inv(region.P)
    problem = RegionProblem(m.step_map, m.stage, region.setpoint, region.input_setpoint, np.eye(6), np.eye(3),
                            m.x_lower, m.x_upper, m.u_lower, m.u_upper)
    widest = np.sqrt(region.level_of_sets * np.diag(P_inverse))           # the level's bounding box
    inputs = np.sqrt(region.level_of_sets * np.einsum("ij,jk,ik->i", region.K, P_inverse, region.K))
    assert np.isclose(min(np.min(m.x_upper - widest), np.min(m.u_upper - inputs)), 0.0, atol=1e-9)
    assert sets_level(P_inverse, region.K, region.setpoint, region.input_setpoint, problem) == \
        pytest.approx(region.level_of_sets)
    on_limit = RegionProblem(m.step_map, m.stage, region.setpoint, region.input_setpoint, np.eye(6), 0.1 * np.eye(3),
                             np.zeros(6), m.x_upper, m.u_lower, m.u_upper)
    with pytest.raises(ValueError, match="on a state or input limit"):
        terminal_region(on_limit)


def test_other_nonlinear_schemes_refuse_the_terminal_set() -> None:
    with pytest.raises(ScenarioError, match="controller.terminal_set: not allowed .* schemes with one: horizons"):
        scenario(24, "sensitivity").design()


def test_the_terminal_row_holds_along_the_closed_loop() -> None:
    """three_mass_horizons (N = 24, N_c = 4, 12, 8) with the terminal set: every applied plan ends in X_f on the
    agents' model, and the true plant keeps every limit."""
    s = scenario()
    m = model()
    result = simulate(s.design(), s.plant(), s.initial_state, SimulationSettings(
        "horizons", 6, StoppingRule(4, 1e-6), scheme_settings=s.controller.scheme_settings))
    assert np.max(result.violation) <= 1e-9 and not np.any(result.infeasible)
    for k in range(6):
        end = m.predict(result.x[k], result.plan_inputs[k].ravel())[-1]
        assert m.region.value(end) <= m.region.level * (1 + ROW), k
    assert np.all(result.counter("repairs")[1:] == 0)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(direction=st.lists(st.floats(-1, 1), min_size=6, max_size=6), scale=st.floats(0.5, 4.0),
       supervisor=st.sampled_from(("weights", "dominant")))
def test_recursive_feasibility_from_random_feasible_states(direction, scale, supervisor) -> None:
    """N = 8 on the nominal plant (Φ itself): from a random state around X_f (up to 4× its level) that step 0 can
    make feasible, no later step needs a repair, every row holds and every applied plan ends in X_f."""
    d = np.asarray(direction)
    if np.linalg.norm(d) < 1e-6:
        return
    s, m = scenario(8), model(8)
    region = m.region
    x0 = region.setpoint + np.sqrt(scale * region.level / (d @ region.P @ d)) * d
    if np.any(x0 < m.x_lower) or np.any(x0 > m.x_upper):
        return
    chosen = HorizonSettings((2, 8, 4), supervisor)
    result = simulate(s.design(), NominalPlant(s, m.step_map), x0, SimulationSettings(
        "horizons", 4, StoppingRule(3, 0.0), scheme_settings=chosen))
    first = m.predict(x0, result.plan_inputs[0].ravel())
    if m.slack(x0, result.plan_inputs[0].ravel()) < -ROW:
        event("no feasible plan at step 0")
        return
    event("closed loop checked")
    assert first.shape == (9, 6)
    assert np.all(result.counter("repairs")[1:] == 0)
    assert np.max(result.violation) <= 1e-9
    for k in range(4):
        assert m.slack(result.x[k], result.plan_inputs[k].ravel()) >= -ROW, k
