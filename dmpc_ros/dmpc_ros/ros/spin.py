"""Running a node: a single-threaded executor driven by spin_once, clean exit on SIGINT/SIGTERM or finalize."""
from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def spin_node(node: Node, done: Callable[[], bool] = lambda: False) -> None:
    """Spin until shutdown (signal), until done() holds, then destroy the node and shut rclpy down."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not done():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
