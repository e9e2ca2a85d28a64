"""Authenticated plans and inputs over ROS (ros/authentication.py, scenarios/security.py, `dmpc keys`, `dmpc run
--keystore`): the canonical bytes, signing and verifying real messages, the scenario's security section and the
flags' one-line errors, and one real run where a rogue's forged inputs and spoofed plans are refused and counted."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message

from conftest import REPO_DIR
from dmpc_ros.auth import create_keystore
from dmpc_ros.ros.authentication import MessageAuthentication, authentication_of, canonical_bytes
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario
from dmpc_ros.scenarios.node_specs import node_specs
from dmpc_ros.scenarios.security import SecuritySettings, security_parameters
from dmpc_ros_msgs.msg import ControlInput, PredictedTrajectory

DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    return create_keystore(tmp_path_factory.mktemp("auth") / "keys", 4).directory


def plan(iteration: int = 0, **fields) -> PredictedTrajectory:
    return PredictedTrajectory(agent_id=2, step=3, iteration=iteration, horizon=2, state_dim=1, input_dim=1,
                               states=[0.1, 0.2, 0.3], inputs=[0.5, -0.5], **fields)


def test_canonical_bytes_ignore_the_mac_and_cdr_padding_but_no_field() -> None:
    message = plan(key_id="agent_2.abc", nonce=2**64 - 1)
    base = canonical_bytes(message)
    message.mac = bytes(32)
    assert canonical_bytes(message) == base
    assert canonical_bytes(deserialize_message(serialize_message(message), PredictedTrajectory)) == base
    for name, value in (("final", True), ("iteration", 1), ("states", [0.1, 0.2, 0.30000000000000004]),
                        ("key_id", "agent_2.abd"), ("nonce", 2**64 - 2), ("algorithm_data_layout", "x=0")):
        changed = plan(key_id="agent_2.abc", nonce=2**64 - 1)
        setattr(changed, name, value)
        assert canonical_bytes(changed) != base, name
    moved = plan(key_id="agent_2.abc", nonce=2**64 - 1)
    moved.header.stamp.nanosec = 1
    assert canonical_bytes(moved) != base


def test_signed_messages_survive_the_wire_and_anything_else_is_refused(keys) -> None:
    sender, receiver = MessageAuthentication(str(keys), 4, own_agent=2), MessageAuthentication(str(keys), 4)
    message = plan()
    sender.sign(message)
    assert len(message.mac) == 32 and message.key_id.startswith("agent_2.")
    wire = serialize_message(message)
    assert receiver.refusal(deserialize_message(wire, PredictedTrajectory), 2) is None
    text, topic = receiver.refusal(deserialize_message(wire, PredictedTrajectory), 2)   # the same bytes again
    assert "a replay" in text and topic == "auth:2:replay"
    tampered = deserialize_message(wire, PredictedTrajectory)
    tampered.states = [0.1, 0.2, 0.4]
    assert receiver.refusal(tampered, 2)[1] == "auth:2:bad_mac"
    assert receiver.refusal(plan(), 2)[1] == "auth:2:unsigned"
    assert receiver.refusal(deserialize_message(wire, PredictedTrajectory), 1)[1] == "auth:1:wrong_owner"
    control = ControlInput(agent_id=2, step=3, input=[0.5])
    sender.sign(control)
    assert receiver.refusal(control, 2) is None   # inputs are their own stream (kind "input")
    assert receiver.totals() == {"unsigned": 1, "unknown_key": 0, "wrong_owner": 1, "bad_mac": 1, "replay": 1}
    assert receiver.step_counters("plan") == {"plans_refused_unsigned": 1.0, "plans_refused_unknown_key": 0.0,
                                              "plans_refused_wrong_owner": 1.0, "plans_refused_bad_mac": 1.0,
                                              "plans_refused_replay": 1.0}
    assert set(receiver.step_counters("plan").values()) == {0.0}


@settings(max_examples=60, deadline=None)
@given(states=st.lists(st.floats(allow_nan=False, width=64), min_size=3, max_size=3), index=st.integers(0, 2),
       bit=st.integers(0, 63))
def test_any_flipped_bit_of_a_signed_plan_is_refused(keys, states, index, bit) -> None:
    sender, receiver = MessageAuthentication(str(keys), 4, own_agent=2), MessageAuthentication(str(keys), 4)
    message = plan()
    message.states = states
    sender.sign(message)
    raw = np.array(states, float)
    raw.view(np.uint64)[index] ^= np.uint64(1 << bit)
    message.states = raw.tolist()
    assert receiver.refusal(message, 2)[1] == "auth:2:bad_mac"


def test_security_section_and_run_settings(tmp_path, keys) -> None:
    source = REPO_DIR / "dmpc_ros" / "config" / "mass_spring.yaml"
    import yaml
    data = yaml.safe_load(source.read_text())
    data["security"] = {"authenticate": True, "keystore": "keys"}
    scenario = parse_scenario(data, source=str(tmp_path / "s.yaml"))
    assert scenario.security == SecuritySettings(True, str(tmp_path / "keys"))   # relative to the scenario's folder
    assert load_scenario("mass_spring").security == SecuritySettings()
    for bad, message in (({"authenticate": "yes"}, "security.authenticate: 'yes' is not allowed: must be true or "),
                         ({"keystore": 3}, "security.keystore: 3 is not allowed: must be the path of a keystore"),
                         ({"key": "x"}, "security.key: unknown field; allowed: authenticate, keystore")):
        with pytest.raises(ScenarioError, match=message):
            parse_scenario({**data, "security": bad}, source=str(source))
    assert security_parameters(SecuritySettings()) == {}
    assert security_parameters(SecuritySettings(), keystore=str(keys)) == {"authenticate": True, "keystore": str(keys)}
    with pytest.raises(ScenarioError, match="authentication is required .* dmpc keys create DIR --agents M"):
        security_parameters(SecuritySettings(), authenticate=True)
    plain = load_scenario("mass_spring")
    specs = node_specs(plain, source)
    assert not any("keystore" in spec.parameters for spec in specs)   # off: the nodes' parameters are unchanged
    specs = node_specs(plain, source, keystore=str(keys))
    assert [spec.parameters.get("keystore") for spec in specs] == [str(keys)] * 5 + [None]
    with pytest.raises(ValueError, match="parameter keystore: '' is not allowed: authentication is required"):
        authentication_of({"authenticate": True, "keystore": ""}, plain, 4)
    assert authentication_of({"authenticate": False, "keystore": ""}, plain, 4) is None
    with pytest.raises(ValueError, match="no key for agent_4"):
        authentication_of({"authenticate": True, "keystore": str(keys)}, plain, 5)


@pytest.mark.slow   # seven dmpc processes
def test_dmpc_keys_and_run_refuse_in_one_line(tmp_path, keys) -> None:
    made = subprocess.run(DMPC + ["keys", "create", str(tmp_path / "team"), "--scenario", "mass_spring"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and "4 keys (agents 0..3)" in made.stdout, made.stderr
    assert sorted(p.name for p in (tmp_path / "team").iterdir()) == [f"agent_{i}.key" for i in range(4)]
    for args, message in (
            (["keys", "create", str(tmp_path / "team"), "--agents", "2"], "is not empty; keys are never overwritten"),
            (["keys", "create", str(tmp_path / "t2")], "give exactly one of --agents M and --scenario"),
            (["run", "mass_spring", "--authenticate", "--output", str(tmp_path / "r")],
             "security.keystore: missing; authentication is required"),
            (["run", "mass_spring", "--keystore", str(tmp_path / "none"), "--output", str(tmp_path / "r")],
             "none: No such file or directory; make one with dmpc keys create"),
            (["run", "platoon", "--keystore", str(keys), "--output", str(tmp_path / "r")], "no key for agent_4")):
        result = subprocess.run(DMPC + args, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        lines = [line for line in result.stderr.splitlines() if not line.startswith("set-up (")]   # progress, if slow
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.ros
@pytest.mark.slow
def test_forged_inputs_and_spoofed_plans_are_refused_and_counted(tmp_path: Path) -> None:
    """A rogue (bench/rogue.py) on agent 1's control topic and agent 2's plan topic of an authenticated lock-step
    run: forged inputs (50 N and a flood inside U) and spoofed final plans carry the sniffed key id and a random MAC,
    replays are the genuine messages sent again. None is applied or used: the run equals `dmpc sim` without a rogue
    to the last bit, and every kind is refused and counted by reason."""
    sys.path.insert(0, str(REPO_DIR / "bench"))
    from rogue import clean_run, rogue_run

    run = rogue_run(True, 4, tmp_path / "run", timeout=120)
    assert run.returncode == 0 and run.summary["complete"], run.output[-3000:]
    assert run.sent.big >= 3 and run.sent.forged > 10 and run.sent.spoofed > 10, run.sent
    assert run.big_applied == 0 and run.forged_applied == 0
    np.testing.assert_array_equal(run.x, clean_run(4).x)
    inputs, plans = run.inputs_refused_auth, run.plans_refused_auth
    assert inputs["bad_mac"] > 0 and inputs["replay"] > 0, inputs
    assert plans["bad_mac"] > 0 and plans["replay"] > 0, plans
    assert "refused input from agent 1: it has a MAC that does not match" in run.output
    assert "refused plan from agent 2: it has a MAC that does not match" in run.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["authentication"]["inputs_refused"] == inputs
