"""Conversions between ROS messages and plain Python data (dicts of lists/numbers/strings)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def message_to_dict(message: Any) -> dict[str, Any]:
    """Recursively turn a ROS message into a dict of plain values (arrays become lists)."""
    result: dict[str, Any] = {}
    for name in message.get_fields_and_field_types():
        value = getattr(message, name)
        if hasattr(value, "get_fields_and_field_types"):
            result[name] = message_to_dict(value)
        elif hasattr(value, "tolist"):
            result[name] = value.tolist()
        elif isinstance(value, (list, tuple)):
            result[name] = [message_to_dict(v) if hasattr(v, "get_fields_and_field_types") else v for v in value]
        else:
            result[name] = value
    return result


def dict_to_message(message_type: type, values: dict[str, Any]) -> Any:
    """Build a message of message_type from a dict as produced by message_to_dict (nested dicts allowed)."""
    message = message_type()
    fields = message.get_fields_and_field_types()
    for name, value in values.items():
        if name not in fields:
            raise KeyError(f"{message_type.__name__} has no field '{name}'; fields: {', '.join(fields)}")
        current = getattr(message, name)
        if isinstance(value, dict):
            value = dict_to_message(type(current), value)
        setattr(message, name, value)
    return message


class MalformedPlan(ValueError):
    """A neighbour's PredictedTrajectory that cannot be used (wrong dimensions, non-finite values); the message is one
    capped line (a hostile layout string is not logged whole)."""

    def __init__(self, message: object = "") -> None:
        from ..scenarios.validation import one_line

        super().__init__(one_line(message))


def plan_to_message(plan, sample_time: float, stamp) -> "PredictedTrajectory":  # noqa: F821
    """dmpc_ros.coordination.Plan → dmpc_ros_msgs/PredictedTrajectory (flat row-major arrays)."""
    from dmpc_ros_msgs.msg import PredictedTrajectory

    message = PredictedTrajectory()
    message.header.stamp = stamp
    message.agent_id, message.step, message.iteration = plan.agent, plan.step, plan.iteration
    message.sample_time = float(sample_time)
    message.horizon = plan.inputs.shape[0]
    message.state_dim, message.input_dim = plan.states.shape[1], plan.inputs.shape[1]
    message.states = plan.states.ravel().tolist()
    message.inputs = plan.inputs.ravel().tolist()
    message.local_cost = float(plan.cost)
    message.feasible, message.converged, message.final = bool(plan.feasible), bool(plan.converged), bool(plan.final)
    if plan.data:
        message.algorithm_data = [float(v) for array in plan.data.values() for v in array.ravel()]
        message.algorithm_data_layout = ";".join(f"{name}={'x'.join(map(str, array.shape))}"
                                                 for name, array in plan.data.items())
    return message


def status_message(agent_id: int, step: int, statistics, plan, margin: float, stamp, *, messages_missing: int,
                   messages_late: int = 0, messages_rejected: int = 0, deadline_misses: int = 0,
                   watchdog_stops: int = 0, counters: Iterable[str] = (),
                   extra_counters: dict[str, float] | None = None) -> "AgentStatus":  # noqa: F821
    """An agent's step as dmpc_ros_msgs/AgentStatus: the generic fields every scheme has from its StepStatistics,
    final plan and constraint margin; the scheme's own counters by name (every name in `counters`, the scheme's
    declared ones, 0 when not reported this step, so each is a continuous series; then any other reported); and what
    the negotiator counts (plans missing past the deadline, late and rejected on arrival — added to the agent's —,
    robot-mode deadline misses and stops). `extra_counters`: the node's own counts by name (authentication
    refusals), after the scheme's."""
    from dmpc_ros_msgs.msg import AgentStatus

    from ..coordination.safe_input import INPUT_SOURCES

    reported, declared = {**statistics.counters, **(extra_counters or {})}, tuple(counters)
    names = list(declared) + [name for name in reported if name not in declared]
    message = AgentStatus(
        agent_id=agent_id, step=step, iterations=statistics.iterations,
        solve_time=float(sum(statistics.solve_times)), primal_residual=float(statistics.primal_residual),
        dual_residual=float(statistics.dual_residual), cost=float(plan.cost),
        constraint_margin=float(margin) if math.isfinite(margin) else 0.0, fallbacks=statistics.fallbacks,
        messages_missing=messages_missing, messages_late=messages_late + statistics.messages_late,
        messages_rejected=messages_rejected + statistics.messages_rejected,
        infeasible_problems=statistics.infeasible, solver_failures=statistics.solver_failures,
        input_source=INPUT_SOURCES.index(statistics.input_source), data_exchanges=statistics.iterations,
        capped=bool(statistics.capped), residual=float(statistics.residual),
        counter_names=names, counter_values=[float(reported.get(name, 0.0)) for name in names],
        deadline_misses=deadline_misses, watchdog_stops=watchdog_stops)
    message.header.stamp = stamp
    return message


def message_to_plan(message, expected_horizon: int, expected_state_dim: int, expected_input_dim: int):
    """PredictedTrajectory → Plan, checking dimensions and finiteness; raises MalformedPlan saying what is wrong."""
    import numpy as np

    from ..coordination.plan import Plan

    N, n, m = message.horizon, message.state_dim, message.input_dim
    if (N, n, m) != (expected_horizon, expected_state_dim, expected_input_dim):
        raise MalformedPlan(f"plan of agent {message.agent_id} has N={N}, n_x={n}, n_u={m}; expected "
                            f"N={expected_horizon}, n_x={expected_state_dim}, n_u={expected_input_dim}")
    states, inputs = np.asarray(message.states, float), np.asarray(message.inputs, float)
    if states.size != (N + 1) * n or inputs.size != N * m:
        raise MalformedPlan(f"plan of agent {message.agent_id} carries {states.size} state and {inputs.size} "
                            f"input values; expected {(N + 1) * n} and {N * m}")
    if not (np.all(np.isfinite(states)) and np.all(np.isfinite(inputs)) and np.isfinite(message.local_cost)):
        raise MalformedPlan(f"plan of agent {message.agent_id} contains non-finite values")
    if not (math.isfinite(message.sample_time) and message.sample_time > 0):
        raise MalformedPlan(f"plan of agent {message.agent_id} has sample_time {message.sample_time}; a positive "
                            f"finite number of seconds is required")
    data = unpack_algorithm_data(message.agent_id, np.asarray(message.algorithm_data, float),
                                 message.algorithm_data_layout)
    return Plan(agent=message.agent_id, step=message.step, iteration=message.iteration,
                states=states.reshape(N + 1, n), inputs=inputs.reshape(N, m), cost=message.local_cost,
                feasible=message.feasible, converged=message.converged, final=message.final, data=data)


def unpack_algorithm_data(agent_id: int, values, layout: str) -> dict:
    """Arrays named in the layout 'name=RxC;name=RxC;…', in order, from the flat algorithm_data."""
    import numpy as np

    data, offset = {}, 0
    for entry in filter(None, layout.split(";")):
        name, _, shape_text = entry.partition("=")
        try:
            shape = tuple(int(v) for v in shape_text.split("x"))
        except ValueError:
            raise MalformedPlan(f"plan of agent {agent_id}: bad algorithm_data_layout entry '{entry}'") from None
        size = math.prod(shape)   # exact (numpy's product wraps around for absurd declared shapes)
        if not name or any(v < 0 for v in shape) or offset + size > values.size:
            raise MalformedPlan(f"plan of agent {agent_id}: algorithm_data_layout '{layout}' does not fit "
                                f"{values.size} values")
        if size == 0 and any(v > values.size for v in shape):   # an empty array of absurd dimensions
            raise MalformedPlan(f"plan of agent {agent_id}: algorithm_data_layout entry '{entry}' has a dimension "
                                f"beyond the {values.size} values carried")
        data[name] = values[offset:offset + size].reshape(shape)
        offset += size
    if offset != values.size:
        raise MalformedPlan(f"plan of agent {agent_id}: algorithm_data has {values.size} values, "
                            f"layout describes {offset}")
    if not np.all(np.isfinite(values)):
        raise MalformedPlan(f"plan of agent {agent_id} carries non-finite algorithm data")
    return data


def control_message(agent_id: int, step: int, u, law, stamp) -> "ControlInput":  # noqa: F821
    """An agent's input of `step` as dmpc_ros_msgs/ControlInput, with its fallback for the next step (`law`: (v, z,
    K) of Agent.next_step_law, or None)."""
    from dmpc_ros_msgs.msg import ControlInput

    message = ControlInput(agent_id=agent_id, step=step, input=[float(v) for v in u])
    if law is not None:
        message.next_input, message.next_state, message.next_gain = (list(map(float, a.ravel())) for a in law)
    message.header.stamp = stamp
    return message


def next_step_law(message) -> "NextStepLaw | None":  # noqa: F821
    """A ControlInput's fallback for the next step (sim/plant_inputs.NextStepLaw), None when it carries none; its
    sizes are the plant's to check (PlantInputs.offer)."""
    import numpy as np

    from ..sim.plant_inputs import NextStepLaw

    if not len(message.next_input):
        return None
    v, z = np.asarray(message.next_input, float), np.asarray(message.next_state, float)
    gain = np.asarray(message.next_gain, float)   # empty: no feedback; a wrong size stays flat and is refused
    if not gain.size:
        gain = np.zeros((v.size, z.size))
    elif gain.size == v.size * z.size:
        gain = gain.reshape(v.size, z.size)
    return NextStepLaw(int(message.step) + 1, v, z, gain)
