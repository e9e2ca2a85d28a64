"""Every dmpc_ros_msgs type imports and survives CDR serialization with non-trivial values."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message

from dmpc_ros_msgs.msg import AgentStatus, ControlInput, PredictedTrajectory, SubsystemState

MESSAGE_TYPES = [PredictedTrajectory, SubsystemState, ControlInput, AgentStatus]

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
# CDR strings are NUL-terminated UTF-8: no NUL, no lone surrogates.
ros_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)
SCALARS = {
    "uint32": st.integers(0, 2**32 - 1),
    "double": finite,
    "boolean": st.booleans(),
    "string": ros_text,
    "sequence<double>": st.lists(finite, max_size=50),
}


def message_strategy(message_type: type) -> st.SearchStrategy:
    """Messages of message_type with every field drawn (headers with random stamps and frames)."""
    def build(values: dict) -> object:
        message = message_type()
        for name, value in values.items():
            if name == "header":
                message.header.stamp.sec, message.header.stamp.nanosec, message.header.frame_id = value
            else:
                setattr(message, name, value)
        return message

    fields = {}
    for name, type_name in message_type.get_fields_and_field_types().items():
        if type_name == "std_msgs/Header":
            fields[name] = st.tuples(st.integers(-2**31, 2**31 - 1), st.integers(0, 999_999_999), ros_text)
        else:
            assert type_name in SCALARS, f"{message_type.__name__}.{name}: no strategy for {type_name}"
            fields[name] = SCALARS[type_name]
    return st.fixed_dictionaries(fields).map(build)


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_round_trip(message_type: type) -> None:
    @settings(max_examples=60, deadline=None)
    @given(message_strategy(message_type))
    def round_trip(message) -> None:
        assert deserialize_message(serialize_message(message), message_type) == message

    round_trip()


def test_predicted_trajectory_layout_fields() -> None:
    """A 2-state, 1-input plan with N = 3 keeps its row-major arrays and metadata exactly."""
    plan = PredictedTrajectory(
        agent_id=7, step=123456, iteration=9, sample_time=0.05, horizon=3, state_dim=2, input_dim=1,
        states=[1.5, -2.25, 1e-300, -1e300, math.pi, -math.e, 0.0, -0.0],
        inputs=[10.0, -10.0, 3.25], local_cost=42.125, feasible=True, converged=False,
        algorithm_data=[0.5] * 6, algorithm_data_layout="admm:z=2x3",
    )
    plan.header.frame_id = "mass_spring"
    back = deserialize_message(serialize_message(plan), PredictedTrajectory)
    assert list(back.states) == list(plan.states)
    assert back.algorithm_data_layout == "admm:z=2x3" and back.header.frame_id == "mass_spring"
    assert (back.horizon + 1) * back.state_dim == len(back.states)
