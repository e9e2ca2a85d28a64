"""The shipped launch files under the real `ros2 launch` (the launch stack of `make launch-stack`): each runs its
scenario to the end and leaves the same plant trajectory as `dmpc run`; Ctrl-C takes the nodes down in order;
the `ros2` CLI works against a running scenario. Without the stack these tests skip, saying how to install it."""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import PACKAGE_DIR, REPO_DIR
from dmpc_ros.scenarios import load_scenario, scenario_path
from dmpc_ros.scenarios.node_specs import node_specs

BIN = Path(sys.prefix) / "bin"
ROS2 = [str(BIN / "ros2")]
DMPC = [str(BIN / "dmpc")]
STACK = (BIN / "ros2").is_file() and importlib.util.find_spec("launch_ros") is not None
needs_stack = pytest.mark.skipif(not STACK, reason="the ROS 2 launch stack is not installed here: `make launch-stack`")
# `ros2 launch` reacts to SIGINT only through Python's handler, which stays off when SIGINT arrives ignored
# (a background job): restore the default for the launched process.
LAUNCH = ["env", "--default-signal=INT"] + ROS2 + ["launch", "dmpc_ros"]
LAUNCH_FILES = {  # file → (scenario the launch argument names, extra launch arguments)
    "mass_spring.launch.py": ("mass_spring", []),
    "mass_budget.launch.py": ("mass_budget", []),
    "platoon.launch.py": ("platoon", []),
    "formation.launch.py": ("formation", []),
    "mass_spring_robust.launch.py": ("mass_spring_robust", []),
    "platoon_robust.launch.py": ("platoon_robust", []),
    "formation_robust.launch.py": ("formation_robust", []),
    "scenario.launch.py": (str(REPO_DIR / "examples" / "four_tank.yaml"),
                           [f"scenario:={REPO_DIR / 'examples' / 'four_tank.yaml'}"]),
}


ROBOT_LAUNCH_FILES = {"robots.launch.py"}   # no plant: run to its end with fake bases by test_robots.py


def test_every_shipped_launch_file_is_tested() -> None:
    shipped = {p.name for p in (PACKAGE_DIR / "launch").glob("*.launch.py")}
    assert sorted(LAUNCH_FILES) == sorted(shipped - ROBOT_LAUNCH_FILES)
    assert ROBOT_LAUNCH_FILES <= shipped and "robots.launch.py" in (PACKAGE_DIR / "test" / "test_robots.py").read_text()


def start_launch(launch_file: str, arguments: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`ros2 launch dmpc_ros <file> <arguments>` in a session of its own (so the test can Ctrl-C it as a terminal
    would: SIGINT to the whole process group)."""
    return subprocess.Popen(LAUNCH + [launch_file] + arguments, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def read_until(process: subprocess.Popen, text: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if text in line:
            return lines
    process.kill()
    raise AssertionError(f"'{text}' not seen within {timeout:.0f} s:\n" + "\n".join(lines[-30:]))


def finish(process: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"ros2 launch still running after {timeout:.0f} s:\n{output[-3000:]}")
    return process.returncode, output


@needs_stack
@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("launch_file", sorted(LAUNCH_FILES))
def test_launch_file_runs_its_scenario_to_the_end_as_dmpc_run(tmp_path: Path, ros_env: dict[str, str], lock_step_run,
                                                              launch_file: str) -> None:
    scenario, extra = LAUNCH_FILES[launch_file]
    launched = tmp_path / "launch"
    # The reference: the session's `dmpc run` of the scenario's own algorithm (test_ros_run checks the same run against
    # `dmpc sim`). Both lock-step runs wait long for plans: a substitution after a short timeout on a loaded machine (a
    # cold first solve) would make them differ, and that is not what this test is about (test_negotiator.py tests the
    # rule).
    reference = lock_step_run(scenario, load_scenario(scenario).controller.algorithm)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    process = start_launch(launch_file, extra + [f"output:={launched}", "exit_on_completion:=true",
                                                 f"steps:={reference.steps}", "iteration_timeout:=30"], ros_env)
    code, output = finish(process, timeout=240)
    assert code == 0, output[-3000:]
    assert "SIGTERM" not in output and "no answer within" not in output, output[-3000:]
    ours, theirs = np.load(launched / "plant.npz"), np.load(reference.output / "plant.npz")
    assert ours["u"].shape[0] == reference.steps
    for key in ("t", "x", "u"):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


@pytest.fixture(scope="module")
def running_scenario(tmp_path_factory):
    """mass_spring on the wall clock (real-time mode) under `ros2 launch`, until the module's tests are done."""
    from dmpc_ros.ros.environment import reserve_domain_id, ros_environment

    reservation = reserve_domain_id()
    env = ros_environment(reservation.domain_id)
    process = start_launch("mass_spring.launch.py", ["mode:=real_time", "use_sim_time:=false", "steps:=100000"], env)
    read_until(process, "all 5 nodes active", timeout=120)
    yield env
    os.killpg(process.pid, signal.SIGINT)
    finish(process, timeout=30)
    subprocess.run(ROS2 + ["daemon", "stop"], env=env, capture_output=True, timeout=30)
    reservation.release()


def ros2(env: dict[str, str], *arguments: str) -> str:
    run = subprocess.run(ROS2 + list(arguments), env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@needs_stack
@pytest.mark.ros
def test_ros2_lifecycle_get_reports_the_agents_active(running_scenario) -> None:
    assert ros2(running_scenario, "lifecycle", "get", "--no-daemon", "--spin-time", "3", "/dmpc/agent_0").strip() \
        == "active [3]"
    assert ros2(running_scenario, "lifecycle", "get", "--no-daemon", "--spin-time", "3", "/dmpc/plant").strip() \
        == "active [3]"


@needs_stack
@pytest.mark.ros
def test_ros2_topic_echo_shows_an_agent_status(running_scenario) -> None:
    output = ros2(running_scenario, "topic", "echo", "--once", "--no-daemon", "--timeout", "20",
                  "/dmpc/agent_1/status", "dmpc_ros_msgs/msg/AgentStatus")
    assert re.search(r"^agent_id: 1$", output, re.M) and re.search(r"^step: \d+$", output, re.M), output


@needs_stack
@pytest.mark.ros
def test_ros2_param_get_reads_an_agent_parameter(running_scenario) -> None:
    assert ros2(running_scenario, "param", "get", "--no-daemon", "--timeout", "20", "/dmpc/agent_2",
                "agent_id").strip() == "Integer value is: 2"


@needs_stack
@pytest.mark.ros
def test_ctrl_c_takes_the_nodes_down_in_order_before_launch_escalates(ros_env: dict[str, str]) -> None:
    process = start_launch("mass_spring.launch.py", ["steps:=100000"], ros_env)
    read_until(process, "all 5 nodes active", timeout=120)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)   # as a terminal's Ctrl-C: launch and every node get SIGINT
    started = time.monotonic()
    code, output = finish(process, timeout=30)
    took = time.monotonic() - started
    assert code == 0, output[-3000:]
    assert "SIGTERM" not in output and "no answer within" not in output and "has died" not in output, output
    finalized = re.findall(r"(/dmpc/\w+): shutdown ok → finalized", output)
    assert finalized == [f"/dmpc/agent_{i}" for i in (3, 2, 1, 0)] + ["/dmpc/plant"], output
    assert output.count("process has finished cleanly") == 6, output
    assert took < 5.0, f"took {took:.1f} s: launch's SIGTERM escalation comes at 5 s"


@needs_stack
def test_bad_launch_arguments_are_refused_naming_the_argument() -> None:
    from dmpc_ros.ros.launch_description import specs_from_arguments

    base = {"scenario": "mass_spring", "namespace": "/dmpc", "use_sim_time": "true", "mode": "lock_step"}
    with pytest.raises(ValueError, match="steps:=0 is not allowed"):
        specs_from_arguments({**base, "steps": "0"})
    with pytest.raises(ValueError, match="use_sim_time:=maybe is not allowed: must be true or false"):
        specs_from_arguments({**base, "use_sim_time": "maybe"})
    specs = specs_from_arguments({**base, "steps": "7", "output": "/tmp/x", "exit_on_completion": "true"})
    plant = specs[0].parameters
    assert plant["steps"] == 7 and plant["output_file"] == "/tmp/x/plant.npz" and plant["exit_on_completion"]
    expected = node_specs(load_scenario("mass_spring"), scenario_path("mass_spring"))
    assert [s.name for s in specs] == [s.name for s in expected]
    assert [s.parameters["use_sim_time"] for s in specs] == [s.executable == "agent" for s in expected]


def test_agents_hosted_k_to_a_process_keep_their_names_and_parameters() -> None:
    from dmpc_ros.ros.agent_container import hosted_names
    from dmpc_ros.scenarios.node_specs import host_agents, parameters_file

    specs = node_specs(load_scenario("platoon"), scenario_path("platoon"))
    hosted = host_agents(specs, 3)
    containers = [s for s in hosted if s.executable == "agent_container"]
    agents = [s for s in specs if s.executable == "agent"]
    assert [s.executable for s in hosted] == ["plant"] + ["agent_container"] * len(containers) + ["lifecycle_manager"]
    assert [len(c.hosted) for c in containers] == [3] * (len(agents) // 3) + ([len(agents) % 3] if len(agents) % 3
                                                                               else [])
    assert [a for c in containers for a in c.hosted] == agents
    assert parameters_file(hosted) == parameters_file(specs)   # every node still finds its own parameters
    with pytest.raises(ValueError, match="agents per process 0 is not allowed"):
        host_agents(specs, 0)
    assert hosted_names(["agent_0", "agent_1"]) == ["agent_0", "agent_1"]
    for bad, message in (([], "no node names"), (["agent_0", "agent_0"], "given twice"), (["0x"], "not allowed")):
        with pytest.raises(ValueError, match=message):
            hosted_names(bad)
