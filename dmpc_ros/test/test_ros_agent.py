"""The agent node in its own process, driven from the test over DDS: lifecycle, bad parameters, bad neighbours."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter

from conftest import PACKAGE_DIR
from dmpc_ros.ros.qos import CONTROL_QOS, STATE_QOS, STATUS_QOS, plan_qos
from dmpc_ros_msgs.msg import AgentStatus, ControlInput, PredictedTrajectory, SubsystemState
from ros_client import RosClient

pytestmark = pytest.mark.ros
SCENARIO = PACKAGE_DIR / "config" / "mass_spring.yaml"
NODE = "/t/agent_0"


def start_node(module: str, name: str, env, log, parameters: dict):
    """One node process in namespace /t, parameters given with -p as ros2 run would."""
    command = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={name}", "-r", "__ns:=/t"]
    for key, value in {"scenario_file": str(SCENARIO), **parameters}.items():
        command += ["-p", f"{key}:={value}"]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_agent(env, log, **parameters):
    return start_node("dmpc_ros.ros.agent_node", "agent_0", env, log,
                      {"agent_id": 0, "iteration_timeout": 0.2, **parameters})


@pytest.fixture
def client(ros_env):
    ros = RosClient()
    yield ros
    ros.close()


def state(step: int, x=(0.3, 0.0)) -> SubsystemState:
    return SubsystemState(agent_id=0, step=step, state=list(x))


def test_lifecycle_through_services(ros_env, client, tmp_path) -> None:
    log = (tmp_path / "agent.log").open("w")
    agent = start_agent(ros_env, log, max_iterations=3)
    plans = client.subscribe(PredictedTrajectory, "/t/agent_0/plan", plan_qos("reliable"))
    controls = client.subscribe(ControlInput, "/t/agent_0/control", CONTROL_QOS)
    statuses = client.subscribe(AgentStatus, "/t/agent_0/status", STATUS_QOS)
    states = client.publisher(SubsystemState, "/t/agent_0/state", STATE_QOS)
    try:
        assert client.transition(NODE, Transition.TRANSITION_CONFIGURE) == (True, "inactive")
        states.publish(state(0))
        client.spin_for(1.0)
        assert plans == [] and controls == []   # inactive: nothing published, the measurement is kept
        assert client.transition(NODE, Transition.TRANSITION_ACTIVATE) == (True, "active")
        client.spin_until(lambda: len(controls) >= 1, 20, "the control input of step 0")
        client.spin_until(lambda: plans and plans[-1].final, 5, "the final plan of step 0")   # another topic: any order
        assert [p.iteration for p in plans if p.step == 0][:1] == [0]
        assert plans[-1].final and plans[-1].iteration <= 3
        assert all(math.isfinite(v) for v in controls[0].input) and abs(controls[0].input[0]) <= 1.0 + 1e-9
        client.spin_until(lambda: statuses, 5, "the status of step 0")
        assert statuses[0].messages_missing > 0      # no neighbour answered: their plans were substituted
        states.publish(state(1, (0.29, -0.05)))
        client.spin_until(lambda: len(controls) >= 2, 20, "the control input of step 1")
        assert client.transition(NODE, Transition.TRANSITION_DEACTIVATE) == (True, "inactive")
        client.spin_until(lambda: len(controls) >= 3, 5, "the safe command on deactivate")
        assert list(controls[-1].input) == [0.0] and controls[-1].step == 1
        count = len(plans)
        states.publish(state(2))
        client.spin_for(1.0)
        assert len(plans) == count                 # nothing published while inactive
        assert client.transition(NODE, Transition.TRANSITION_CLEANUP) == (True, "unconfigured")
        assert client.change_state(NODE, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert agent.wait(timeout=10) == 0         # finalized: the process leaves by itself
    finally:
        if agent.poll() is None:
            agent.kill()
        log.close()


@pytest.mark.parametrize("parameters,reason", [
    ({"agent_id": 7}, "parameter agent_id: 7 is not allowed: the scenario has agents 0..3"),
    ({"algorithm": "telepathy"}, "algorithm: 'telepathy' is not allowed: must be one of"),
    ({"solver": "cplex"}, "parameter solver: 'cplex' is not allowed: must be one of daqp, osqp"),
    ({"neighbour_ids": "[1]"}, "parameter neighbour_ids: [1] is not allowed: agent 0 needs the plans of [1, 2, 3]"),
    ({"scenario_file": "/nonexistent.yaml"}, "scenario file /nonexistent.yaml does not exist"),
    ({"scenario_factory": "/nonexistent.py:scenario"}, "give exactly one (a scenario YAML path, or module:function"),
    ({"robot_mode": "true"}, "parameter robot_mode: true is not allowed: scenario mass_spring (model.type "
                             "mass_spring_chain) has no robot base"),
    ({"scenario_file": "''", "scenario_factory": "/nonexistent.py:scenario"},
     "scenario factory '/nonexistent.py:scenario': file /nonexistent.py does not exist"),
])
def test_bad_parameters_refuse_configure_with_reason(ros_env, client, tmp_path, parameters, reason) -> None:
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        agent = start_agent(ros_env, log, **parameters)
        try:
            assert client.transition(NODE, Transition.TRANSITION_CONFIGURE) == (False, "unconfigured")
        finally:
            agent.terminate()
            agent.wait(timeout=10)
    assert reason in log_path.read_text()


def test_malformed_neighbour_plans_are_rejected_and_counted(ros_env, client, tmp_path) -> None:
    log = (tmp_path / "agent.log").open("w")
    agent = start_agent(ros_env, log, max_iterations=2)
    controls = client.subscribe(ControlInput, "/t/agent_0/control", CONTROL_QOS)
    statuses = client.subscribe(AgentStatus, "/t/agent_0/status", STATUS_QOS)
    states = client.publisher(SubsystemState, "/t/agent_0/state", STATE_QOS)
    liars = {j: client.publisher(PredictedTrajectory, f"/t/agent_{j}/plan", plan_qos("reliable")) for j in (1, 2, 3)}
    try:
        assert client.transition(NODE, Transition.TRANSITION_CONFIGURE)[0]
        assert client.transition(NODE, Transition.TRANSITION_ACTIVATE)[0]
        for step in range(3):
            states.publish(state(step, (0.3 - 0.05 * step, 0.0)))
            for iteration in range(3):
                liars[1].publish(PredictedTrajectory(agent_id=1, step=step, iteration=iteration, horizon=20,
                                                     state_dim=3, input_dim=1, states=[0.0] * 63, inputs=[0.0] * 20))
                liars[2].publish(PredictedTrajectory(agent_id=2, step=step, iteration=iteration, horizon=20,
                                                     state_dim=2, input_dim=1, states=[float("nan")] * 42,
                                                     inputs=[1e3] * 20))
                liars[3].publish(PredictedTrajectory(agent_id=3, step=step, iteration=iteration, horizon=20,
                                                     state_dim=2, input_dim=1, states=[0.0] * 5, inputs=[0.0] * 20))
                good = dict(horizon=20, state_dim=2, input_dim=1, states=[0.0] * 42, inputs=[0.0] * 20)
                liars[2].publish(PredictedTrajectory(agent_id=3, step=step, iteration=iteration, **good))  # spoof
                liars[2].publish(PredictedTrajectory(agent_id=2, step=step, iteration=10**6, **good))
                liars[2].publish(PredictedTrajectory(agent_id=2, step=10**6, iteration=iteration, **good))
                liars[3].publish(PredictedTrajectory(agent_id=3, step=step, iteration=iteration, horizon=10**8,
                                                     state_dim=10**8, input_dim=1))   # absurd declared sizes
                liars[3].publish(PredictedTrajectory(agent_id=3, step=step, iteration=iteration, **good,
                                                     algorithm_data_layout="a=10000000000x10000000000"))
            client.spin_until(lambda: len(controls) > step, 20, f"the control input of step {step}")
        client.spin_until(lambda: len(statuses) >= 3, 5, "three statuses")
        # dropped by the DDS content filter before they reach the node: wrong dims, spoofed id, iteration 10⁶,
        # a declared 10⁸; refused and counted by the node: NaN, wrong array sizes, step 10⁶, a bad layout
        assert 9 * 3 <= sum(s.messages_rejected for s in statuses) <= 9 * 4   # 9 * 8 without the filter
        assert all(np.all(np.isfinite(c.input)) and abs(c.input[0]) <= 1.0 + 1e-9 for c in controls)
        assert agent.poll() is None                # still alive
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        log.close()
    assert "rejected plan: plan of agent 2 contains non-finite values" in (tmp_path / "agent.log").read_text()


def set_parameter(client, name: str, value) -> tuple[bool, str]:
    """`ros2 param set` through the node's SetParameters service: (successful, reason)."""
    parameter = Parameter(name, value=value).to_parameter_msg()
    response = client.call(SetParameters, f"{NODE}/set_parameters", SetParameters.Request(parameters=[parameter]))
    return response.results[0].successful, response.results[0].reason


def test_live_parameter_changes_are_validated_like_a_configure(ros_env, client, tmp_path) -> None:
    log = (tmp_path / "agent.log").open("w")
    agent = start_agent(ros_env, log)
    try:
        assert set_parameter(client, "scenario_file", "/elsewhere.yaml") == (
            False, "Trying to set a read-only parameter: scenario_file.")
        ok, reason = set_parameter(client, "algorithm", "centralized")
        assert not ok and reason.startswith("parameter algorithm: 'centralized' is not allowed")
        assert not set_parameter(client, "horizon", 5000)[0]   # outside its declared range (rclpy says so)
        assert set_parameter(client, "algorithm", "gauss_seidel") == (True, "")   # valid before configure
        assert client.transition(NODE, Transition.TRANSITION_CONFIGURE) == (True, "inactive")
        assert "configured agent 0 (gauss_seidel" in (tmp_path / "agent.log").read_text()
        ok, reason = set_parameter(client, "max_iterations", 3)
        assert not ok and reason.startswith("parameter max_iterations: cannot change while the node is configured")
        assert set_parameter(client, "iteration_timeout", 0.5) == (True, "")   # takes effect at once
        assert not set_parameter(client, "iteration_timeout", -1.0)[0]
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        log.close()


def start_plant(env, log, **parameters):
    return start_node("dmpc_ros.ros.plant_node", "plant", env, log, {"steps": 3, "input_timeout": 0.3, **parameters})


def test_plant_lifecycle_and_lock_step_stepping(ros_env, client, tmp_path) -> None:
    from rosgraph_msgs.msg import Clock
    from rclpy.qos import QoSProfile

    output = tmp_path / "plant.npz"
    log = (tmp_path / "plant.log").open("w")
    plant = start_plant(ros_env, log, output_file=str(output))
    states = client.subscribe(SubsystemState, "/t/agent_1/state", STATE_QOS)
    clock = client.subscribe(Clock, "/clock", QoSProfile(depth=10))
    inputs = {i: client.publisher(ControlInput, f"/t/agent_{i}/control", CONTROL_QOS) for i in range(4)}
    try:
        assert client.transition("/t/plant", Transition.TRANSITION_CONFIGURE) == (True, "inactive")
        client.spin_for(0.5)
        assert states == []                                   # inactive: no state published
        assert client.transition("/t/plant", Transition.TRANSITION_ACTIVATE) == (True, "active")
        client.spin_until(lambda: states, 10, "the state of step 0")
        assert states[0].step == 0 and list(states[0].state) == [-0.5, 0.0]
        for i in range(4):                                    # everyone answers step 0 → the plant steps
            inputs[i].publish(ControlInput(agent_id=i, step=0, input=[0.5]))
        client.spin_until(lambda: len(states) >= 2, 10, "the state of step 1")
        assert states[1].step == 1
        client.spin_until(lambda: clock and clock[-1].clock.nanosec == 100_000_000, 5, "/clock at 0.1 s")
        inputs[0].publish(ControlInput(agent_id=0, step=1, input=[float("nan")]))   # rejected, then held
        inputs[1].publish(ControlInput(agent_id=1, step=1, input=[50.0]))   # forged: 50 N against a 1 N limit
        client.spin_until(lambda: len(states) >= 3, 10, "step 2 after the input timeout")
        client.spin_until(output.exists, 10, "the trajectory file")
        assert client.transition("/t/plant", Transition.TRANSITION_DEACTIVATE) == (True, "inactive")
        assert client.transition("/t/plant", Transition.TRANSITION_CLEANUP) == (True, "unconfigured")
        assert client.change_state("/t/plant", Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert plant.wait(timeout=10) == 0
    finally:
        if plant.poll() is None:
            plant.kill()
        log.close()
    data = np.load(output)
    assert data["x"].shape == (4, 8) and np.all(np.isfinite(data["x"])) and int(data["late_inputs"]) > 0
    table = np.genfromtxt(output.with_suffix(".csv"), delimiter=",", names=True)
    np.testing.assert_allclose(table["x0"], data["x"][:, 0])
    np.testing.assert_allclose(data["u"][0], [0.5] * 4)
    np.testing.assert_allclose(data["u"][1], [0.5] * 4)   # neither the NaN nor the forged input was applied
    assert int(data["refused_inputs"]) == 2
    text = (tmp_path / "plant.log").read_text()
    assert "of agent 0 refused: not finite" in text and "holding their last inputs" in text
    assert "of agent 1 refused: outside its input set by 49" in text


def test_plant_refuses_unknown_mode(ros_env, client, tmp_path) -> None:
    log_path = tmp_path / "plant.log"
    with log_path.open("w") as log:
        plant = start_plant(ros_env, log, mode="warp")
        try:
            assert client.transition("/t/plant", Transition.TRANSITION_CONFIGURE) == (False, "unconfigured")
        finally:
            plant.terminate()
            plant.wait(timeout=10)
    assert "parameter mode: 'warp' is not allowed: must be one of lock_step, real_time" in log_path.read_text()


def test_explicit_agent_without_its_cache_refuses_configure_with_the_command(ros_env, client, tmp_path) -> None:
    """The explicit schemes' laws are built offline: a node never solves them, and says what to run."""
    log_path = tmp_path / "agent.log"
    env = dict(ros_env, DMPC_EXPLICIT_CACHE=str(tmp_path / "empty-cache"))
    with log_path.open("w") as log:
        agent = start_agent(env, log, scenario_file=str(PACKAGE_DIR / "config" / "facet_two_plants.yaml"))
        try:
            assert client.transition(NODE, Transition.TRANSITION_CONFIGURE) == (False, "unconfigured")
        finally:
            agent.terminate()
            agent.wait(timeout=10)
    text = log_path.read_text()
    assert "no explicit solution for agent 0" in text and "dmpc explicit build" in text
