"""A node's ROS parameters declared from the one table (scenarios/parameters.py): descriptors with the table's
description, range and read-only flag, and the table's checks on every value rclpy's ranges cannot express
(choices, an open lower end, a parameter without a range) — at declaration time through `check_parameters` (a node
calls it where a bad value should fail, e.g. configure) and at `ros2 param set` through a set-parameters callback.
"""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter as RosParameter

from ..scenarios.parameters import PARAMETERS, Parameter, node_parameters

ARRAY_TYPES = {list[str]: RosParameter.Type.STRING_ARRAY, list[int]: RosParameter.Type.INTEGER_ARRAY}


def descriptor(parameter: Parameter) -> ParameterDescriptor:
    """The table row as a ParameterDescriptor; the range covers an override's unset value (0, negative: the
    scenario's) and is left out when the table gives no upper end."""
    described = ParameterDescriptor(description=parameter.help, read_only=parameter.read_only)
    if parameter.choices:
        described.additional_constraints = f"one of {', '.join(parameter.choices)}"
    low, high = parameter.low, parameter.high
    if low is None or high is None or parameter.type not in (int, float):
        return described
    unset = parameter.unset
    if unset is not None:
        low = min(low, unset)
        if parameter.type is float and unset < 0:   # any negative value is unset: no range can say it
            return described
    if parameter.type is int:
        described.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    else:
        described.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return described


def declare_parameters(node: Node, kind: str) -> None:
    """Declare every parameter the table gives `kind` (agent, plant, lifecycle_manager, fake_robot), then refuse
    `ros2 param set` values the table does not allow (one line naming the parameter, the value and the rule)."""
    for parameter in node_parameters(kind):
        value = ARRAY_TYPES[parameter.type] if parameter.default is None else parameter.default
        node.declare_parameter(parameter.name, value, descriptor(parameter))
    node.add_on_set_parameters_callback(lambda changes: _checked(changes, kind))


def _checked(changes: list[RosParameter], kind: str) -> SetParametersResult:
    for change in changes:
        parameter = PARAMETERS.get(change.name)
        if parameter is not None and kind in parameter.nodes:
            problem = parameter.problem(change.value)
            if problem:
                return SetParametersResult(successful=False, reason=(
                    f"parameter {change.name}: {change.value!r} is not allowed: {problem}"))
    return SetParametersResult(successful=True)


def parameter_values(node: Node, kind: str) -> dict:
    """Every table parameter of `kind` by name (an array given no value: None)."""
    values = {}
    for parameter in node_parameters(kind):
        try:
            values[parameter.name] = node.get_parameter(parameter.name).value
        except ParameterUninitializedException:
            values[parameter.name] = None
    return values


def check_parameters(node: Node, kind: str) -> dict:
    """parameter_values, each checked against the table (values given at start-up bypass the set-parameters
    callback); ValueError 'parameter <name>: <value> is not allowed: …'."""
    values = parameter_values(node, kind)
    for name, value in values.items():
        if value is not None:
            PARAMETERS[name].check_node_value(value)
    return values
