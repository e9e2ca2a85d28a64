"""Who may send what: signing one's own messages and refusing the others' unless authentic, owned and fresh.

A receiver accepts a message of kind `kind` (e.g. "plan", "input") from agent `sender` only when
1. it is signed: a key id and a tag are there ("unsigned");
2. the key id is in the team keystore ("unknown_key");
3. the key belongs to `sender`: plans and inputs are accepted only from the agent that owns them ("wrong_owner");
4. the tag is the HMAC-SHA256 of the message's bytes under that key ("bad_mac");
5. its order (step, iteration, nonce) is newer, lexicographically, than the last accepted message of that kind from
   that sender ("replay": a copy, or an old message sent again).
Checks run in that order, and only a message that passes all of them moves the sender's last order, so no forged
message can shift what the genuine ones are compared with. Every refusal is counted by reason (and by sender).

The sender's nonce is a per-sender strictly increasing uint64: a counter started from the sender's clock in
nanoseconds (`NonceCounter`), so a restarted sender starts above whatever it sent before.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .keystore import Keystore, TeamKey, owner_name
from .mac import mac_matches, message_mac

REASONS = ("unsigned", "unknown_key", "wrong_owner", "bad_mac", "replay")
UINT64 = 2**64
EXPLANATIONS = {
    "unsigned": "carries no key id or no MAC (authentication is required)",
    "unknown_key": "names a key id not in the team keystore",
    "wrong_owner": "is signed with another agent's key",
    "bad_mac": "has a MAC that does not match its contents (forged or altered)",
    "replay": "is not newer (step, iteration, nonce) than one already accepted from that sender (a replay)",
}


class NonceCounter:
    """Strictly increasing uint64 nonces starting from `start` (the sender's clock at start-up [ns])."""

    def __init__(self, start: int) -> None:
        if not 0 <= start < UINT64:
            raise ValueError(f"nonce start {start} is not allowed: must be in 0..2^64-1")
        self._next = start

    def __call__(self) -> int:
        value = self._next
        if value >= UINT64:
            raise OverflowError("nonce counter exhausted (2^64 messages): restart with a new key")
        self._next += 1
        return value


@dataclass
class Signer:
    """An agent's side: its key and nonce counter. The ROS layer sets key_id and nonce on a message, serializes it
    with mac empty and puts `tag(kind, bytes)` in mac."""

    key: TeamKey
    nonce: NonceCounter

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def tag(self, kind: str, payload: bytes) -> bytes:
        return message_mac(self.key.key, kind, payload)


@dataclass
class Verifier:
    """A receiver's side: the team keystore, the last accepted order per (kind, sender), refusal counts."""

    keystore: Keystore
    last: dict[tuple[str, int], tuple[int, int, int]] = field(default_factory=dict)
    refused: Counter = field(default_factory=Counter)          # reason → refusals over the run
    by_sender: Counter = field(default_factory=Counter)        # (sender, reason) → refusals over the run
    _reported: Counter = field(default_factory=Counter)        # reason → refusals already taken (take_new)

    def check(self, kind: str, sender: int, key_id: str, order: tuple[int, int], nonce: int, tag: bytes,
              payload: bytes) -> str | None:
        """None when the message is accepted (the sender's last order then moves to it), else the reason (one of
        REASONS, counted). `order`: (step, iteration) of the message; `payload`: its bytes with mac empty."""
        reason = self._reason(kind, sender, key_id, (*order, nonce), tag, payload)
        if reason is None:
            self.last[(kind, sender)] = (*order, nonce)
        else:
            self.refused[reason] += 1
            self.by_sender[(sender, reason)] += 1
        return reason

    def _reason(self, kind: str, sender: int, key_id: str, order: tuple[int, int, int], tag: bytes,
                payload: bytes) -> str | None:
        if not key_id or not len(tag):
            return "unsigned"
        key = self.keystore.keys.get(key_id)
        if key is None:
            return "unknown_key"
        if key.owner != owner_name(sender):
            return "wrong_owner"
        if not mac_matches(key.key, kind, payload, tag):
            return "bad_mac"
        last = self.last.get((kind, sender))
        if last is not None and order <= last:
            return "replay"
        return None

    def take_new(self) -> dict[str, int]:
        """The refusals by reason since the last call (every reason, zeros included): one step's counts."""
        new = {reason: self.refused[reason] - self._reported[reason] for reason in REASONS}
        self._reported = Counter(self.refused)
        return new


def refusal_text(kind: str, sender: int, reason: str) -> str:
    """One line on a refused message: e.g. "refused plan on agent 1's topic: has a MAC that does not match …"."""
    return f"refused {kind} from agent {sender}: it {EXPLANATIONS[reason]}"
