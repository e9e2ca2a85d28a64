"""`ros2 launch dmpc_ros formation_robust.launch.py`: four robots crossing under disturbances, tube-based robust DMPC
(see scenario.launch.py)."""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("formation_robust")
