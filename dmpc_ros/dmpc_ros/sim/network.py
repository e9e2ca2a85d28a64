"""In-memory network between agents: per-link delay (in negotiation iterations), seeded random drops of single
messages, and link outages: with outage_probability a link is down for a whole control step (every plan of that
step on it is lost), never more than max_outage_steps steps in a row (the fault bound D tube DMPC is built for),
and never in step 0 (the start-up exchange every agent needs once, as the ROS bring-up provides).

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
    outage_probability: float = 0.0
    max_outage_steps: int = 0        # D: longest run of consecutive down steps of one link
    messages: int = 0
    bytes: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_probability < 1.0:
            raise ValueError(f"drop_probability must be in [0, 1), got {self.drop_probability}")
        if not 0.0 <= self.outage_probability <= 1.0 or self.max_outage_steps < 0:
            raise ValueError(f"outage_probability must be in [0, 1] and max_outage_steps ≥ 0, got "
                             f"{self.outage_probability}, {self.max_outage_steps}")
        self._rng = np.random.default_rng(self.seed)
        self._outage_rng = np.random.default_rng([self.seed, 1])
        self._down: dict[tuple[int, int], dict[int, bool]] = {}   # link → step → down
        self._pending: dict[int, list[tuple[int, Plan]]] = {}
        self._delivered: dict[int, dict[int, Plan]] = {}

    def send(self, plan: Plan, receivers: set[int] | frozenset[int], tick: int) -> None:
        for receiver in receivers:
            self.messages += 1
            self.bytes += plan.nbytes()
            if self.link_down(plan.agent, receiver, plan.step) or \
                    (self.drop_probability and self._rng.random() < self.drop_probability):
                self.dropped += 1
                continue
            delay = self.delay.get((plan.agent, receiver), self.default_delay)
            self._pending.setdefault(receiver, []).append((tick + TICKS_PER_ITERATION * delay, plan))

    def link_down(self, sender: int, receiver: int, step: int) -> bool:
        """Whether the link sender → receiver is down during control step `step` (decided once per link and step,
        in step order, so a run is reproducible from the seed)."""
        if not self.outage_probability or self.max_outage_steps == 0 or step == 0:
            return False
        history = self._down.setdefault((sender, receiver), {0: False})
        for k in range(len(history), step + 1):
            run = 0
            while run < k and history[k - 1 - run]:
                run += 1
            history[k] = run < self.max_outage_steps and bool(self._outage_rng.random() < self.outage_probability)
        return history[step]

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
