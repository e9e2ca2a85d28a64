"""The launch files are thin adapters over the node specs `dmpc run` uses; launch_ros is not installable here,
so the launch API is replaced by recording stand-ins and the launch file is executed for real."""
from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from conftest import PACKAGE_DIR
from dmpc_ros.scenarios import load_scenario, scenario_path
from dmpc_ros.scenarios.node_specs import node_specs


class Recorded:
    """Stand-in for a launch class: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context) -> str:
        return context.launch_configurations[self.args[0]]


@pytest.fixture
def fake_launch(monkeypatch):
    classes = {}
    for module_name, names in {"launch": ["LaunchDescription"],
                               "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction"],
                               "launch.substitutions": [], "launch_ros": [],
                               "launch_ros.actions": ["LifecycleNode", "Node"]}.items():
        module = types.ModuleType(module_name)
        for name in names:
            classes[name] = type(name, (Recorded,), {})
            setattr(module, name, classes[name])
        monkeypatch.setitem(sys.modules, module_name, module)
    sys.modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    return classes


def load_launch_file(name: str):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), PACKAGE_DIR / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("launch_file,scenario", [("mass_spring.launch.py", "mass_spring"),
                                                  ("mass_budget.launch.py", "mass_budget"),
                                                  ("platoon.launch.py", "platoon"),
                                                  ("formation.launch.py", "formation"),
                                                  ("mass_spring_robust.launch.py", "mass_spring_robust"),
                                                  ("platoon_robust.launch.py", "platoon_robust")])
def test_launch_file_starts_the_runner_nodes(fake_launch, launch_file: str, scenario: str) -> None:
    description = load_launch_file(launch_file).generate_launch_description()
    entities = description.args[0]
    arguments = {e.args[0]: e.kwargs for e in entities if isinstance(e, fake_launch["DeclareLaunchArgument"])}
    assert set(arguments) == {"scenario", "namespace", "use_sim_time", "mode"}
    assert arguments["scenario"]["default_value"] == scenario
    assert all(a["description"] for a in arguments.values())
    opaque = next(e for e in entities if isinstance(e, fake_launch["OpaqueFunction"]))
    context = types.SimpleNamespace(launch_configurations={
        name: kwargs["default_value"] for name, kwargs in arguments.items()})
    actions = opaque.kwargs["function"](context)

    expected = node_specs(load_scenario(scenario), scenario_path(scenario), "/dmpc", "lock_step")
    assert [a.kwargs["name"] for a in actions] == [s.name for s in expected]
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["LifecycleNode"] * (len(expected) - 1) + ["Node"]
    for action, spec in zip(actions, expected):
        assert action.kwargs["executable"] == spec.executable and action.kwargs["namespace"] == "/dmpc"
        parameters = action.kwargs["parameters"][0]
        assert parameters["use_sim_time"] == (spec.executable == "agent")
        assert {k: v for k, v in parameters.items() if k != "use_sim_time"} == \
               {k: v for k, v in spec.parameters.items() if k != "use_sim_time"}
    setup_text = (PACKAGE_DIR / "setup.py").read_text()
    assert all(f'"{spec.executable}":' in setup_text for spec in expected)


def test_agents_hosted_k_to_a_process_keep_their_names_and_parameters() -> None:
    from dmpc_ros.ros.agent_container import hosted_names
    from dmpc_ros.scenarios.node_specs import host_agents, parameters_file

    specs = node_specs(load_scenario("platoon"), scenario_path("platoon"))
    hosted = host_agents(specs, 3)
    containers = [s for s in hosted if s.executable == "agent_container"]
    agents = [s for s in specs if s.executable == "agent"]
    assert [s.executable for s in hosted] == ["plant"] + ["agent_container"] * len(containers) + ["lifecycle_manager"]
    assert [len(c.hosted) for c in containers] == [3] * (len(agents) // 3) + ([len(agents) % 3] if len(agents) % 3
                                                                               else [])
    assert [a for c in containers for a in c.hosted] == agents
    assert parameters_file(hosted) == parameters_file(specs)   # every node still finds its own parameters
    with pytest.raises(ValueError, match="agents per process 0 is not allowed"):
        host_agents(specs, 0)
    assert hosted_names(["agent_0", "agent_1"]) == ["agent_0", "agent_1"]
    for bad, message in (([], "no node names"), (["agent_0", "agent_0"], "given twice"), (["0x"], "not allowed")):
        with pytest.raises(ValueError, match=message):
            hosted_names(bad)
