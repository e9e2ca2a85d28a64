"""Conversions between ROS messages and plain Python data (dicts of lists/numbers/strings)."""
from __future__ import annotations

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
