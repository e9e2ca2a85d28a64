"""Launch any dmpc_ros scenario: `ros2 launch dmpc_ros scenario.launch.py scenario:=<name or path>`.

Plant and agents are lifecycle nodes brought up by dmpc_ros's lifecycle manager; the node list and every
parameter come from dmpc_ros.scenarios.node_specs, the same expansion `dmpc run` uses.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from dmpc_ros.launch_actions import LAUNCH_ARGUMENTS, launch_actions, specs_from_arguments


def _nodes(context, *args, **kwargs):
    values = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    return launch_actions(specs_from_arguments(values), LifecycleNode, Node)


def generate_launch_description(default_scenario: str = "mass_spring") -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=default_scenario if name == "scenario" else default,
                                       description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
