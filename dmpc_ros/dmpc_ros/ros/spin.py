"""Running a node: an executor driven by spin_once, clean exit on SIGINT/SIGTERM/SIGHUP or when the node is done.

A stop signal does not end a lifecycle node that a lifecycle manager still holds a client for: `ros2 launch` (and
a terminal's Ctrl-C) signals every process at once, and the node waits up to MANAGED_STOP_GRACE for the manager to
take it down in order (deactivate, clean up, shut down), then leaves. With no manager it leaves at once.

Two executors, chosen with DMPC_EXECUTOR (measured in bench/ros_negotiation.py): `events` (default;
rclpy.experimental.EventsExecutor, driven by spin_once because its spin() busy-waits and ignores signals in
this rclpy; it halved the negotiation iteration period of the 4-agent lock-step run) and `single`
(rclpy.executors.SingleThreadedExecutor). The multi-threaded executor is not offered:
its latency tail (p99 ~100 ms, measured here) breaks per-iteration deadlines.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ..process_group import STOP_SIGNALS

EXECUTORS = ("single", "events")
# The EventsExecutor counts a message when DDS announces it and takes it later; when a flooded keep-last queue has
# overwritten it meanwhile, the take finds nothing and the callback call raises this (found by the flood test).
TAKE_RACE = "Unable to convert call argument"


def make_executor(kind: str | None = None, context=None):
    kind = kind or os.environ.get("DMPC_EXECUTOR", "events")
    if kind not in EXECUTORS:
        raise ValueError(f"DMPC_EXECUTOR '{kind}' is not allowed: must be one of {', '.join(EXECUTORS)}")
    if kind == "events":
        from rclpy.experimental import EventsExecutor
        return EventsExecutor(context=context)
    return SingleThreadedExecutor(context=context)


SUPERVISOR_VARIABLE = "DMPC_SUPERVISOR_PID"   # set by the process group of `dmpc run` / `dmpc demo`


def supervisor_gone() -> bool:
    """True when the process that started this node and named itself in DMPC_SUPERVISOR_PID has died (the
    node was re-parented): a node `dmpc run` started must not outlive it, e.g. after a kill -9 of the runner."""
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    return supervisor is not None and os.getppid() != int(supervisor)


MANAGED_STOP_GRACE = 4.0   # [s] below launch's 5 s SIGTERM escalation


class _StopSignal:
    """SIGINT/SIGTERM/SIGHUP as init_node_process records them: whether it took them over, and when the first came."""
    installed = False
    at: float | None = None   # monotonic time

    @classmethod
    def record(cls, *_) -> None:
        cls.at = time.monotonic() if cls.at is None else cls.at


def init_node_process(argv: list[str] | None = None) -> None:
    """rclpy.init for a node process, with the stop signals (SIGINT, SIGTERM, SIGHUP) recorded for spin_nodes
    instead of rclpy's handler (which would end the process before its lifecycle manager can take it down)."""
    rclpy.init(args=argv if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    _StopSignal.installed, _StopSignal.at = True, None
    for signum in STOP_SIGNALS:
        signal.signal(signum, _StopSignal.record)


def awaits_manager(node: Node) -> bool:
    """True while a lifecycle node is not finalized and some process (its manager) holds a change_state client."""
    return isinstance(node, LifecycleNode) and not getattr(node, "finished", False) and \
        node.count_clients(f"{node.get_fully_qualified_name()}/change_state") > 0


def stop_due(nodes: list[Node]) -> bool:
    """A stop was requested and no manager is left to take these nodes down (or it took too long)."""
    if _StopSignal.at is None:
        return False
    return time.monotonic() - _StopSignal.at > MANAGED_STOP_GRACE or not any(map(awaits_manager, nodes))


def spin_node(node: Node, done: Callable[[], bool] = lambda: False) -> None:
    """Spin until shutdown (signal), until done() holds or the supervisor died, then destroy the node and
    shut rclpy down."""
    spin_nodes([node], done)


def spin_once_taking(executor, timeout: float) -> bool:
    """executor.spin_once; False when the message it was to take was gone (TAKE_RACE: the executor is fine)."""
    try:
        executor.spin_once(timeout_sec=timeout)
    except RuntimeError as error:
        if TAKE_RACE not in str(error):
            raise
        return False
    return True


def spin_nodes(nodes: list[Node], done: Callable[[], bool] = lambda: False) -> None:
    """spin_node for several nodes of one process on one executor (the agent container)."""
    executor = make_executor()
    for node in nodes:
        executor.add_node(node)
    lost, reported = 0, 0.0
    try:
        while rclpy.ok() and not done() and not supervisor_gone() and not stop_due(nodes):
            if not spin_once_taking(executor, 0.1):
                lost += 1
                if time.monotonic() - reported > 1.0:
                    nodes[0].get_logger().warning(f"{lost} message(s) dropped by the middleware before they could "
                                                  "be taken (a flooded topic's queue overflowed)")
                    reported = time.monotonic()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        rclpy.try_shutdown()
        if _StopSignal.installed:   # leaving: a second Ctrl-C (terminal and launch both send one) is moot
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
