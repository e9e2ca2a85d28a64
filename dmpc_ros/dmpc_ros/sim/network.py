"""In-memory network between agents, in simulated time: per-link latency [s], seeded random drops of single
messages, and link outages: with outage_probability a link is down for a whole control step (every plan of that step
on it is lost), never more than max_outage_steps steps in a row (the fault bound D tube DMPC is built for), and never
in step 0 (the start-up exchange every agent needs once, as the ROS bring-up provides).

Lossy links between hosts (`hosts`, `link_loss`): the agents are assigned to hosts; links within a host are
lossless (one machine's loopback: DDS loses nothing there), and each message on a link between two hosts, in each
direction, meets a lossy network with probability `link_loss` of losing a transmission, drawn from the link's own
seeded generator (so a run's losses depend on the seed only). What a lost UDP packet does to a plan depends on the
plans' DDS QoS (the agent parameter plan_qos), and `loss_model` says which one is modelled:
- best_effort (default): a lost packet is a lost plan (a plan fits in one RTPS datagram here), so the message is
  dropped with probability link_loss;
- reliable: the writer retransmits until the reader has it, so a loss is a delay, not a loss: each lost
  transmission delays the message by `retransmit_delay` [s] (the NACK/heartbeat round trip; K lost tries, K
  geometric with P(K ≥ k) = link_loss^k, add K · retransmit_delay), and the reader delivers in order, so a message
  never overtakes an earlier one on its link (head-of-line blocking).

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

LOSS_MODELS = ("best_effort", "reliable")   # the plans' DDS reliability a lossy link is modelled for
DEFAULT_RETRANSMIT_DELAY = 0.1   # [s] per lost transmission under reliable (a NACK and a repair, a few heartbeats)


def host_map(hosts) -> dict[int, int]:
    """agent → host index of an assignment of agents to hosts (a sequence of agent-id sequences); ValueError when an
    agent id is not a non-negative integer or is on two hosts."""
    where: dict[int, int] = {}
    for h, members in enumerate(hosts):
        for agent in members:
            if isinstance(agent, bool) or not isinstance(agent, (int, np.integer)) or agent < 0:
                raise ValueError(f"hosts: agent {agent!r} on host {h} is not allowed: must be an agent id ≥ 0")
            if int(agent) in where:
                raise ValueError(f"hosts: agent {agent} on hosts {where[int(agent)]} and {h} is not allowed: each "
                                 "agent runs on one host")
            where[int(agent)] = h
    return where


@dataclass
class InMemoryNetwork:
    latency: dict[tuple[int, int], float] = field(default_factory=dict)   # (sender, receiver) → [s]
    default_latency: float = 0.0
    drop_probability: float = 0.0
    seed: int = 0
    outage_probability: float = 0.0
    max_outage_steps: int = 0        # D: longest run of consecutive down steps of one link
    hosts: tuple[tuple[int, ...], ...] | None = None   # agents per host (None, or an agent not listed: its own host)
    link_loss: float = 0.0           # per message and direction on a link between two hosts
    loss_model: str = "best_effort"  # LOSS_MODELS: lost (best_effort) or retransmitted, i.e. late (reliable)
    retransmit_delay: float = DEFAULT_RETRANSMIT_DELAY   # [s] per lost transmission (reliable)
    messages: int = 0
    bytes: int = 0
    dropped: int = 0
    retransmissions: int = 0         # lost transmissions repaired (reliable)

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_probability < 1.0:
            raise ValueError(f"drop_probability: {self.drop_probability} is not allowed: must be in [0, 1)")
        if not 0.0 <= self.outage_probability <= 1.0 or self.max_outage_steps < 0:
            raise ValueError(f"outage_probability, max_outage_steps: {self.outage_probability}, "
                             f"{self.max_outage_steps} are not allowed: must be in [0, 1] and ≥ 0")
        if not 0.0 <= self.link_loss < 1.0:
            raise ValueError(f"link_loss: {self.link_loss} is not allowed: must be in [0, 1)")
        if self.loss_model not in LOSS_MODELS:
            raise ValueError(f"loss_model: {self.loss_model!r} is not allowed: must be one of {', '.join(LOSS_MODELS)}")
        if not (math.isfinite(self.retransmit_delay) and self.retransmit_delay >= 0):
            raise ValueError(f"retransmit_delay: {self.retransmit_delay} is not allowed: must be a finite number of "
                             "seconds ≥ 0")
        self._host = host_map(self.hosts or ())
        for link, value in [(None, self.default_latency), *self.latency.items()]:
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"latency{'' if link is None else f' of link {link}'}: {value} is not allowed: "
                                 "must be a finite number of seconds ≥ 0")
        self._drop_rngs: dict[tuple[int, int], np.random.Generator] = {}     # per link: the draws of one link do
        self._outage_rngs: dict[tuple[int, int], np.random.Generator] = {}   # not depend on the others' traffic
        self._loss_rngs: dict[tuple[int, int], np.random.Generator] = {}
        self._last_due: dict[tuple[int, int], float] = {}   # reliable: the newest delivery time per link (in order)
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
            if self.lossy(plan.agent, receiver):
                tries = self._lost_tries(plan.agent, receiver)
                if tries and self.loss_model == "best_effort":
                    self.dropped += 1
                    continue
                if self.loss_model == "reliable":
                    self.retransmissions += tries
                    due = max(due + tries * self.retransmit_delay, self._last_due.get((plan.agent, receiver), due))
                    self._last_due[(plan.agent, receiver)] = due
            heapq.heappush(self._queue, (due, next(self._order), receiver, plan))

    def host(self, agent: int) -> int | tuple[str, int]:
        """The host `agent` runs on (an agent the assignment does not list: a host of its own)."""
        return self._host.get(agent, ("own", agent))

    def lossy(self, sender: int, receiver: int) -> bool:
        """Whether the link sender → receiver crosses hosts and loses messages (links within a host never do)."""
        return self.link_loss > 0 and self.host(sender) != self.host(receiver)

    def _lost_tries(self, sender: int, receiver: int) -> int:
        """How many transmissions of one message the link loses: best_effort sends once (0 or 1), reliable tries
        until one gets through (geometric; link_loss < 1 so it ends)."""
        rng = self._link_rng(self._loss_rngs, 3, sender, receiver)
        lost = 0
        while rng.random() < self.link_loss:
            lost += 1
            if self.loss_model == "best_effort":
                break
        return lost

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
