"""Turning a scenario into ros2 launch actions — what every launch file of the package runs.

The node specs come from `scenarios.node_specs`, the same ones `dmpc run` starts, so both start the same
processes with the same parameters. Only launch files import this module (it needs launch and launch_ros).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler, \
    SetEnvironmentVariable
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from ..scenarios.node_specs import NodeSpec, node_specs
from ..scenarios.source import is_factory, load_source, source_path
from .environment import blas_thread_limits

TRUE = ("true", "1", "yes")
LAUNCH_ARGUMENTS = {
    "scenario": ("mass_spring", "scenario name (config/<name>.yaml), a scenario YAML file, or a Python factory "
                                "module:function / file.py:function"),
    "namespace": ("/dmpc", "ROS namespace of the run's nodes and topics"),
    "use_sim_time": ("true", "agents follow the plant's /clock (lock_step); false for real robots"),
    "mode": ("lock_step", "lock_step (the plant owns time) or real_time (fixed-rate plant, zero-order hold)"),
    "output": ("", "folder for the plant's trajectory (plant.npz, plant.csv); empty: not written"),
    "exit_on_completion": ("false", "end the launch when the scenario's last step is done"),
    "steps": ("", "number of steps (default: the scenario's)"),
}


def _flag(name: str, value: str) -> bool:
    if value.lower() not in TRUE + ("false", "0", "no"):
        raise ValueError(f"launch argument {name}:={value} is not allowed: must be true or false")
    return value.lower() in TRUE


def specs_from_arguments(values: dict[str, str]) -> list[NodeSpec]:
    """Node specs for the launch arguments' values (strings, as launch delivers them)."""
    source = values["scenario"]
    overrides = {}
    if values.get("steps"):
        overrides["steps"] = _steps(values["steps"])
    scenario = load_source(source).with_overrides(**overrides)
    output = values.get("output", "")
    specs = node_specs(scenario, source if is_factory(source) else source_path(source), values["namespace"],
                       values["mode"], output_file=str(Path(output).resolve() / "plant.npz") if output else "",
                       exit_on_completion=_flag("exit_on_completion", values.get("exit_on_completion", "false")),
                       overrides=overrides)
    use_sim_time = _flag("use_sim_time", values["use_sim_time"])
    return [NodeSpec(s.executable, s.name, s.namespace,
                     {**s.parameters, "use_sim_time": use_sim_time and s.executable == "agent"}, s.lifecycle, s.package)
            for s in specs]


def launch_actions(specs: list[NodeSpec]) -> list:
    """LifecycleNode for plant and agents, Node for the lifecycle manager; the launch ends when the plant
    exits (after its last step with exit_on_completion, or when it fails)."""
    end_launch = EndLaunchOnce("the plant has exited (scenario complete or failed)")
    actions = []
    for spec in specs:
        kwargs = dict(package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
                      parameters=[spec.parameters], output="screen")
        action = LifecycleNode(**kwargs) if spec.lifecycle else Node(**kwargs)
        actions.append(action)
        if spec.executable == "plant":
            actions.append(RegisterEventHandler(OnProcessExit(target_action=action, on_exit=end_launch)))
    return actions


class EndLaunchOnce:
    """OnProcessExit handler that shuts the launch down once: a second Shutdown event makes launch_ros shut its
    adapter down twice ("Cannot shutdown a ROS adapter that is not running") and the launch exit 1. Exits handled
    before the first Shutdown is processed (fake bases ending together) do not see context.is_shutdown yet."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.emitted = False

    def __call__(self, event, context: LaunchContext) -> list:
        if self.emitted or context.is_shutdown:
            return []
        self.emitted = True
        return [EmitEvent(event=Shutdown(reason=self.reason))]


def _nodes(context: LaunchContext) -> list:
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    limits = thread_limits() if values["mode"] == "real_time" else []
    return limits + launch_actions(specs_from_arguments(values))


def scenario_launch_description(default_scenario: str = "mass_spring") -> LaunchDescription:
    """The launch description of one scenario: its arguments (LAUNCH_ARGUMENTS) and its nodes."""
    arguments = [DeclareLaunchArgument(name, default_value=default_scenario if name == "scenario" else default,
                                       description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])


def thread_limits() -> list:
    """Real-time and robot runs: one BLAS thread per node process unless the shell says otherwise (see
    environment.NODE_THREAD_VARIABLES)."""
    return [SetEnvironmentVariable(name, value) for name, value in blas_thread_limits(os.environ).items()]


ROBOT_ARGUMENTS = {
    "scenario": ("unicycle_robots", "scenario whose agents are robots (a model with a robot base)"),
    "namespace": ("/dmpc", "ROS namespace of the agents and their plan topics"),
    "agents": ("all", "the agents that run on this computer: all, none (just the manager), or ids such as 0,2"),
    "manager": ("true", "start the lifecycle manager here (one per fleet; it brings up every agent)"),
    "robot_prefix": ("/robot_", "robot i's base topics are <prefix><i>/odom and <prefix><i>/cmd_vel"),
    "robot_state": ("odometry", "what the bases publish: odometry (nav_msgs/Odometry) or pose (PoseStamped)"),
    "start_time": ("0", "UNIX time [s] of step 0, the same on every computer; 0: launch time + start_delay"),
    "start_delay": ("8", "seconds from launch to step 0 when start_time is 0 (bring-up must fit in it)"),
    "steps": ("", "number of steps (default: the scenario's)"),
    "fake_robots": ("false", "also start a fake base per agent here (ros2 run dmpc_ros fake_robot) at the "
                             "scenario's initial state, under <prefix><i>"),
    "odom_noise": ("0.0", "fake bases: odometry position noise [m] (heading: a tenth of it in rad per m)"),
    "odom_latency": ("0.0", "fake bases: odometry latency [s]"),
    "odom_drop": ("0.0", "fake bases: probability that an odometry message is lost"),
    "output": ("", "fake bases: folder for their true trajectories (robot_<i>.npz)"),
    "exit_on_completion": ("false", "fake bases exit one second after the last step, which ends the launch"),
}


def _number(name: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not low <= number <= high:
        raise ValueError(f"launch argument {name}:={value} is not allowed: must be a number in [{low:g}, {high:g}]")
    return number


def _steps(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 10_000_000:
        raise ValueError(f"launch argument steps:={value} is not allowed: must be an integer in [1, 10000000]")
    return int(value)


def robot_actions(values: dict[str, str], now: float) -> list:
    """Agents in robot mode (the chosen ones), the lifecycle manager, and fake bases if asked for."""
    source = values["scenario"]
    overrides = {"steps": _steps(values["steps"])} if values.get("steps") else {}
    scenario = load_source(source).with_overrides(**overrides)
    if scenario.family.robot_base(scenario) is None:
        raise ValueError(f"launch argument scenario:={source} is not allowed: its agents are not robots "
                         f"(model.type {scenario.family.name} has no robot base)")
    M = scenario.num_agents
    named = {"all": list(range(M)), "none": []}
    chosen = named[values["agents"]] if values["agents"] in named else \
        sorted({int(_number("agents", part, 0, M - 1)) for part in values["agents"].split(",")})
    start = _number("start_time", values["start_time"], 0, 1e10) or \
        now + _number("start_delay", values["start_delay"], 0, 3600)
    dt, namespace, prefix = scenario.sample_time, values["namespace"], values["robot_prefix"]
    specs = node_specs(scenario, source if is_factory(source) else source_path(source), namespace, "real_time",
                       overrides=overrides)
    agents = [spec for spec in specs if spec.executable == "agent"]
    actions = []
    for i in chosen:
        spec = agents[i]
        parameters = {**spec.parameters, "robot_mode": True, "robot_state": values["robot_state"],
                      "start_time": start, "use_sim_time": False}
        actions.append(LifecycleNode(package=spec.package, executable="agent", name=spec.name,
                                     namespace=namespace, parameters=[parameters], output="screen", remappings=[
                                         (f"{spec.full_name}/{leaf}", f"{prefix}{i}/{leaf}")
                                         for leaf in ("odom", "pose", "cmd_vel")]))
    if _flag("manager", values["manager"]):
        manager = next(spec for spec in specs if spec.executable == "lifecycle_manager")
        parameters = {**manager.parameters, "node_names": [a.full_name for a in agents]}
        actions.append(Node(package=manager.package, executable="lifecycle_manager", name=manager.name,
                            namespace=namespace, parameters=[parameters], output="screen"))
    if _flag("fake_robots", values["fake_robots"]):
        noise = _number("odom_noise", values["odom_noise"], 0, 10)
        output = values["output"]
        duration = start - now + scenario.steps * dt + 1.0 if _flag("exit_on_completion",
                                                                     values["exit_on_completion"]) else 0.0
        x0 = scenario.initial_state.reshape(M, -1)
        base = scenario.family.robot_base(scenario)
        end_launch = EndLaunchOnce("a fake base has run its duration")
        for i in chosen:
            robot = Node(package="dmpc_ros", executable="fake_robot", name="fake_robot", namespace=f"{prefix}{i}",
                         output="screen", parameters=[{
                             "x": float(x0[i, base.position[0]]), "y": float(x0[i, base.position[1]]),
                             "yaw": float(x0[i, base.heading]), "position_noise": noise, "heading_noise": noise / 10,
                             "latency": _number("odom_latency", values["odom_latency"], 0, 10),
                             "drop_probability": _number("odom_drop", values["odom_drop"], 0, 1), "seed": i,
                             "duration": duration,
                             "output_file": str(Path(output).resolve() / f"robot_{i}.npz") if output else ""}])
            actions.append(robot)
            if duration:
                actions.append(RegisterEventHandler(OnProcessExit(target_action=robot, on_exit=end_launch)))
    return actions


def robots_launch_description() -> LaunchDescription:
    """robots.launch.py: the agents of a robot scenario on real (or fake) bases, no plant node."""
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in ROBOT_ARGUMENTS.items()]

    def nodes(context: LaunchContext) -> list:
        values = {name: LaunchConfiguration(name).perform(context) for name in ROBOT_ARGUMENTS}
        return thread_limits() + robot_actions(values, time.time())

    return LaunchDescription(arguments + [OpaqueFunction(function=nodes)])
