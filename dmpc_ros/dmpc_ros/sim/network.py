"""In-memory network between agents, in simulated time: per-link latency [s], seeded random drops of single
messages, and link outages: with outage_probability a link is down for a whole control step (every plan of that step
on it is lost), never more than max_outage_steps steps in a row (the fault bound D tube DMPC is built for), and never
in step 0 (the start-up exchange every agent needs once, as the ROS bring-up provides).

A plan sent at time t over a link with latency d reaches the receiver's negotiator at t + d (messages due at the same
time arrive in the order they were sent). What a receiver does with a plan that is late or lost is not decided here:
its Negotiator (coordination/negotiator.py) waits for it until its iteration timeout and then uses a substitute,
exactly as the ROS agent node does.
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..coordination.plan import Plan


@dataclass
class InMemoryNetwork:
    latency: dict[tuple[int, int], float] = field(default_factory=dict)   # (sender, receiver) → [s]
    default_latency: float = 0.0
    drop_probability: float = 0.0
    seed: int = 0
    outage_probability: float = 0.0
    max_outage_steps: int = 0        # D: longest run of consecutive down steps of one link
    messages: int = 0
    bytes: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_probability < 1.0:
            raise ValueError(f"drop_probability: {self.drop_probability} is not allowed: must be in [0, 1)")
        if not 0.0 <= self.outage_probability <= 1.0 or self.max_outage_steps < 0:
            raise ValueError(f"outage_probability, max_outage_steps: {self.outage_probability}, "
                             f"{self.max_outage_steps} are not allowed: must be in [0, 1] and ≥ 0")
        for link, value in [(None, self.default_latency), *self.latency.items()]:
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"latency{'' if link is None else f' of link {link}'}: {value} is not allowed: "
                                 "must be a finite number of seconds ≥ 0")
        self._drop_rngs: dict[tuple[int, int], np.random.Generator] = {}     # per link: the draws of one link do
        self._outage_rngs: dict[tuple[int, int], np.random.Generator] = {}   # not depend on the others' traffic
        self._down: dict[tuple[int, int], dict[int, bool]] = {}   # link → step → down
        self._queue: list[tuple[float, int, int, Plan]] = []       # (due, order, receiver, plan)
        self._order = itertools.count()

    def send(self, plan: Plan, receivers, now: float) -> None:
        """Send `plan` at time `now` to each receiver (counted per receiver, lost or not)."""
        for receiver in sorted(receivers):
            self.messages += 1
            self.bytes += plan.nbytes()
            if self.link_down(plan.agent, receiver, plan.step) or \
                    (self.drop_probability and self._link_rng(self._drop_rngs, 2, plan.agent, receiver).random()
                     < self.drop_probability):
                self.dropped += 1
                continue
            due = now + self.latency.get((plan.agent, receiver), self.default_latency)
            heapq.heappush(self._queue, (due, next(self._order), receiver, plan))

    def next_delivery(self) -> float | None:
        """When the next message arrives (None: nothing in flight)."""
        return self._queue[0][0] if self._queue else None

    def deliver(self) -> tuple[float, int, Plan]:
        """The next message: (arrival time, receiver, plan)."""
        due, _, receiver, plan = heapq.heappop(self._queue)
        return due, receiver, plan

    def link_down(self, sender: int, receiver: int, step: int) -> bool:
        """Whether the link sender → receiver is down during control step `step` (decided once per link and step,
        in step order from the link's own generator, so a run is reproducible from the seed)."""
        if not self.outage_probability or self.max_outage_steps == 0 or step == 0:
            return False
        history = self._down.setdefault((sender, receiver), {0: False})
        rng = self._link_rng(self._outage_rngs, 1, sender, receiver)
        for k in range(len(history), step + 1):
            run = 0
            while run < k and history[k - 1 - run]:
                run += 1
            history[k] = run < self.max_outage_steps and bool(rng.random() < self.outage_probability)
        return history[step]

    def _link_rng(self, generators: dict, stream: int, sender: int, receiver: int) -> np.random.Generator:
        """The seeded generator of one link and one kind of fault: a run's faults depend on the seed only, not on
        the order in which agents happen to send (event order differs between drivers and schemes)."""
        link = (sender, receiver)
        if link not in generators:
            generators[link] = np.random.default_rng([self.seed, stream, sender, receiver])
        return generators[link]
