"""The plant's own guard (sim/plant_inputs.py): whatever arrives on the control topics, what the plant applies is
finite and inside every U_i; an input outside is refused, counted and never applied; a valid one is held exactly."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmpc_ros.scenarios import load_scenario
from dmpc_ros.sim.plant_inputs import PlantInputs

PLANTS = {name: load_scenario(name).plant() for name in ("mass_spring", "formation", "water_tanks")}

values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.floats(-2.0, 2.0), st.floats(-1e-3, 1e-3))


def inside(guard, u: np.ndarray) -> bool:
    H, h = guard.rows(None)
    return bool(np.all(np.isfinite(u)) and np.all(H @ u <= h + 1e-6 * (1 + np.max(np.abs(h)))))


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(sorted(PLANTS)), offers=st.lists(
    st.tuples(st.integers(0, 3), st.lists(values, min_size=0, max_size=3)), max_size=30))
def test_whatever_is_offered_the_applied_input_is_finite_and_inside_every_input_set(name, offers) -> None:
    plant = PLANTS[name]
    inputs = PlantInputs(plant.subsystems)
    refused = 0
    for agent, raw in offers:
        agent %= plant.num_agents
        before = inputs.held[agent].copy()
        reason = inputs.offer(agent, raw)
        if reason is None:
            np.testing.assert_array_equal(inputs.held[agent], np.asarray(raw, float))   # held exactly as sent
        else:
            refused += 1
            np.testing.assert_array_equal(inputs.held[agent], before)
            assert f"of agent {agent} refused" in reason
        u = inputs.inputs()
        assert all(inside(g, u[plant.input_slice(i)]) for i, g in enumerate(inputs.guards))
    assert inputs.refused == refused


def test_a_forged_50_newton_input_is_refused_and_the_last_valid_one_stays() -> None:
    inputs = PlantInputs(PLANTS["mass_spring"].subsystems)
    assert inputs.offer(1, [0.5]) is None
    reason = inputs.offer(1, [50.0])
    assert reason == "input [50.] of agent 1 refused: outside its input set by 49"
    assert inputs.offer(2, [1.0 + 1e-9]) is None             # within the agents' own clean-up tolerance
    np.testing.assert_array_equal(inputs.inputs(), [0.0, 0.5, 1.0 + 1e-9, 0.0])
    assert inputs.refused == 1


@pytest.mark.parametrize("raw, why", [([0.1, 0.2], "2 values (expected 1)"), ([float("nan")], "not finite")])
def test_malformed_inputs_name_what_is_wrong(raw, why) -> None:
    inputs = PlantInputs(PLANTS["mass_spring"].subsystems)
    assert inputs.offer(0, raw).endswith(why)
