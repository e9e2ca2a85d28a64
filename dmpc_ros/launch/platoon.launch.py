"""`ros2 launch dmpc_ros platoon.launch.py`: a 6-vehicle platoon following a speed profile (cooperative Gauss-Seidel
DMPC) (see scenario.launch.py)."""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("platoon")
