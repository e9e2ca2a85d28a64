"""Launch any dmpc_ros scenario: `ros2 launch dmpc_ros scenario.launch.py scenario:=<name or path>`.

Plant and agents are lifecycle nodes brought up by dmpc_ros's lifecycle manager; the node list and every
parameter come from dmpc_ros.scenarios.node_specs, the same expansion `dmpc run` uses. Arguments:
`ros2 launch dmpc_ros scenario.launch.py --show-args`.
"""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("mass_spring")
