"""Authentication of plans and control inputs over ROS: the messages' side of `dmpc_ros.auth`.

A signed PredictedTrajectory or ControlInput carries `key_id`, `nonce` and `mac`: the HMAC-SHA256 of the message's
bytes without `mac`, under the sender's team key. The rules (which key may sign what, replays, counts) are
`auth.Verifier`'s; this module only turns messages into bytes.

The bytes are a canonical encoding of the fields, not the CDR that rclpy.serialization writes: CDR's alignment
padding is not initialized by that serializer, so the same plan serialized by the sender and by a receiver differed
in 10 of its 632 bytes (the padding after the header's frame_id and after the strings), and every genuine message
failed its MAC. The canonical form walks the fields in their declared order: integers as 9 little-endian bytes
(two's complement, wide enough for uint64), floats as IEEE-754 little-endian doubles, booleans as one byte,
strings as a length and UTF-8, arrays as a length and their elements, nested messages (the header) field by field.
"""
from __future__ import annotations

import array
import re
import struct
import sys
import time
from collections.abc import Callable
from functools import cache

from dmpc_ros_msgs.msg import ControlInput, PredictedTrajectory

from ..auth import REASONS, NonceCounter, Signer, Verifier, load_keystore
from ..auth.verifier import refusal_text

KINDS = {PredictedTrajectory: "plan", ControlInput: "input"}
UNSIGNED = ("mac",)   # the field the MAC goes in: not part of the signed bytes
FLOATS = ("double", "float", "float64", "float32")
INTEGERS = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "octet", "char", "byte")
LITTLE_ENDIAN = sys.byteorder == "little"


def canonical_bytes(message, skip: tuple[str, ...] = UNSIGNED) -> bytes:
    """The message's fields (but `skip`) in a deterministic encoding (see the module's docstring)."""
    parts: list[bytes] = []
    for name, encode in _field_encoders(type(message), skip):
        encode(getattr(message, name), parts)
    return b"".join(parts)


@cache
def _field_encoders(message_type: type, skip: tuple[str, ...] = ()) -> tuple[tuple[str, Callable], ...]:
    """Per field of the type, in declared order, its encoder (chosen once per type from the declared field type)."""
    return tuple((name, _encoder(kind)) for name, kind in message_type.get_fields_and_field_types().items()
                 if name not in skip)


def _encoder(kind: str) -> Callable:
    if kind in FLOATS:
        return lambda value, parts: parts.append(struct.pack("<d", value))
    if kind in INTEGERS:
        return lambda value, parts: parts.append(value.to_bytes(9, "little", signed=True))
    if kind == "boolean":
        return lambda value, parts: parts.append(b"\1" if value else b"\0")
    if kind == "string":
        return _encode_text
    sequence = re.fullmatch(r"sequence<(\w+)(?:, \d+)?>|(\w+)\[\d+\]", kind)
    element = sequence and (sequence[1] or sequence[2])
    if element in FLOATS:
        return _encode_floats
    if element in ("uint8", "octet", "byte"):
        return lambda value, parts: parts.extend((_length(len(value)), bytes(value)))
    return _encode   # nested messages, other arrays: by value


def _length(count: int) -> bytes:
    return count.to_bytes(8, "little")


def _encode_text(value: str, parts: list[bytes]) -> None:
    text = value.encode("utf-8", "surrogatepass")
    parts += [_length(len(text)), text]


def _encode_floats(value, parts: list[bytes]) -> None:
    if isinstance(value, array.array) and value.typecode == "d" and LITTLE_ENDIAN:
        parts += [_length(len(value)), value.tobytes()]
    else:
        parts += [_length(len(value)), struct.pack(f"<{len(value)}d", *value)]


def _encode(value, parts: list[bytes]) -> None:
    """Any field value, by its Python type (the slow path: nested messages, integer and string arrays)."""
    if hasattr(value, "get_fields_and_field_types"):
        for name, encode in _field_encoders(type(value)):
            encode(getattr(value, name), parts)
    elif isinstance(value, bool):
        parts.append(b"\1" if value else b"\0")
    elif isinstance(value, int):
        parts.append(value.to_bytes(9, "little", signed=True))
    elif isinstance(value, float):
        parts.append(struct.pack("<d", value))
    elif isinstance(value, str):
        _encode_text(value, parts)
    elif isinstance(value, (bytes, bytearray)) or (isinstance(value, array.array) and value.typecode == "B"):
        parts += [_length(len(value)), bytes(value)]
    else:   # integer arrays, lists, tuples, numpy arrays
        items = list(value)
        parts.append(_length(len(items)))
        for item in items:
            _encode(item.item() if hasattr(item, "item") else item, parts)


class MessageAuthentication:
    """One node's signer (an agent: its own key) and verifier (every team key)."""

    def __init__(self, keystore_directory: str, agents: int, own_agent: int | None = None) -> None:
        keystore = load_keystore(keystore_directory)   # KeystoreError (a ValueError): one line
        keystore.require(agents)
        self.signer = None if own_agent is None else Signer(keystore.key_of(own_agent), NonceCounter(time.time_ns()))
        self.verifier = Verifier(keystore)

    def sign(self, message) -> None:
        """Set the message's key_id, a fresh nonce and its MAC."""
        signer = self.signer
        message.key_id, message.nonce = signer.key_id, signer.nonce()
        message.mac = signer.tag(KINDS[type(message)], canonical_bytes(message))

    def refusal(self, message, sender: int) -> tuple[str, str] | None:
        """None when `message` (claiming agent `sender`) is authentic, owned by the sender and fresh; else a one-line
        warning and its throttling topic (one per sender and reason), counted by the verifier."""
        kind = KINDS[type(message)]
        reason = self.verifier.check(kind, sender, message.key_id, (message.step, getattr(message, "iteration", 0)),
                                     message.nonce, bytes(message.mac), canonical_bytes(message))
        return None if reason is None else (refusal_text(kind, sender, reason), f"auth:{sender}:{reason}")

    def step_counters(self, kind: str) -> dict[str, float]:
        """The refusals since the last call, as AgentStatus counters named <kind>s_refused_<reason>."""
        return {f"{kind}s_refused_{reason}": float(count) for reason, count in self.verifier.take_new().items()}

    def totals(self) -> dict[str, int]:
        """Refusals over the run by reason (every reason)."""
        return {reason: int(self.verifier.refused[reason]) for reason in REASONS}


def authentication_of(values: dict, scenario, agents: int, own_agent: int | None = None) \
        -> MessageAuthentication | None:
    """The node's authentication from its parameters `authenticate` and `keystore` and the scenario's security
    section (either may require it); None when off. ValueError (one line) when on without a usable keystore."""
    security = scenario.security
    keystore = values.get("keystore") or security.keystore
    if not (values.get("authenticate") or security.enabled or keystore):
        return None
    if not keystore:
        raise ValueError("parameter keystore: '' is not allowed: authentication is required (parameter authenticate "
                         "or security.authenticate) and needs the team keystore (dmpc keys create DIR --agents M)")
    return MessageAuthentication(keystore, agents, own_agent)
