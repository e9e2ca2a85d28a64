"""A test-side ROS participant: lifecycle service calls, publishers and recording subscriptions, spun by hand."""
from __future__ import annotations

import time
from collections import defaultdict

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor


EXPECTED_STATE = {Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
                  Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
                  Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE,
                  Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED}


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

    def call(self, service_type, name: str, request, timeout: float = 30.0, resend: bool = True):
        """Call a service; an unanswered request is re-sent every 5 s (a request sent right after discovery can
        lose its answer) unless resend is False, then None is returned after the first 5 s."""
        client = self.node.create_client(service_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
            end = time.monotonic() + timeout
            while True:
                future = client.call_async(request)
                attempt_end = min(end, time.monotonic() + 5.0)
                while not future.done() and time.monotonic() < attempt_end:
                    self.executor.spin_once(timeout_sec=0.01)
                if future.done():
                    return future.result()
                assert time.monotonic() < end, f"timed out after {timeout} s waiting for {name}"
                if not resend:
                    return None
        finally:
            self.node.destroy_client(client)

    def change_state(self, node: str, transition: int) -> bool:
        """ChangeState; if unanswered, the node's state tells whether the request or only its answer was lost."""
        request = ChangeState.Request(transition=Transition(id=transition))
        response = self.call(ChangeState, f"{node}/change_state", request, resend=False)
        if response is None:
            if transition == Transition.TRANSITION_UNCONFIGURED_SHUTDOWN:
                return True  # the node finalizes and leaves; the caller checks the process
            state = self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.id
            if state == EXPECTED_STATE.get(transition):
                return True
            response = self.call(ChangeState, f"{node}/change_state", request)
        return response.success

    def transition(self, node: str, transition: int) -> tuple[bool, str]:
        """(success, label of the state afterwards)."""
        ok = self.change_state(node, transition)
        return ok, self.call(GetState, f"{node}/get_state", GetState.Request()).current_state.label

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
