"""`dmpc plot` on what a run left in its bag (issue 27, "Lost"): a torn bag is read up to its last complete record
and repaired beside it; steps a topic misses are named; states it misses are recomputed exactly with the plant
model; a file that is no bag is refused in one line. The bags here are written the way the recorder writes them
(CDR bytes, ros2msg schemas, its chunk size) from an in-process closed loop, so the truth is known."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcap.writer import Writer
from rclpy.serialization import serialize_message

from dmpc_ros.api import load, simulate
from dmpc_ros.bag import NotABag, gap_summary, gap_text, missing_steps, read_bag, step_ranges
from dmpc_ros.report import BAG_METADATA, read_run_bag, result_from_bag
from dmpc_ros.ros.message_definitions import definition, type_name
from dmpc_ros.ros.recorder import CHUNK_SIZE
from dmpc_ros_msgs.msg import AgentStatus, ControlInput, SubsystemState

STEPS = 30


@pytest.fixture(scope="module")
def closed_loop():
    scenario = load("mass_spring").with_overrides(steps=STEPS)
    return scenario, simulate(scenario)


def write_run_bag(path: Path, scenario, result, drop: set[tuple[str, int, int]] = frozenset()) -> None:
    """The bag a lock-step run of `result` would leave: per step every agent's state, then input and status (and the
    state after the last step), without the (leaf, agent, step) in `drop`."""
    plant = scenario.plant()
    with path.open("wb") as handle:
        writer = Writer(handle, chunk_size=CHUNK_SIZE)
        writer.start(profile="ros2", library="test")
        writer.add_metadata(BAG_METADATA, {"scenario": "mass_spring", "overrides": f'{{"steps": {STEPS}}}'})
        channels = {}
        for message_type, leaf in ((SubsystemState, "state"), (ControlInput, "control"), (AgentStatus, "status")):
            schema = writer.register_schema(type_name(message_type), "ros2msg",
                                            definition(type_name(message_type)).encode())
            for i in range(scenario.num_agents):
                channels[leaf, i] = writer.register_channel(f"/dmpc/agent_{i}/{leaf}", "cdr", schema)
        time = 0

        def add(leaf: str, i: int, k: int, message) -> None:
            nonlocal time
            time += 1
            if (leaf, i, k) not in drop:
                writer.add_message(channels[leaf, i], time, serialize_message(message), time)

        for k in range(result.steps + 1):
            for i in range(scenario.num_agents):
                add("state", i, k, SubsystemState(agent_id=i, step=k, state=result.x[k, plant.state_slice(i)].tolist()))
            if k < result.steps:
                for i in range(scenario.num_agents):
                    add("control", i, k, ControlInput(agent_id=i, step=k, input=result.u[k, plant.input_slice(i)]
                                                      .tolist()))
                    add("status", i, k, AgentStatus(agent_id=i, step=k, iterations=int(result.iterations[k])))
        writer.finish()


def test_a_whole_bag_gives_the_closed_loop_exactly(tmp_path: Path, closed_loop) -> None:
    scenario, result = closed_loop
    write_run_bag(tmp_path / "run.mcap", scenario, result)
    notes = []
    rebuilt, _ = result_from_bag(tmp_path / "run.mcap", notes.append)
    assert notes == []
    assert np.array_equal(rebuilt.x, result.x) and np.array_equal(rebuilt.u, result.u)


def test_missing_states_are_named_and_recomputed_bit_for_bit(tmp_path: Path, closed_loop) -> None:
    scenario, result = closed_loop
    drop = {("state", i, k) for i in range(scenario.num_agents) for k in (3, 4, 5, 6, 7, 12)} | {("state", 1, 20)}
    write_run_bag(tmp_path / "run.mcap", scenario, result, drop)
    notes = []
    rebuilt, _ = result_from_bag(tmp_path / "run.mcap", notes.append)
    assert f"agent_0/state: 6 of {STEPS + 1} steps missing: 3-7, 12" in notes
    assert f"agent_1/state: 7 of {STEPS + 1} steps missing: 3-7, 12, 20" in notes
    assert "states of steps 3-7, 12, 20 recomputed with the plant model from the step before" in notes
    assert np.array_equal(rebuilt.x, result.x) and np.array_equal(rebuilt.u, result.u)


def test_a_missing_input_ends_the_trajectory_and_says_so(tmp_path: Path, closed_loop) -> None:
    scenario, result = closed_loop
    write_run_bag(tmp_path / "run.mcap", scenario, result, {("control", 2, 17), ("status", 0, 4)})
    notes = []
    rebuilt, _ = result_from_bag(tmp_path / "run.mcap", notes.append)
    assert rebuilt.steps == 17 and np.array_equal(rebuilt.x, result.x[:18])
    assert f"agent_2/control: 1 of {STEPS} steps missing: 17" in notes
    assert f"agent_0/status: 1 of {STEPS} steps missing: 4" in notes
    assert f"drawing steps 0-17 of the 0-{STEPS} recorded: step 17 lacks an agent's input" in notes


@pytest.mark.parametrize("fraction", [0.3, 0.77])
def test_a_torn_bag_is_read_to_its_last_whole_record_and_repaired_beside_it(tmp_path: Path, closed_loop,
                                                                              fraction: float) -> None:
    scenario, result = closed_loop
    write_run_bag(tmp_path / "whole.mcap", scenario, result)
    data = (tmp_path / "whole.mcap").read_bytes()
    (tmp_path / "run.mcap").write_bytes(data[: int(fraction * len(data))])   # a runner killed mid-write
    with pytest.raises(Exception):   # what `dmpc plot` did before: the indexed reader refuses it
        from mcap.reader import make_reader
        with (tmp_path / "run.mcap").open("rb") as handle:
            list(make_reader(handle).iter_messages())
    contents = read_bag(tmp_path / "run.mcap")
    assert not contents.complete and contents.messages
    notes = []
    rebuilt, _ = result_from_bag(tmp_path / "run.mcap", notes.append)
    assert notes[0] == (f"{tmp_path / 'run.mcap'} is torn ({contents.error}): recovered {len(contents.messages)} "
                        f"messages on 12 topics from its complete records; a repaired copy is in "
                        f"{tmp_path / 'run.repaired.mcap'}")
    assert 0 < rebuilt.steps <= STEPS and np.array_equal(rebuilt.x, result.x[: rebuilt.steps + 1])
    repaired = read_run_bag(tmp_path / "run.repaired.mcap")   # well-formed, with the metadata naming the scenario
    assert repaired.contents.complete and repaired.contents.metadata[BAG_METADATA]["scenario"] == "mass_spring"
    assert len(repaired.contents.messages) == len(contents.messages)


def test_a_file_that_is_no_bag_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.mcap").write_text("hello\n")
    with pytest.raises(NotABag, match=r"notes.mcap: is not an MCAP bag \(it starts with b'hello\\n'"):
        read_bag(tmp_path / "notes.mcap")
    for command in (["plot"], ["bag", "repair"]):
        run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", *command, str(tmp_path / "notes.mcap")],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "notes.mcap: is not an MCAP bag" in run.stderr
    (tmp_path / "empty.mcap").write_bytes(b"")   # cut before its magic: a torn bag with nothing in it
    assert not read_bag(tmp_path / "empty.mcap").complete


def test_the_gap_line_names_the_missing_steps() -> None:
    steps = {"/dmpc/agent_0/state": set(range(101)) - set(range(3, 8)) - {12},
             "/dmpc/agent_0/control": set(range(100)), "/dmpc/agent_0/status": set(range(100)) - {99},
             "/dmpc/agent_0/plan": {1}}
    gaps = missing_steps(steps)
    assert gaps == {"agent_0/state": ([3, 4, 5, 6, 7, 12], 101), "agent_0/status": ([99], 100)}
    assert gap_text("agent_0/state", *gaps["agent_0/state"]) == "agent_0/state: 6 of 101 steps missing: 3-7, 12"
    many = list(range(0, 40, 2))
    assert gap_text("agent_1/state", many, 101).endswith("missing: 0, 2, 4, 6, 8, 10, 12, 14, …")


@given(st.sets(st.integers(0, 300)))
def test_step_ranges_name_exactly_the_steps(steps: set[int]) -> None:
    text = step_ranges(sorted(steps))
    named = set()
    for part in filter(None, text.split(", ")):
        first, _, last = part.partition("-")
        named |= set(range(int(first), int(last or first) + 1))
    assert named == steps


def test_the_summary_names_the_steps_the_bag_lacks(closed_loop) -> None:
    _, result = closed_loop
    steps = {"/dmpc/agent_0/state": set(range(STEPS + 1)) - {3, 4, 5, 9}, "/dmpc/agent_0/control": set(range(STEPS))}
    summary = replace(result, bag_missing_steps=gap_summary(missing_steps(steps))).summary("mass_spring", None)
    assert summary["bag_missing_steps"] == {"agent_0/state": {"missing": 4, "of": STEPS + 1, "steps": "3-5, 9"}}
    assert result.summary("mass_spring", None)["bag_missing_steps"] == {}
