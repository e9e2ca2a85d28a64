"""Splitting a team across computers: which nodes a computer runs (node_specs.select_nodes), the flags' checks, and
the environment of static discovery (environment.ros_environment, lossy_link_environment)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmpc_ros.ros.environment import fastdds_profile, lossy_link_environment, ros_environment
from dmpc_ros.scenarios.node_specs import HEAD_NODES, NodeSpec, is_head, select_nodes
from dmpc_ros.scenarios.parameters import PARAMETERS, peer_addresses


def team(agents: int) -> list[NodeSpec]:
    return [NodeSpec("plant", "plant", "/dmpc")] + [NodeSpec("agent", f"agent_{i}", "/dmpc") for i in range(agents)] \
        + [NodeSpec("lifecycle_manager", "lifecycle_manager", "/dmpc")]


@given(st.integers(1, 30), st.data())
def test_the_computers_selections_partition_the_team(agents, data) -> None:
    """Any assignment of agents to computers, written as ranges and names, gives each node to exactly one computer,
    and exactly one computer (the head) has the plant and the manager."""
    computers = data.draw(st.integers(1, 4))
    owner = [data.draw(st.integers(0, computers - 1)) for _ in range(agents)]
    head = data.draw(st.integers(0, computers - 1))
    specs = team(agents)
    chosen = []
    for c in range(computers):
        names = [f"agent_{i}" for i in range(agents) if owner[i] == c] + (list(HEAD_NODES) if c == head else [])
        selection = ",".join(names) if names else None
        if selection is None:
            continue
        assert PARAMETERS["nodes"].problem(selection) is None
        local = select_nodes(specs, selection)
        assert is_head(local) == (c == head)
        chosen += [spec.name for spec in local]
    assert sorted(chosen) == sorted(spec.name for spec in specs)


def test_a_range_names_its_agents_and_all_names_everyone() -> None:
    specs = team(6)
    assert [s.name for s in select_nodes(specs, "agent_1-3, agent_5")] == ["agent_1", "agent_2", "agent_3", "agent_5"]
    assert select_nodes(specs, "all") == specs and select_nodes(specs, "") == specs


@pytest.mark.parametrize("selection, says", [
    ("agent_6", "entry 'agent_6' is not allowed: must be all, or comma-separated names of plant, lifecycle_manager, "
                "agent_0..agent_5"),
    ("agent_3-1", "entry 'agent_3-1' is not allowed"),
    ("plant,agent_0", "plant and lifecycle_manager run on the same computer"),
    ("lifecycle_manager", "plant and lifecycle_manager run on the same computer"),
])
def test_a_wrong_selection_is_one_line_naming_the_entry(selection, says) -> None:
    with pytest.raises(ValueError, match="^nodes: ") as error:
        select_nodes(team(6), selection)
    assert says in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("peers, ok", [("10.0.0.1,10.0.0.2", True), ("robot-1.local, fe80::1", True),
                                       ("10.0.0.1;10.0.0.2", False), ("-bad", False), ("a" * 300, False)])
def test_peers_are_addresses_or_host_names(peers, ok) -> None:
    assert (PARAMETERS["peers"].problem(peers) is None) == ok


def test_static_peers_mean_unicast_discovery_of_exactly_those_addresses() -> None:
    env = ros_environment(17, base={"ROS_STATIC_PEERS": "stale"}, peers=peer_addresses("10.0.0.1, 10.0.0.2"))
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and env["ROS_STATIC_PEERS"] == "10.0.0.1;10.0.0.2"
    assert "ROS_STATIC_PEERS" not in ros_environment(17, base={"ROS_STATIC_PEERS": "stale"})


def test_the_repair_profile_is_valid_fast_dds_xml_and_a_users_own_wins(tmp_path) -> None:
    root = ET.fromstring(fastdds_profile(0.02))
    ns = {"d": "http://www.eprosima.com"}
    period = root.find("d:profiles/d:data_writer/d:times/d:heartbeat_period", ns)
    assert (period.find("d:sec", ns).text, period.find("d:nanosec", ns).text) == ("0", "20000000")
    assert root.find("d:profiles/d:data_writer", ns).get("is_default_profile") == "true"
    written = lossy_link_environment(tmp_path, 0.02, {})
    assert ET.parse(written["FASTDDS_DEFAULT_PROFILES_FILE"]).getroot() is not None
    assert lossy_link_environment(tmp_path, 0.02, {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}
    assert lossy_link_environment(tmp_path, 0.0, {}) == {}
