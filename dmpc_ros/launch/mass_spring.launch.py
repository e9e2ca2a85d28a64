"""`ros2 launch dmpc_ros mass_spring.launch.py`: the 4-mass chain under cooperative DMPC (see scenario.launch.py)."""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("mass_spring")
