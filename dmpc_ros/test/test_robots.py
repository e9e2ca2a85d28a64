"""Robot mode: agents drive (fake) differential-drive bases from their odometry, on the wall clock, with no plant
node (`ros2 launch dmpc_ros robots.launch.py`), and a watchdog stops a robot whose neighbours fall silent."""
from __future__ import annotations

import math
import re
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmpc_ros.api import simulate
from dmpc_ros.models.robot import UnicycleBase
from dmpc_ros.report import fleet_figures
from dmpc_ros.ros.fake_robot import unicycle_step
from dmpc_ros.coordination.negotiator import RobotTiming
from dmpc_ros.ros.robot_link import yaw_of
from dmpc_ros.scenarios import load_scenario
from test_launch_files import finish, needs_stack, start_launch

STEPS = re.compile(r"\[dmpc\w*\.agent_(\d+)\]: robot mode: (\d+) steps, (\d+) deadline misses, (\d+) steps with")


@given(st.floats(-2, 2), st.floats(-3, 3), st.floats(-math.pi, math.pi))
def test_fake_base_moves_exactly_along_its_arc(v: float, omega: float, theta: float) -> None:
    pose = np.array([0.3, -0.2, theta])
    fine = pose.copy()
    for _ in range(2000):   # Euler with tiny steps converges to the arc
        fine = fine + 0.5 / 2000 * np.array([v * math.cos(fine[2]), v * math.sin(fine[2]), omega])
    exact = unicycle_step(pose, v, omega, 0.5)
    np.testing.assert_allclose(exact[:2], fine[:2], atol=2e-3)
    assert abs(np.angle(np.exp(1j * (exact[2] - fine[2])))) < 1e-6


def test_pose_and_command_mapping() -> None:
    base = UnicycleBase()
    yaw = 2.5
    assert abs(yaw_of(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)) - yaw) < 1e-12
    np.testing.assert_allclose(base.state(3, 1.0, 2.0, 2 * math.pi + 0.1), [1.0, 2.0, 0.1])
    assert base.command(np.array([0.4, -0.2])) == (0.4, -0.2)
    timing = RobotTiming(0.1, 1000.0, 0.3, 0.3, 0.08)
    assert [timing.step_at(t) for t in (999.95, 1000.0, 1000.25, 1000.3)] == [-1, 0, 2, 3]
    assert load_scenario("formation").family.robot_base(load_scenario("formation")) is None


def launch_robots(tmp_path: Path, env: dict, steps: int, namespace: str, extra: list[str] = ()):
    # Build the agents' compiled functions first (as the README's fleet recipe does): on a cold cache the four
    # agents' first bring-up compiles ~5 s each, one after another, and overran step 0 by far on 2 cores.
    simulate(load_scenario("unicycle_robots").with_overrides(steps=1))
    start = time.time() + 10.0   # bring-up fits in it
    process = start_launch("robots.launch.py", [
        f"namespace:={namespace}", "fake_robots:=true", "exit_on_completion:=true", f"output:={tmp_path}",
        f"steps:={steps}", f"start_time:={start:.3f}", *extra], env)
    return process, start


def trajectories(tmp_path: Path, robots: int) -> list[dict]:
    return [dict(np.load(tmp_path / f"robot_{i}.npz")) for i in range(robots)]


@needs_stack
@pytest.mark.ros
@pytest.mark.slow
def test_four_fake_robots_at_10_hz_hold_the_formation_and_the_distance(tmp_path: Path, ros_env: dict) -> None:
    scenario = load_scenario("unicycle_robots")
    process, start = launch_robots(tmp_path, ros_env, 60, "/dmpc", ["odom_noise:=0.01", "odom_latency:=0.02",
                                                                     "odom_drop:=0.05"])
    code, output = finish(process, timeout=120)
    assert code == 0, output[-4000:]
    counts = {int(a): (int(n), int(m), int(s)) for a, n, m, s in STEPS.findall(output)}
    assert sorted(counts) == [0, 1, 2, 3], output[-4000:]
    steps = sum(n for n, _, _ in counts.values())
    misses = sum(m for _, m, _ in counts.values())
    figures = fleet_figures(scenario.with_overrides(steps=60), trajectories(tmp_path, 4), start)
    print(f"robot mode at 10 Hz: {misses}/{steps} deadline misses ({100 * misses / steps:.1f} %), worst distance "
          f"{figures['worst_distance']:.3f} m, tracking error RMS {figures['rms_tracking_error']:.3f} m, final "
          f"{figures['final_tracking_error']:.3f} m")
    assert steps == 4 * 60 and misses <= 0.1 * steps           # counted, and rare on this 2-core machine
    assert figures["worst_distance"] >= scenario.model.safety_radius * 2 - 0.02   # 0.6 m, less odometry noise
    assert figures["final_tracking_error"] < 0.15             # on its path, in shape


@needs_stack
@pytest.mark.ros
@pytest.mark.slow
def test_watchdog_stops_a_robot_whose_neighbours_go_silent(tmp_path: Path, ros_env: dict) -> None:
    namespace = f"/dmpc_{uuid.uuid4().hex[:8]}"
    process, start = launch_robots(tmp_path, ros_env, 60, namespace)
    while time.time() < start + 2.5:   # 25 steps of normal driving
        time.sleep(0.05)
    killed = time.time()
    for agent in (1, 3):   # robot 0's (and robot 2's) neighbours in the ring
        pids = subprocess.run(["pgrep", "-f", f"__node:=agent_{agent} -r __ns:={namespace}"], capture_output=True,
                              text=True).stdout.split()
        assert pids, f"agent {agent} not found"
        subprocess.run(["kill", "-9", *pids])
    _, output = finish(process, timeout=120)
    robot = dict(np.load(tmp_path / "robot_0.npz"))
    before = (robot["t"] > start + 1.0) & (robot["t"] < killed)
    after = robot["t"] > killed + 0.6     # neighbour timeout 0.3 s, a step, odometry and command transport
    travelled = np.sum(np.hypot(np.diff(robot["x"][before]), np.diff(robot["y"][before])))
    assert travelled > 0.2, f"robot 0 drove only {travelled:.2f} m before its neighbours fell silent"
    assert np.all(robot["v"][after] == 0.0) and np.all(robot["omega"][after] == 0.0)
    assert re.search(r"agent_0\]: step \d+: no plan from \[1, 3\] for 0.30 s; robot stopped", output), output[-3000:]


@needs_stack
def test_robot_launch_arguments_choose_the_agents_end_once_and_refuse_what_cannot_run() -> None:
    from launch import LaunchContext
    from launch.actions import RegisterEventHandler
    from launch_ros.actions import LifecycleNode, Node

    from dmpc_ros.ros.launch_description import ROBOT_ARGUMENTS, robot_actions

    values = {name: default for name, (default, _) in ROBOT_ARGUMENTS.items()}
    kinds = lambda actions: [type(a).__name__ for a in actions]  # noqa: E731
    assert kinds(robot_actions({**values, "agents": "0,2", "manager": "false"}, 1000.0)) == ["LifecycleNode"] * 2
    assert kinds(robot_actions({**values, "agents": "none"}, 1000.0)) == ["Node"]
    everything = robot_actions({**values, "fake_robots": "true", "exit_on_completion": "true"}, 1000.0)
    assert sum(isinstance(a, LifecycleNode) for a in everything) == 4
    assert sum(type(a) is Node for a in everything) == 5   # the manager and four fake bases
    # Four bases ending together: their exits are all handled before launch processes the first Shutdown, and a
    # second Shutdown fails the launch (CI saw "Cannot shutdown a ROS adapter that is not running", exit 1).
    running = LaunchContext()
    handlers = [a.event_handler for a in everything if isinstance(a, RegisterEventHandler)]
    emitted = [entity for handler in handlers for entity in handler.handle(None, running)]
    assert len(handlers) == 4 and [type(e.event).__name__ for e in emitted] == ["Shutdown"]
    for changes, message in (({"scenario": "mass_spring"}, "its agents are not robots"),
                             ({"agents": "7"}, "agents:=7 is not allowed"),
                             ({"manager": "perhaps"}, "manager:=perhaps is not allowed"),
                             ({"odom_drop": "2"}, "odom_drop:=2 is not allowed")):
        with pytest.raises(ValueError, match=message):
            robot_actions({**values, **changes, "fake_robots": "true"}, 1000.0)


def test_the_robot_link_refuses_clamps_rate_limits_and_stops_a_stale_command() -> None:
    """The plant's rules before cmd_vel (sim/plant_inputs.py): an input out of U (v ∈ [0, 0.8] m/s) stops the robot
    and is counted; the rate limit ramps v up from the stop; a command older than 3 periods is followed by a stop."""
    from types import SimpleNamespace

    from dmpc_ros.ros.robot_link import RobotLink

    sent, warnings = [], []
    node = SimpleNamespace(
        create_subscription=lambda *args: None,
        create_lifecycle_publisher=lambda *args: SimpleNamespace(publish=sent.append),
        get_parameter=lambda name: SimpleNamespace(value={"input_rate_limit": 0.25, "stale_input_periods": 3.0}[name]),
        get_logger=lambda: SimpleNamespace(warning=lambda text, **_: warnings.append(text)))
    scenario = load_scenario("unicycle_robots")
    link = RobotLink(node, lambda leaf: leaf, UnicycleBase(), 3, "odometry", None, None,
                     scenario.plant().subsystems[0], scenario.sample_time)
    commands = lambda: [(t.linear.x, t.angular.z) for t in sent]  # noqa: E731
    link.drive(np.array([0.6, 0.1]))
    link.drive(np.array([0.6, 0.1]))
    link.drive(np.array([0.6, 0.1]))
    assert commands() == [(0.25, 0.1), (0.5, 0.1), (0.6, 0.1)]          # ramped by 0.25 m/s per step
    link.drive(np.array([9.0, 0.0]))                                       # out of U: refused, robot stopped
    assert commands()[-1] == (0.0, 0.0) and link.guard.refused == 1 and "refused" in warnings[0]
    link.drive(np.array([0.6, 0.0]))
    assert commands()[-1] == (0.25, 0.0)                                   # ramps up again from the stop
    link.watch(time.time() + 0.2)
    assert commands()[-1] == (0.25, 0.0)                                   # 2 periods: still fresh
    link.watch(time.time() + 0.35)
    assert commands()[-1] == (0.0, 0.0) and link.stale_stops == 1         # 3.5 periods: stale, stopped once
    link.watch(time.time() + 1.0)
    assert link.stale_stops == 1 and "2 commands refused" not in link.counts()
