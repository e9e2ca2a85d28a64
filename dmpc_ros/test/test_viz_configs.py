"""The rviz2, PlotJuggler and Foxglove configs in config/ name only topics and fields a recorded run has."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml
from mcap_ros2.reader import read_ros2_messages

from conftest import PACKAGE_DIR

CONFIG = PACKAGE_DIR / "config"
DMPC = [str(Path(sys.prefix) / "bin" / "dmpc")]
RUNS = {"rviz_line.rviz": "platoon", "rviz_plane.rviz": "formation", "plotjuggler.xml": "mass_spring",
        "foxglove.json": "mass_spring"}


def rviz_names(path: Path) -> list[tuple[str, str]]:
    config = yaml.safe_load(path.read_text())
    return [(d["Topic"]["Value"], "") for d in config["Visualization Manager"]["Displays"] if "Topic" in d]


def plotjuggler_names(path: Path) -> list[tuple[str, str]]:
    """Curve names are <topic>/<field path>; the topic is all agent_<i>/<leaf> levels."""
    curves = [c.get("name") for c in ElementTree.parse(path).iter("curve")]
    return [(m.group(1), m.group(2).replace("/", ".")) for m in (re.match(r"(/dmpc/agent_\d+/\w+)/(.+)", c)
                                                                 for c in curves)]


def foxglove_names(path: Path) -> list[tuple[str, str]]:
    config = json.loads(path.read_text())["configById"]
    names = [(topic, "") for panel in config.values() for topic in panel.get("topics", {})]
    for panel in config.values():
        names += [tuple(p["value"].split(".", 1)) for p in panel.get("paths", [])]
    return names


READERS = {".rviz": rviz_names, ".xml": plotjuggler_names, ".json": foxglove_names}


def resolve(message, field: str):
    """message.a.b[2] for the field path 'a.b[2]'."""
    value = message
    for name, index in re.findall(r"(\w+)(?:\[(\d+)\])?", field):
        value = getattr(value, name)
        if index:
            value = value[int(index)]
    return value


@pytest.fixture(scope="module")
def recorded(lock_step_run) -> dict[str, dict]:
    """scenario → {topic: first message} of the session's short `dmpc run` of it (conftest.lock_step_run)."""
    from dmpc_ros.scenarios import load_scenario

    first = {}
    for scenario in sorted(set(RUNS.values())):
        run = lock_step_run(scenario, load_scenario(scenario).controller.algorithm)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        first[scenario] = {}
        for message in read_ros2_messages(str(run.output / "run.mcap")):
            first[scenario].setdefault(message.channel.topic, message.ros_msg)
    return first


def test_every_config_is_checked() -> None:
    assert sorted(RUNS) == sorted(p.name for p in CONFIG.iterdir() if p.suffix in READERS)


@pytest.mark.ros
@pytest.mark.parametrize("config", sorted(RUNS))
def test_config_names_only_recorded_topics_and_fields(recorded, config: str) -> None:
    messages = recorded[RUNS[config]]
    names = READERS[Path(config).suffix](CONFIG / config)
    assert names
    for topic, field in names:
        assert topic in messages, f"{config}: topic {topic} is not in a recorded {RUNS[config]} run"
        if field:
            resolve(messages[topic], field)   # AttributeError / IndexError name what is missing


@pytest.mark.ros
def test_formation_agents_draw_the_collision_halfplanes_they_keep(recorded) -> None:
    from dmpc_ros.scenarios import load_scenario

    formation = load_scenario("formation")
    collision = formation.design().collision
    for i in range(formation.num_agents):
        markers = {m.ns: m for m in recorded["formation"][f"/dmpc/agent_{i}/markers"].markers}
        assert len(markers["collision_halfplanes"].points) == 2 * len(collision.partners(i)), i


@pytest.mark.parametrize("config,scenario", [("rviz_line.rviz", "platoon"), ("rviz_plane.rviz", "formation")])
def test_shipped_rviz_configs_are_what_dmpc_viz_config_writes(config: str, scenario: str) -> None:
    from dmpc_ros.scenarios import load_scenario
    from dmpc_ros.viz_config import rviz_config

    assert (CONFIG / config).read_text() == rviz_config(load_scenario(scenario))


def test_dmpc_viz_config_shows_every_agent_and_frames_them(tmp_path: Path) -> None:
    from dmpc_ros.scenarios import load_scenario
    from dmpc_ros.viz_config import WINDOW, initial_positions

    path = tmp_path / "robots.rviz"
    run = subprocess.run(DMPC + ["viz-config", "unicycle_robots", "--namespace", "/fleet", "--output", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(t for t, _ in rviz_names(path)) == sorted(f"/fleet/agent_{i}/{leaf}" for i in range(4)
                                                            for leaf in ("markers", "path"))
    view = yaml.safe_load(path.read_text())["Visualization Manager"]["Views"]["Current"]
    half_width, half_height = WINDOW[0] / 2 / view["Scale"], WINDOW[1] / 2 / view["Scale"]
    for x, y in initial_positions(load_scenario("unicycle_robots")):
        assert abs(x - view["X"]) < half_width and abs(y - view["Y"]) < half_height
    for arguments, message in ((["formation", "--namespace", "fleet"], "--namespace fleet: is not allowed"),
                               (["nosuch"], "scenario 'nosuch' not found"),
                               (["formation", "--output", str(tmp_path)], "is a directory")):
        refused = subprocess.run(DMPC + ["viz-config", *arguments], capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
