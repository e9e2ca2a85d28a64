"""Scenario files with fields replaced, for tests that probe one setting at a time."""
from __future__ import annotations

import copy

import yaml

from dmpc_ros.scenarios import Scenario, parse_scenario, scenario_path


def edited(name: str, **changes) -> dict:
    """config/<name>.yaml as data with dotted-path fields replaced (e.g. model.vehicles.count=4)."""
    data = copy.deepcopy(yaml.safe_load(scenario_path(name).read_text()))
    for dotted, value in changes.items():
        target = data
        *parents, key = dotted.split(".")
        for part in parents:
            target = target[part]
        target[key] = value
    return data


def scenario_with(name: str, **changes) -> Scenario:
    return parse_scenario(edited(name, **changes))


def replaced(data: dict, path: list, value) -> dict:
    """A deep copy of scenario data with data[p0][p1]... = value (keys or list indices)."""
    result = copy.deepcopy(data)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result
