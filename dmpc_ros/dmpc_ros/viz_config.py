"""An rviz2 config for one scenario (`dmpc viz-config SCENARIO`): a path and a marker display per agent, whatever the
agent count, and a top-down view of the fixed frame `map` that frames the agents' initial positions (the family's
PlanarLayout, models/layout.py). The shipped config/rviz_*.rviz are this for the platoon and the formation."""
from __future__ import annotations

import math

import numpy as np
import yaml

from .scenarios.node_specs import agent_topic
from .scenarios.parameters import DEFAULTS

WINDOW = (1200, 800)   # [px] width, height
MARGIN = 2.0           # [m] around the agents' initial positions (or half their spread, if more)
TOPIC_QOS = {"Depth": 5, "Durability Policy": "Volatile", "History Policy": "Keep Last",
             "Reliability Policy": "Best Effort"}   # matches the agents' best-effort path and marker publishers


def initial_positions(scenario) -> np.ndarray:
    """(M × 2) map-frame positions of the agents at the scenario's initial state."""
    layout, plant = scenario.family.layout(scenario), scenario.plant()
    return np.array([layout.position(i, scenario.initial_state[plant.state_slice(i)])
                     for i in range(scenario.num_agents)])


def _topic(namespace: str, agent: int, leaf: str) -> dict:
    return {"Value": agent_topic(agent, leaf, namespace), **TOPIC_QOS}


def _agent_displays(namespace: str, agent: int) -> list[dict]:
    return [
        {"Class": "rviz_default_plugins/Path", "Name": f"agent {agent} predicted path", "Enabled": True,
         "Topic": _topic(namespace, agent, "path"), "Line Style": "Lines", "Line Width": 0.03, "Pose Style": "None",
         "Value": True},
        {"Class": "rviz_default_plugins/MarkerArray", "Name": f"agent {agent} markers", "Enabled": True,
         "Topic": _topic(namespace, agent, "markers"), "Namespaces": {}, "Value": True},
    ]


def rviz_config(scenario, namespace: str = DEFAULTS["namespace"]) -> str:
    """The config's text (YAML, as rviz2 saves it), with a comment saying what it is for and how to open it."""
    positions = initial_positions(scenario)
    margin = max(MARGIN, float(np.ptp(positions, axis=0).max()) / 2)
    low, high = positions.min(axis=0) - margin, positions.max(axis=0) + margin
    centre, extent = (low + high) / 2, high - low
    scale = min(WINDOW[0] / extent[0], WINDOW[1] / extent[1])   # [px/m]
    cells = 2 * math.ceil(max(np.abs(low).max(), np.abs(high).max())) + 2
    grid = {"Class": "rviz_default_plugins/Grid", "Name": "Grid", "Enabled": True, "Plane": "XY", "Cell Size": 1,
            "Plane Cell Count": cells, "Reference Frame": "<Fixed Frame>", "Value": True}
    displays = [grid] + [d for i in range(scenario.num_agents) for d in _agent_displays(namespace, i)]
    config = {
        "Panels": [{"Class": "rviz_common/Displays", "Name": "Displays"}],
        "Visualization Manager": {
            "Class": "", "Displays": displays, "Enabled": True,
            "Global Options": {"Background Color": "255; 255; 255", "Fixed Frame": "map", "Frame Rate": 30},
            "Name": "root", "Tools": [{"Class": "rviz_default_plugins/MoveCamera"}], "Value": True,
            "Views": {"Current": {"Class": "rviz_default_plugins/TopDownOrtho", "Name": "Current View",
                                  "Scale": round(float(scale), 1), "X": round(float(centre[0]), 2),
                                  "Y": round(float(centre[1]), 2), "Target Frame": "<Fixed Frame>",
                                  "Value": "TopDownOrtho (rviz_default_plugins)"},
                      "Saved": None}},
        "Window Geometry": {"Height": WINDOW[1], "Width": WINDOW[0], "Hide Left Dock": False},
    }
    header = (f"# rviz2 config for dmpc_ros scenario {scenario.name} ({scenario.num_agents} agents under "
              f"{namespace}), written by `dmpc viz-config {scenario.name}`.\n"
              f"# rviz2 -d <this file>   (agents publish <namespace>/agent_<i>/path and /markers in frame map)\n")
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
