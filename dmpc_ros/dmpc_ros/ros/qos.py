"""QoS profiles per topic, chosen for the two ways the stack runs.

- plans, lock-step (one machine, deterministic runs): RELIABLE + TRANSIENT_LOCAL, keep-last 100 — every
  iteration's plan must arrive, also to a neighbour whose subscription matched late (agents are activated one
  after another); a depth of 100 covers a neighbour running a few iterations ahead.
- plans, real-time / lossy links: BEST_EFFORT, keep-last 10 — reliable retransmission stalls for ~100 ms on
  lossy links (measured: p99 184 ms vs 4.4 ms at 20 % loss); plans are tagged (step, iteration, stamp) and the
  agent uses the newest one within its deadline instead.
- plans, best_effort_deadline: BEST_EFFORT, keep-last 10, and the DDS deadline policy at one sample time: a
  neighbour whose plan topic is silent for a whole period is reported by the middleware (requested-deadline-missed
  event), counted (`plan_deadlines`) and, in real time, given up for the step at once (`Negotiator.silent`) instead
  of at the iteration timeout. Normal traffic never misses it: an agent publishes at least one plan per step. Real
  time only (a step budget): a lock-step step takes what the team needs, not Δt, so there it is plain best_effort.
- measured states: RELIABLE + TRANSIENT_LOCAL, depth 1 — an agent activated after the plant still gets the
  current state.
- control inputs: RELIABLE, depth 10. Status and heartbeat: BEST_EFFORT, depth 10. /clock: as rclpy expects.
- the run recorder: each topic's reliability and durability, but its own keep-last depth (`recording_qos`): a
  subscriber's history is the queue between the middleware and a callback, and the recorder, one Python node
  among the run's processes, falls behind under CPU load; with the nodes' depth 1 it lost states
  (bench/bag_completeness.py).
"""
from __future__ import annotations

from rclpy.duration import Duration
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from ..scenarios.parameters import PLAN_QOS as PLAN_QOS_CHOICES   # the agent parameter plan_qos


def plan_qos(choice: str, sample_time: float | None = None) -> QoSProfile:
    """The plan topics' profile for the agent parameter plan_qos (`sample_time` [s]: the deadline period of
    best_effort_deadline, given in real time; the recorder, which only listens, passes None: no deadline)."""
    if choice not in PLAN_QOS_CHOICES:
        raise ValueError(f"plan_qos '{choice}' is not allowed: must be one of {', '.join(PLAN_QOS_CHOICES)}")
    if choice == "reliable":
        return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=100, reliability=QoSReliabilityPolicy.RELIABLE,
                          durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    profile = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT)
    if choice == "best_effort_deadline" and sample_time is not None:
        profile.deadline = Duration(seconds=sample_time)
    return profile


def deadline_events(profile: QoSProfile, on_missed) -> SubscriptionEventCallbacks | None:
    """With a deadline in `profile`, the middleware's requested-deadline-missed event calls `on_missed()`."""
    if profile.deadline.nanoseconds <= 0:
        return None
    return SubscriptionEventCallbacks(deadline=lambda _info: on_missed())


STATE_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                       durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
CONTROL_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
STATUS_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT)
# Robot mode: a robot's odometry or pose (best effort matches both kinds of publisher; keep the newest few)
ROBOT_STATE_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=5, reliability=QoSReliabilityPolicy.BEST_EFFORT)


def recording_qos(profile: QoSProfile, depth: int | None) -> QoSProfile:
    """The recorder's subscription to a topic published with `profile`: the same reliability and durability (so
    it matches), history keep-last `depth` (0: keep all; None: `profile` itself)."""
    if depth is None:
        return profile
    history = QoSHistoryPolicy.KEEP_ALL if depth == 0 else QoSHistoryPolicy.KEEP_LAST
    return QoSProfile(history=history, depth=max(depth, 1), reliability=profile.reliability,
                      durability=profile.durability)
