"""`ros2 launch dmpc_ros mass_spring_robust.launch.py`: the 4-mass chain at its limits under disturbances, tube-based
robust DMPC (see scenario.launch.py)."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("dmpc_scenario_launch", Path(__file__).with_name("scenario.launch.py"))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)


def generate_launch_description():
    return _module.generate_launch_description(default_scenario="mass_spring_robust")
