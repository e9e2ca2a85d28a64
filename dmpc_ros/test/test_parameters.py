"""Parameters are declared once (scenarios/parameters.py): the node declarations, the parameters dmpc run and the
launch files pass, the dmpc flags, the launch arguments and README's table all equal the table, and no default or
range of a table parameter is spelled anywhere else."""
from __future__ import annotations

import argparse
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import PACKAGE_DIR, REPO_DIR
from dmpc_ros.scenarios import load_scenario, scenario_path
from dmpc_ros.scenarios.node_specs import host_agents, node_specs
from dmpc_ros.scenarios.parameters import (NODES, PARAMETERS, TABLE, flag_parameters, from_launch, launch_arguments,
                                           markdown_table, node_overrides, node_parameters, readme_section)

SOURCE = PACKAGE_DIR / "dmpc_ros"
NUMERIC = [p for p in TABLE if p.type in (int, float) and p.low is not None and p.high is not None]


def test_readme_table_is_the_generated_one() -> None:
    assert readme_section((REPO_DIR / "README.md").read_text()) == markdown_table(), \
        "README's parameter table is stale: run .venv/bin/python tools/readme_parameters.py"


def test_every_parameter_is_reachable_and_described() -> None:
    for p in TABLE:
        assert p.nodes or p.flag or p.launch, f"{p.name}: set nowhere"
        assert p.description and "|" not in p.description, p.name
        assert set(p.nodes) <= set(NODES)
        assert p.default is None or p.problem(p.default) is None, f"{p.name}: default {p.default!r} not allowed"
        assert not (p.live and p.read_only), p.name


@given(st.sampled_from(NUMERIC), st.floats(allow_nan=True, allow_infinity=True, width=64))
def test_a_value_is_allowed_exactly_inside_the_range(parameter, value) -> None:
    """The table's check agrees with its range (what the node descriptor declares) for any number."""
    if parameter.type is int:
        value = float(math.floor(value)) if math.isfinite(value) else value
    inside = math.isfinite(value) and (value > parameter.low if parameter.open_low else value >= parameter.low) \
        and value <= parameter.high
    assert (parameter.problem(value) is None) == (inside or parameter.is_unset(value))
    if not (inside or parameter.is_unset(value)):
        with pytest.raises(ValueError, match=rf"^parameter {parameter.name}: .* is not allowed: must be"):
            parameter.check_node_value(value)


# -- node declarations -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nodes():
    import rclpy

    from dmpc_ros.ros.agent_node import AgentNode
    from dmpc_ros.ros.fake_robot import FakeRobot
    from dmpc_ros.ros.lifecycle_manager import LifecycleManager
    from dmpc_ros.ros.plant_node import PlantNode

    context = rclpy.Context()
    rclpy.init(context=context)
    made = {"agent": AgentNode(context=context), "plant": PlantNode(context=context),
            "lifecycle_manager": LifecycleManager(context=context), "fake_robot": FakeRobot(context=context)}
    yield made
    for node in made.values():
        node.destroy_node()
    rclpy.try_shutdown(context=context)


@pytest.mark.parametrize("kind", NODES)
def test_node_declarations_equal_the_table(nodes, kind: str) -> None:
    from rclpy.parameter import Parameter as RosParameter

    from dmpc_ros.ros.parameters import ARRAY_TYPES, descriptor

    node = nodes[kind]
    own = set(node.get_parameters_by_prefix("")) - {"use_sim_time", "start_type_description_service"}
    assert own == {p.name for p in node_parameters(kind)}
    for p in node_parameters(kind):
        declared = node.describe_parameter(p.name)
        expected = descriptor(p)
        for field in ("description", "read_only", "integer_range", "floating_point_range", "additional_constraints"):
            assert getattr(declared, field) == getattr(expected, field), f"{kind}.{p.name}: {field}"
        kind_of = ARRAY_TYPES.get(p.type) or RosParameter.Type.from_parameter_value(p.default)
        assert declared.type == kind_of.value, p.name
        if p.default is not None:
            assert node.get_parameter(p.name).value == p.default, p.name


def test_set_parameter_refuses_what_the_table_refuses(nodes) -> None:
    from rclpy.parameter import Parameter as RosParameter

    plant = nodes["plant"]
    assert not plant.set_parameters([RosParameter("steps", value=1_000_001)])[0].successful   # the range
    result = nodes["lifecycle_manager"].set_parameters([RosParameter("heartbeat_timeout", value=0.0)])[0]
    assert not result.successful
    assert plant.set_parameters([RosParameter("steps", value=1_000_000)])[0].successful


# -- dmpc run and the launch files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["lock_step", "real_time"])
def test_node_specs_pass_table_parameters_with_allowed_values(mode: str) -> None:
    scenario = load_scenario("platoon").with_overrides(steps=12, horizon=8, tolerance=1e-4, strict=True)
    specs = node_specs(scenario, scenario_path("platoon"), mode=mode,
                       overrides={"steps": 12, "horizon": 8, "tolerance": 1e-4, "strict": True})
    for spec in host_agents(specs, 2):
        for node in spec.nodes:
            names = {p.name for p in node_parameters(node.executable)}
            for name, value in node.parameters.items():
                if name == "use_sim_time":
                    continue
                assert name in names, f"{node.executable} gets {name}, which it does not declare"
                PARAMETERS[name].check_node_value(value)
    agent = next(s for s in specs if s.executable == "agent").parameters
    assert node_overrides(agent, "agent") == {"steps": 12, "horizon": 8, "tolerance": 1e-4}
    assert node_overrides(specs[0].parameters, "plant") == {"steps": 12}


def test_bad_settings_are_one_line_naming_the_parameter() -> None:
    scenario, path = load_scenario("mass_spring"), scenario_path("mass_spring")
    for keyword, value, text in (("mode", "fast", "mode 'fast' is not allowed: must be one of lock_step, real_time"),
                                 ("namespace", "dmpc", "namespace 'dmpc' is not allowed: an absolute ROS namespace"),
                                 ("iteration_timeout", 0.0, "iteration_timeout 0.0 is not allowed: must be ≥ 0.001")):
        with pytest.raises(ValueError, match=re.escape(text)):
            node_specs(scenario, path, **{keyword: value})


def test_launch_values_are_read_and_checked_by_the_table() -> None:
    assert from_launch({"steps": "", "mode": "real_time", "namespace": "/a"}, "scenario") == \
        {"steps": 0, "mode": "real_time", "namespace": "/a"}
    assert from_launch({"steps": "1000000"}, "scenario") == {"steps": 1_000_000}
    for text, message in (("1000001", "steps:=1000001 is not allowed: must be ≥ 1 and ≤ 1e+06"),
                          ("abc", "steps:=abc is not allowed: must be an integer ≥ 1 and ≤ 1e+06"),
                          ("0", "steps:=0 is not allowed")):
        with pytest.raises(ValueError, match=re.escape(f"launch argument {message}")):
            from_launch({"steps": text}, "scenario")
    with pytest.raises(ValueError, match=re.escape("odom_drop:=2 is not allowed: must be ≥ 0.0 and ≤ 1.0")):
        from_launch({"odom_drop": "2"}, "robots")


def test_launch_arguments_are_the_tables() -> None:
    pytest.importorskip("launch_ros")
    from dmpc_ros.ros.launch_description import LAUNCH_ARGUMENTS, ROBOT_ARGUMENTS

    for arguments, launch_file in ((LAUNCH_ARGUMENTS, "scenario"), (ROBOT_ARGUMENTS, "robots")):
        generated = launch_arguments(launch_file)
        assert {name: arguments[name] for name in generated} == generated
    assert LAUNCH_ARGUMENTS["steps"] == ("", PARAMETERS["steps"].help)
    assert ROBOT_ARGUMENTS["odom_latency"][0] == "0.0"


def test_dmpc_flags_are_the_tables() -> None:
    from dmpc_ros.cli import build_parser, dest

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in subparsers.choices.items():
        if command == "smoke":   # the DDS demo: its --timeout is its own
            continue
        options = {o: a for a in parser._actions for o in a.option_strings}
        for p in flag_parameters(command):
            action = options.pop(f"--{p.flag}")
            assert action.dest == dest(p.flag)
            assert p.description in action.help
            if p.override:
                assert action.default is None
                assert p.type is bool or action.type is p.type
            else:   # a bool is a switch (store_true)
                kind = bool if p.type is bool and action.nargs == 0 else action.type
                default = None if p.by_mode else p.default   # a by-mode flag: not given, the run decides
                assert (kind, action.default, tuple(action.choices or ())) == (p.type, default, p.choices)
        spelled = {o[2:].replace("-", "_") for o in options} & {p.name for p in TABLE}
        assert not spelled, f"dmpc {command}: flags {spelled} set table parameters but are not generated from it"


# -- spelled once -----------------------------------------------------------------------------------------------------
LITERAL = r"(?:-?\d[\d_]*\.?\d*(?:e[-+]?\d+)?|[\"'][^\"'\n]*[\"']|True|False)"
SCANNED = sorted([*(SOURCE / "ros").glob("*.py"), SOURCE / "scenarios" / "node_specs.py", SOURCE / "cli.py",
                  SOURCE / "viz_config.py"])
NOT_SCANNED = {"smoke.py"}   # the DDS demo: its own messages, no node parameters
# Values a caller sets on purpose (not a default): robots.launch.py puts agents in robot mode; a scenario source is
# one of the two parameters, the other empty; agent_topic's namespace "" means a relative topic.
SET_ON_PURPOSE = {'"robot_mode": True', '"scenario_file": ""', '"scenario_factory": ""', 'namespace: str = ""'}


def literal_spellings(text: str, name: str) -> list[str]:
    """Where `text` gives table parameter `name` a literal value: a default in a signature, a dict entry, a
    declare_parameter call, a (name, default, description) row."""
    n = re.escape(name)
    patterns = (rf"[\"']{n}[\"']\s*:\s*{LITERAL}(?=\s*[,}}])",                       # "name": value
                rf"(?<![.\w]){n}\s*:\s*[\w\[\]| ]+=\s*{LITERAL}(?=\s*[,)])",           # name: type = value
                rf"declare_parameter\(\s*[\"']{n}[\"']\s*,\s*{LITERAL}",                 # declare_parameter
                rf"\(\s*[\"']{n}[\"']\s*,\s*{LITERAL}\s*,\s*[\"']")                     # (name, value, "…")
    return [m.group(0) for pattern in patterns for m in re.finditer(pattern, text)
            if m.group(0) not in SET_ON_PURPOSE]


def test_no_default_or_range_of_a_table_parameter_is_spelled_elsewhere() -> None:
    found = []
    for path in SCANNED:
        if path.name in NOT_SCANNED:
            continue
        text = path.read_text()
        found += [f"{path.relative_to(SOURCE)}: {hit}" for p in TABLE for hit in literal_spellings(text, p.name)]
        found += [f"{path.relative_to(SOURCE)}: declare_parameter" for _ in re.finditer(r"\.declare_parameter\(", text)
                  if path.name != "parameters.py"]
    assert not found, "spelled outside scenarios/parameters.py:\n" + "\n".join(found)


def test_the_spelling_check_finds_the_old_copies() -> None:
    """It can fail: the copies this table replaced are found."""
    old = ('self.declare_parameter("transition_timeout", 30.0, ParameterDescriptor(description="per call"))\n'
           '"heartbeat_timeout": heartbeat_timeout, "transition_timeout": 60.0}\n'
           'def node_specs(scenario, iteration_timeout: float = 2.0, mode: str = "lock_step") -> list:\n'
           '("rate", 50.0, "integration and odometry rate [Hz]")\n')
    assert len(literal_spellings(old, "transition_timeout")) == 2
    assert literal_spellings(old, "iteration_timeout") == ["iteration_timeout: float = 2.0"]
    assert literal_spellings(old, "mode") == ['mode: str = "lock_step"']
    assert literal_spellings(old, "rate") == ['("rate", 50.0, "']


def test_robot_states_and_plan_qos_choices_are_the_nodes() -> None:
    from dmpc_ros.ros.qos import PLAN_QOS_CHOICES, plan_qos
    from dmpc_ros.ros.robot_link import STATE_MESSAGES

    assert tuple(STATE_MESSAGES) == PARAMETERS["robot_state"].choices
    assert PLAN_QOS_CHOICES == PARAMETERS["plan_qos"].choices
    for choice in PLAN_QOS_CHOICES:
        plan_qos(choice)


def test_the_strict_flag_names_the_exit_code_strict_mode_uses() -> None:
    """The table cannot import the sim layer (it sits below it), so its text names the code; this keeps them equal."""
    from dmpc_ros.scenarios.parameters import PARAMETERS
    from dmpc_ros.sim.results import STRICT_EXIT

    assert f"({STRICT_EXIT})" in PARAMETERS["strict"].description
