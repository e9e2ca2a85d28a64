"""`ros2 launch dmpc_ros platoon_robust.launch.py`: the platoon under bounded disturbances, tube-based robust DMPC
(see scenario.launch.py)."""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("platoon_robust")
