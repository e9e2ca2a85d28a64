"""`ros2 launch dmpc_ros mass_budget.launch.py`: 4 decoupled masses sharing a net-force budget (dual decomposition)
(see scenario.launch.py)."""
from dmpc_ros.ros.launch_description import scenario_launch_description


def generate_launch_description():
    return scenario_launch_description("mass_budget")
