"""`ros2 launch dmpc_ros formation.launch.py`: 6 robots agree on their centre, follow a path and reconfigure
without collisions (Jacobi DMPC) (see scenario.launch.py)."""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("formation")
