"""Turning a scenario into ros2 launch actions — what every launch file of the package runs.

The node specs come from `scenarios.node_specs`, the same ones `dmpc run` starts, so both start the same
processes with the same parameters. Only launch files import this module (it needs launch and launch_ros).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler, \
    SetEnvironmentVariable
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from ..process_group import RespawnPolicy
from ..scenarios.node_specs import KINDS, NodeSpec, node_specs, select_nodes
from ..scenarios.parameters import DEFAULTS, from_launch, launch_arguments, node_overrides, parse_flag_text, \
    peer_addresses
from ..scenarios.source import is_factory, load_source, source_path
from .environment import PROFILES_VARIABLE, blas_thread_limits, lossy_link_environment, ros_environment

# Launch arguments: the table's (scenarios/parameters.py: defaults, descriptions, checks) and a few of the launch's own.
LAUNCH_ARGUMENTS = {
    "scenario": ("mass_spring", "scenario name (config/<name>.yaml), a scenario YAML file, or a Python factory "
                                "module:function / file.py:function"),
    "use_sim_time": ("true", "agents follow the plant's /clock (lock_step); false for real robots"),
    "output": ("", "folder for the plant's trajectory (plant.npz, plant.csv); empty: not written"),
    **launch_arguments("scenario"),
}


def _flag(name: str, value: str) -> bool:
    return parse_flag_text(name, value)


def specs_from_arguments(values: dict[str, str]) -> list[NodeSpec]:
    """Node specs for the launch arguments' values (strings, as launch delivers them)."""
    source = values["scenario"]
    settings = from_launch(values, "scenario")
    overrides = node_overrides(settings, "plant")   # steps, the only override a launch argument gives
    scenario = load_source(source).with_overrides(**overrides)
    output = values.get("output", "")
    respawn = settings.get("respawn", DEFAULTS["respawn"])
    specs = node_specs(scenario, source if is_factory(source) else source_path(source), settings["namespace"],
                       settings["mode"], output_file=str(Path(output).resolve() / "plant.npz") if output else "",
                       exit_on_completion=settings.get("exit_on_completion", False),
                       overrides=overrides, resume_dir=str(Path(output).resolve() / "resume")
                       if output and respawn != "none" else "",
                       **{k: settings[k] for k in {"iteration_timeout", "authenticate", "keystore", "respawn"}
                          if k in settings})
    use_sim_time = _flag("use_sim_time", values["use_sim_time"])
    return [NodeSpec(s.executable, s.name, s.namespace,
                     {**s.parameters, "use_sim_time": use_sim_time and s.executable == "agent"}, s.lifecycle, s.package)
            for s in specs]


def respawn_policy(values: dict[str, str]) -> RespawnPolicy:
    """The launch arguments' respawn policy (respawn, respawn_limit, respawn_delay), checked by the table."""
    settings = {**DEFAULTS, **from_launch(values, "scenario")}
    return RespawnPolicy(settings["respawn"], settings["respawn_limit"], settings["respawn_delay"])


def launch_actions(specs: list[NodeSpec], policy: RespawnPolicy = RespawnPolicy()) -> list:
    """LifecycleNode for plant and agents, Node for the lifecycle manager; the launch ends when the plant
    exits (after its last step with exit_on_completion, or when it fails), but not when it dies while `policy`
    respawns it (launch_ros respawn, respawn_delay, respawn_max_retries: the processes `policy` covers)."""
    end_launch = EndLaunchOnce("the plant has exited (scenario complete or failed)",
                               policy if policy.covers("plant") else None)
    actions = []
    secured = os.environ.get("ROS_SECURITY_ENABLE", "").lower() == "true"   # SROS2: each node in its enclave
    for spec in specs:
        kwargs = dict(package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
                      parameters=[spec.parameters], output="screen")
        if secured:
            kwargs["ros_arguments"] = ["--enclave", spec.full_name]
        if policy.covers(KINDS[spec.executable]):
            kwargs.update(respawn=True, respawn_delay=float(policy.delay), respawn_max_retries=int(policy.limit))
        action = LifecycleNode(**kwargs) if spec.lifecycle else Node(**kwargs)
        actions.append(action)
        if spec.executable == "plant":
            actions.append(RegisterEventHandler(OnProcessExit(target_action=action, on_exit=end_launch)))
    return actions


class EndLaunchOnce:
    """OnProcessExit handler that shuts the launch down once: a second Shutdown event makes launch_ros shut its
    adapter down twice ("Cannot shutdown a ROS adapter that is not running") and the launch exit 1. Exits handled
    before the first Shutdown is processed (fake bases ending together) do not see context.is_shutdown yet."""

    def __init__(self, reason: str, respawned: RespawnPolicy | None = None) -> None:
        self.reason = reason
        self.emitted = False
        self.respawned = respawned   # the plant is respawned under this policy: its death does not end the launch

    def __call__(self, event, context: LaunchContext) -> list:
        if self.emitted or context.is_shutdown:
            return []
        code = getattr(event, "returncode", 0)
        if self.respawned is not None and self.respawned.restart_delay("plant", "plant", code) is not None:
            return []   # launch starts it again (respawn=True); counted here as launch counts it
        self.emitted = True
        return [EmitEvent(event=Shutdown(reason=self.reason))]


def _nodes(context: LaunchContext) -> list:
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    limits = thread_limits() if values["mode"] == "real_time" else []
    settings = from_launch(values, "scenario")
    try:
        specs = select_nodes(specs_from_arguments(values), settings["nodes"])
    except ValueError as error:   # launch prints it as the reason the launch failed
        raise ValueError(f"launch argument {error}") from None
    return limits + team_environment(settings["peers"]) + launch_actions(specs, respawn_policy(values))


def team_environment(peers: str) -> list:
    """peers:=…: static discovery for the nodes started here (the same environment `dmpc run --peers` gives its
    nodes) and fast repair of reliable topics on links that may lose packets (environment.lossy_link_environment,
    its profile written into a temporary folder)."""
    addresses = peer_addresses(peers)
    if not addresses:
        return []
    env = ros_environment(int(os.environ.get("ROS_DOMAIN_ID", "0")), peers=addresses)
    env.update(lossy_link_environment(Path(tempfile.mkdtemp(prefix="dmpc_launch_")), DEFAULTS["repair_period"], env))
    names = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", PROFILES_VARIABLE)
    return [SetEnvironmentVariable(name, env[name]) for name in names if name in env]


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
    "agents": ("all", "the agents that run on this computer: all, none (just the manager), or ids such as 0,2"),
    "manager": ("true", "start the lifecycle manager here (one per fleet; it brings up every agent)"),
    "robot_prefix": ("/robot_", "robot i's base topics are <prefix><i>/odom and <prefix><i>/cmd_vel"),
    "fake_robots": ("false", "also start a fake base per agent here (ros2 run dmpc_ros fake_robot) at the "
                             "scenario's initial state, under <prefix><i>"),
    "output": ("", "fake bases: folder for their true trajectories (robot_<i>.npz)"),
    "exit_on_completion": ("false", "fake bases exit one second after the last step, which ends the launch"),
    **launch_arguments("robots"),
}


def _agent_ids(text: str, count: int) -> list[int]:
    ids = []
    for part in text.split(","):
        if not (part.strip().isdigit() and int(part) < count):
            raise ValueError(f"launch argument agents:={text} is not allowed: must be all, none or agent ids "
                             f"0..{count - 1} separated by commas")
        ids.append(int(part))
    return sorted(set(ids))


def robot_actions(values: dict[str, str], now: float) -> list:
    """Agents in robot mode (the chosen ones), the lifecycle manager, and fake bases if asked for."""
    source = values["scenario"]
    settings = from_launch(values, "robots")
    overrides = node_overrides(settings, "plant")   # steps
    scenario = load_source(source).with_overrides(**overrides)
    if scenario.family.robot_base(scenario) is None:
        raise ValueError(f"launch argument scenario:={source} is not allowed: its agents are not robots "
                         f"(model.type {scenario.family.name} has no robot base)")
    M = scenario.num_agents
    named = {"all": list(range(M)), "none": []}
    chosen = named[values["agents"]] if values["agents"] in named else _agent_ids(values["agents"], M)
    start = settings["start_time"] or now + settings["start_delay"]
    dt, namespace, prefix = scenario.sample_time, settings["namespace"], values["robot_prefix"]
    specs = node_specs(scenario, source if is_factory(source) else source_path(source), namespace, "real_time",
                       overrides=overrides)
    agents = [spec for spec in specs if spec.executable == "agent"]
    actions = []
    for i in chosen:
        spec = agents[i]
        parameters = {**spec.parameters, "robot_mode": True, "robot_state": settings["robot_state"],
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
        noise = settings["odom_noise"]
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
                             "latency": settings["latency"], "drop_probability": settings["drop_probability"],
                             "seed": i,
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
