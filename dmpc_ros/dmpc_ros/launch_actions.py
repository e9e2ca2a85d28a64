"""Turning node specs into ros2 launch actions — the thin adapter the launch files use.

Kept apart from the launch files so it can be tested where launch_ros is not installed (the classes are
passed in); the node specs themselves come from `scenarios.node_specs`, the same ones `dmpc run` starts.
"""
from __future__ import annotations

from typing import Any

from .scenarios.node_specs import NodeSpec, node_specs
from .scenarios.source import is_factory, load_source, source_path

LAUNCH_ARGUMENTS = {
    "scenario": ("mass_spring", "scenario name (config/<name>.yaml), a scenario YAML file, or a Python factory "
                                "module:function / file.py:function"),
    "namespace": ("/dmpc", "ROS namespace of the run's nodes and topics"),
    "use_sim_time": ("true", "agents follow the plant's /clock (lock_step); false for real robots"),
    "mode": ("lock_step", "lock_step (the plant owns time) or real_time (fixed-rate plant, zero-order hold)"),
}


def specs_from_arguments(values: dict[str, str]) -> list[NodeSpec]:
    """Node specs for the launch arguments' values (strings, as launch delivers them)."""
    source = values["scenario"]
    specs = node_specs(load_source(source), source if is_factory(source) else source_path(source),
                       values["namespace"], values["mode"])
    use_sim_time = values["use_sim_time"].lower() in ("true", "1", "yes")
    return [NodeSpec(s.executable, s.name, s.namespace,
                     {**s.parameters, "use_sim_time": use_sim_time and s.executable == "agent"}, s.lifecycle, s.package)
            for s in specs]


def launch_actions(specs: list[NodeSpec], lifecycle_node: Any, node: Any) -> list[Any]:
    """launch_ros actions: LifecycleNode for plant and agents, Node for the lifecycle manager."""
    actions = []
    for spec in specs:
        kwargs = dict(package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace,
                      parameters=[spec.parameters], output="screen")
        actions.append(lifecycle_node(**kwargs) if spec.lifecycle else node(**kwargs))
    return actions
