"""Turning a scenario into ros2 launch actions — what every launch file of the package runs.

The node specs come from `scenarios.node_specs`, the same ones `dmpc run` starts, so both start the same
processes with the same parameters. Only launch files import this module (it needs launch and launch_ros).
"""
from __future__ import annotations

from pathlib import Path

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from ..scenarios.node_specs import NodeSpec, node_specs
from ..scenarios.source import is_factory, load_source, source_path

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
        if not values["steps"].isdigit() or int(values["steps"]) < 1:
            raise ValueError(f"launch argument steps:={values['steps']} is not allowed: must be an integer >= 1")
        overrides["steps"] = int(values["steps"])
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
    actions = []
    for spec in specs:
        kwargs = dict(package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
                      parameters=[spec.parameters], output="screen")
        action = LifecycleNode(**kwargs) if spec.lifecycle else Node(**kwargs)
        actions.append(action)
        if spec.executable == "plant":
            actions.append(RegisterEventHandler(OnProcessExit(target_action=action, on_exit=_end_launch)))
    return actions


def _end_launch(event, context: LaunchContext) -> list:
    """Shut the launch down when the plant has exited, unless it is already shutting down (a second Shutdown
    event makes launch_ros shut its adapter down twice, which fails the launch)."""
    if context.is_shutdown:
        return []
    return [EmitEvent(event=Shutdown(reason="the plant has exited (scenario complete or failed)"))]


def _nodes(context: LaunchContext) -> list:
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    return launch_actions(specs_from_arguments(values))


def scenario_launch_description(default_scenario: str = "mass_spring") -> LaunchDescription:
    """The launch description of one scenario: its arguments (LAUNCH_ARGUMENTS) and its nodes."""
    arguments = [DeclareLaunchArgument(name, default_value=default_scenario if name == "scenario" else default,
                                       description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
