"""Every dmpc_ros_msgs type imports and survives CDR serialization with non-trivial values; any plan message, however
hostile, is either a valid Plan or refused with MalformedPlan."""
from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message

from builtin_interfaces.msg import Time

from dmpc_ros.coordination.base import StepStatistics
from dmpc_ros.coordination.plan import Plan
from dmpc_ros.coordination.plan_book import PlanBook
from dmpc_ros.ros.conversions import MalformedPlan, message_to_plan, status_message
from dmpc_ros_msgs.msg import AgentStatus, ControlInput, PredictedTrajectory, SubsystemState

MESSAGE_TYPES = [PredictedTrajectory, SubsystemState, ControlInput, AgentStatus]

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
# CDR strings are NUL-terminated UTF-8: no NUL, no lone surrogates.
ros_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)
SCALARS = {
    "uint8": st.integers(0, 255),
    "uint32": st.integers(0, 2**32 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "double": finite,
    "boolean": st.booleans(),
    "string": ros_text,
    "sequence<double>": st.lists(finite, max_size=50),
    "sequence<string>": st.lists(ros_text, max_size=10),
    "sequence<uint8>": st.lists(st.integers(0, 255), max_size=40),
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


def test_status_message_has_the_generic_fields_and_the_schemes_counters_by_name() -> None:
    statistics = StepStatistics(iterations=3, solve_times=[0.1, 0.2], fallbacks=1, messages_rejected=2,
                                input_source="candidate", primal_residual=0.5)
    statistics.count("qp_fallbacks", 2)
    statistics.count("relaxed_steps")
    message = status_message(1, 7, statistics, SimpleNamespace(cost=4.5), math.inf, Time(sec=3), messages_missing=5,
                             messages_rejected=1, watchdog_stops=2, counters=("full_searches", "qp_fallbacks"))
    assert (message.agent_id, message.step, message.iterations, message.data_exchanges) == (1, 7, 3, 3)
    assert message.solve_time == pytest.approx(0.3) and message.cost == 4.5 and message.constraint_margin == 0.0
    assert (message.messages_missing, message.messages_rejected, message.watchdog_stops) == (5, 3, 2)
    assert message.input_source == AgentStatus.INPUT_CANDIDATE and message.header.stamp.sec == 3
    assert list(message.counter_names) == ["full_searches", "qp_fallbacks", "relaxed_steps"]   # declared, then others
    assert list(message.counter_values) == [0.0, 2.0, 1.0]
    assert deserialize_message(serialize_message(message), AgentStatus) == message


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


layouts = st.one_of(ros_text, st.lists(st.tuples(st.sampled_from(["z", "lambda", ""]),
                                                 st.lists(st.integers(-3, 10**10), min_size=1, max_size=3)),
                                       max_size=3).map(lambda entries: ";".join(
                                           f"{name}={'x'.join(map(str, shape))}" for name, shape in entries)))


@settings(max_examples=300, deadline=None)
@given(message_strategy(PredictedTrajectory), st.sampled_from([(20, 2, 1), (3, 1, 2)]), layouts,
       st.floats(allow_nan=True, allow_infinity=True))
def test_any_plan_message_becomes_a_valid_plan_or_is_refused_with_a_reason(message, dims, layout, value) -> None:
    N, n, m = dims
    if value == value and abs(value) < 1e9:   # half the cases: the right sizes, so the values and layout are reached
        message.horizon, message.state_dim, message.input_dim = N, n, m
        message.states, message.inputs = [value] * ((N + 1) * n), [value] * (N * m)
        message.local_cost = value
        message.algorithm_data_layout = layout
    try:
        plan = message_to_plan(message, N, n, m)
    except MalformedPlan as error:
        assert str(error).startswith(f"plan of agent {message.agent_id}")
        return
    assert plan.states.shape == (N + 1, n) and plan.inputs.shape == (N, m) and plan.finite


def test_the_plan_book_refuses_iterations_and_steps_no_run_can_have() -> None:
    agent = SimpleNamespace(required_plans=frozenset({1}), needs_current_iteration=lambda j: False)
    book = PlanBook(agent, max_iteration=10)
    plan = Plan(agent=1, step=0, iteration=3, states=np.zeros((4, 2)), inputs=np.zeros((3, 1)), cost=0.0,
                feasible=True, converged=False, final=False)
    assert book.inadmissible(plan) is None
    assert "has iteration 11; at most 10" in book.inadmissible(replace(plan, iteration=11))
    assert "more than 2 steps ahead of step 0" in book.inadmissible(replace(plan, step=3))
    book.begin(5)
    assert book.inadmissible(replace(plan, step=7)) is None and not book.record(replace(plan, step=3))
