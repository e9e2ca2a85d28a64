"""A lifecycle node in another process is driven through lifecycle_msgs/srv/ChangeState from this process,
and its lifecycle publisher delivers only while the node is active."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import GetState
from std_msgs.msg import UInt32

from ros_client import RosClient

pytestmark = pytest.mark.ros

BEACON = Path(__file__).parent / "nodes" / "lifecycle_beacon.py"


def test_lifecycle_publisher_only_publishes_while_active(ros_env, python) -> None:
    beacon = subprocess.Popen([python, str(BEACON)], env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    client = RosClient("beacon_test_client")
    beats = client.subscribe(UInt32, "beacon/beat", 10)

    def beats_during(seconds: float) -> list[int]:
        beats.clear()
        client.spin_for(seconds)
        return [m.data for m in beats]

    try:
        assert client.call(GetState, "beacon/get_state", GetState.Request()).current_state.label == "unconfigured"
        assert client.transition("beacon", Transition.TRANSITION_CONFIGURE) == (True, "inactive")
        assert beats_during(1.0) == []  # the timer runs, the muted publisher sends nothing
        assert client.transition("beacon", Transition.TRANSITION_ACTIVATE) == (True, "active")
        active = beats_during(1.5)
        assert len(active) >= 10 and active == sorted(active)
        assert client.transition("beacon", Transition.TRANSITION_DEACTIVATE) == (True, "inactive")
        beats_during(0.3)  # drain what was in flight
        assert beats_during(1.0) == []
        assert client.transition("beacon", Transition.TRANSITION_CLEANUP) == (True, "unconfigured")
        assert client.transition("beacon", Transition.TRANSITION_UNCONFIGURED_SHUTDOWN) == (True, "finalized")
    finally:
        client.close()
        beacon.terminate()
        output, _ = beacon.communicate(timeout=10)
    assert beacon.returncode in (0, -15), output
