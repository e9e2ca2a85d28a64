"""`ros2 launch dmpc_ros mass_spring_robust.launch.py`: the 4-mass chain at its limits under disturbances, tube-based
robust DMPC (see scenario.launch.py)."""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("mass_spring_robust")
