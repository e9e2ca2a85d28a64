"""In-memory network between agents: per-link delay (in negotiation iterations) and seeded random drops.

Time is the pair (step, iteration) flattened to a tick. A plan sent at tick t over a link with delay d is
delivered from tick t + d on (t + d + 1 for parallel schemes, whose agents read the previous iteration).
Receivers always see the newest delivered plan of each sender.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..coordination.plan import Plan

TICKS_PER_ITERATION = 2  # an iteration has a read tick and a send tick (see closed_loop)


@dataclass
class InMemoryNetwork:
    delay: dict[tuple[int, int], int] = field(default_factory=dict)   # (sender, receiver) → iterations
    default_delay: int = 0
    drop_probability: float = 0.0
    seed: int = 0
    messages: int = 0
    bytes: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_probability < 1.0:
            raise ValueError(f"drop_probability must be in [0, 1), got {self.drop_probability}")
        self._rng = np.random.default_rng(self.seed)
        self._pending: dict[int, list[tuple[int, Plan]]] = {}
        self._delivered: dict[int, dict[int, Plan]] = {}

    def send(self, plan: Plan, receivers: set[int] | frozenset[int], tick: int) -> None:
        for receiver in receivers:
            self.messages += 1
            self.bytes += plan.nbytes()
            if self.drop_probability and self._rng.random() < self.drop_probability:
                self.dropped += 1
                continue
            delay = self.delay.get((plan.agent, receiver), self.default_delay)
            self._pending.setdefault(receiver, []).append((tick + TICKS_PER_ITERATION * delay, plan))

    def inbox(self, receiver: int, tick: int) -> dict[int, Plan]:
        """Newest plan per sender among those deliverable at tick."""
        pending = self._pending.get(receiver, [])
        still = []
        box = self._delivered.setdefault(receiver, {})
        for due, plan in pending:
            if due <= tick:
                current = box.get(plan.agent)
                if current is None or (plan.step, plan.iteration) >= (current.step, current.iteration):
                    box[plan.agent] = plan
            else:
                still.append((due, plan))
        self._pending[receiver] = still
        return dict(box)
