"""A test-side ROS participant: lifecycle service calls, publishers and recording subscriptions, spun by hand."""
from __future__ import annotations

import time
from collections import defaultdict

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor


class RosClient:
    def __init__(self, name: str = "test_client") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list] = defaultdict(list)

    def subscribe(self, message_type, topic: str, qos) -> list:
        self.node.create_subscription(message_type, topic, lambda m: self.received[topic].append(m), qos)
        return self.received[topic]

    def publisher(self, message_type, topic: str, qos):
        return self.node.create_publisher(message_type, topic, qos)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def spin_until(self, condition, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < end, f"timed out after {timeout} s waiting for {what}"
            self.executor.spin_once(timeout_sec=0.01)

    def call(self, service_type, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
        future = client.call_async(request)
        self.spin_until(future.done, timeout, name)
        self.node.destroy_client(client)
        return future.result()

    def change_state(self, node: str, transition: int) -> bool:
        return self.call(ChangeState, f"{node}/change_state", ChangeState.Request(transition=Transition(id=transition))).success

    def transition(self, node: str, transition: int) -> tuple[bool, str]:
        """(success, label of the state afterwards)."""
        ok = self.change_state(node, transition)
        return ok, self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
