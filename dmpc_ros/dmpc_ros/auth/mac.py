"""HMAC-SHA256 (RFC 2104, FIPS 198-1) of a serialized message, from the standard library.

The tag covers a kind label and the message's bytes: the label separates message types, so the tag of one kind of
message can never pass as the tag of another whose bytes happen to be equal.
"""
from __future__ import annotations

import hashlib
import hmac

MAC_SIZE = hashlib.sha256().digest_size   # 32 bytes


def message_mac(key: bytes, kind: str, payload: bytes) -> bytes:
    """The 32-byte HMAC-SHA256 tag of `payload` (a message serialized with its mac field empty) as a `kind`."""
    return hmac.new(key, kind.encode() + b"\0" + payload, hashlib.sha256).digest()


def mac_matches(key: bytes, kind: str, payload: bytes, tag: bytes) -> bool:
    """Whether `tag` is the tag of `payload` as a `kind` under `key` (compared in constant time)."""
    return hmac.compare_digest(message_mac(key, kind, payload), bytes(tag))
