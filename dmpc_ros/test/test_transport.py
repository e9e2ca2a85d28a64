"""Two separate OS processes exchange a PredictedTrajectory over DDS; the receiver's copy matches every field."""
from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.ros

SENT = {
    "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": "chain/agent_3"},
    "agent_id": 3, "step": 4242, "iteration": 17, "sample_time": 0.025, "horizon": 2,
    "state_dim": 2, "input_dim": 2,
    "states": [0.125, -1.5, 2.0e-9, 3.0e9, -7.75, 1.0 / 3.0],
    "inputs": [12.5, -0.001, 99.0, -99.0],
    "local_cost": 1234.5678, "feasible": True, "converged": False, "final": True,
    "algorithm_data": [1.0, -2.0, 3.5], "algorithm_data_layout": "admm:z=1x3;μ",
    "key_id": "agent_3-5f1c", "nonce": 2**64 - 2, "mac": [0, 255, 17, 128],   # authentication (dmpc_ros/auth)
}


def test_plan_crosses_process_boundary(ros_env, python, tmp_path) -> None:
    plan_file, dump = tmp_path / "plan.json", tmp_path / "received.jsonl"
    plan_file.write_text(json.dumps(SENT))
    listener = subprocess.Popen([python, "-m", "dmpc_ros.ros.smoke", "listener", "--count", "2", "--dump", str(dump)],
                                env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    talker = subprocess.Popen([python, "-m", "dmpc_ros.ros.smoke", "talker", "--plan-json", str(plan_file),
                               "--rate", "20"],
                              env=ros_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        output, _ = listener.communicate(timeout=60)
    finally:
        talker.terminate()
        talker.wait(timeout=10)
    assert listener.returncode == 0, output
    received = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(received) == 2
    for message in received:
        stamp = message.pop("header")
        assert stamp["frame_id"] == "chain/agent_3"
        assert stamp["stamp"]["sec"] > 1_600_000_000  # the talker stamps with its wall clock
        expected = {k: v for k, v in SENT.items() if k != "header"}
        assert message == expected
