"""QoS profiles per topic, chosen for the two ways the stack runs.

- plans, lock-step (one machine, deterministic runs): RELIABLE + TRANSIENT_LOCAL, keep-last 100 — every
  iteration's plan must arrive, also to a neighbour whose subscription matched late (agents are activated one
  after another); a depth of 100 covers a neighbour running a few iterations ahead.
- plans, real-time / lossy links: BEST_EFFORT, keep-last 10 — reliable retransmission stalls for ~100 ms on
  lossy links (measured: p99 184 ms vs 4.4 ms at 20 % loss); plans are tagged (step, iteration, stamp) and the
  agent uses the newest one within its deadline instead.
- measured states: RELIABLE + TRANSIENT_LOCAL, depth 1 — an agent activated after the plant still gets the
  current state.
- control inputs: RELIABLE, depth 10. Status and heartbeat: BEST_EFFORT, depth 10. /clock: as rclpy expects.
- the run recorder: each topic's reliability and durability, but its own keep-last depth (`recording_qos`): a
  subscriber's history is the queue between the middleware and a callback, and the recorder, one Python node
  among the run's processes, falls behind under CPU load; with the nodes' depth 1 it lost states
  (bench/bag_completeness.py).
"""
from __future__ import annotations

from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from ..scenarios.parameters import PLAN_QOS as PLAN_QOS_CHOICES   # the agent parameter plan_qos


def plan_qos(choice: str) -> QoSProfile:
    if choice not in PLAN_QOS_CHOICES:
        raise ValueError(f"plan_qos '{choice}' is not allowed: must be one of {', '.join(PLAN_QOS_CHOICES)}")
    if choice == "reliable":
        return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=100, reliability=QoSReliabilityPolicy.RELIABLE,
                          durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT)


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
