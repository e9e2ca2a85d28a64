"""A lifecycle node in another process is driven through lifecycle_msgs/srv/ChangeState from this process,
and its lifecycle publisher delivers only while the node is active."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import UInt32

pytestmark = pytest.mark.ros

BEACON = Path(__file__).parent / "nodes" / "lifecycle_beacon.py"


class Client:
    """Service clients and a subscriber on the beacon, spun by hand."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("beacon_test_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.change = self.node.create_client(ChangeState, "beacon/change_state")
        self.get = self.node.create_client(GetState, "beacon/get_state")
        self.beats: list[int] = []
        self.node.create_subscription(UInt32, "beacon/beat", lambda m: self.beats.append(m.data), 10)

    def call(self, client, request, timeout: float = 20.0):
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} not available"
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), f"{client.srv_name} did not answer within {timeout} s"
        return future.result()

    def transition(self, transition_id: int) -> int:
        assert self.call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success
        return self.call(self.get, GetState.Request()).current_state.id

    def beats_during(self, seconds: float) -> list[int]:
        self.beats.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)
        return list(self.beats)

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def test_lifecycle_publisher_only_publishes_while_active(ros_env, python) -> None:
    beacon = subprocess.Popen([python, str(BEACON)], env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = Client()
    try:
        assert client.call(client.get, GetState.Request()).current_state.id == State.PRIMARY_STATE_UNCONFIGURED
        assert client.transition(Transition.TRANSITION_CONFIGURE) == State.PRIMARY_STATE_INACTIVE
        assert client.beats_during(1.0) == []  # the timer runs, the muted publisher sends nothing
        assert client.transition(Transition.TRANSITION_ACTIVATE) == State.PRIMARY_STATE_ACTIVE
        active = client.beats_during(1.5)
        assert len(active) >= 10 and active == sorted(active)
        assert client.transition(Transition.TRANSITION_DEACTIVATE) == State.PRIMARY_STATE_INACTIVE
        client.beats_during(0.3)  # drain what was in flight
        assert client.beats_during(1.0) == []
        assert client.transition(Transition.TRANSITION_CLEANUP) == State.PRIMARY_STATE_UNCONFIGURED
        assert client.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN) == State.PRIMARY_STATE_FINALIZED
    finally:
        client.close()
        beacon.terminate()
        output, _ = beacon.communicate(timeout=10)
    assert beacon.returncode in (0, -15), output
