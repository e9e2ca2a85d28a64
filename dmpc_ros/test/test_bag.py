"""A bag cut anywhere (a recorder killed with SIGKILL) is repaired into a well-formed bag holding every message
of its complete chunks, in order; `dmpc bag repair` says what it kept."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from mcap.reader import make_reader
from mcap.writer import Writer

from dmpc_ros.bag import read_bag, repair_bag
from dmpc_ros.ros.recorder import CHUNK_SIZE

MESSAGES = 3000


def recorded_bag(path: Path) -> list[bytes]:
    """A bag written the way the recorder writes one (same chunk size), its payloads in order."""
    payloads = [f"plan {k} ".encode() * (1 + k % 40) for k in range(MESSAGES)]
    with path.open("wb") as handle:
        writer = Writer(handle, chunk_size=CHUNK_SIZE)
        writer.start(profile="ros2", library="test")
        schema = writer.register_schema("dmpc_ros_msgs/msg/AgentStatus", "ros2msg", b"uint32 step")
        channels = [writer.register_channel(f"/dmpc/agent_{i}/status", "cdr", schema) for i in range(3)]
        for k, data in enumerate(payloads):
            writer.add_message(channels[k % 3], k, data, k)
        writer.finish()
    return payloads


def indexed_messages(path: Path) -> list[bytes]:
    with path.open("rb") as handle:   # the indexed (seeking) reader: what fails on a torn file
        return [message.data for _, _, message in make_reader(handle).iter_messages()]


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1.0))
def test_a_bag_cut_anywhere_is_repaired_to_the_messages_before_the_cut(tmp_path_factory, fraction: float) -> None:
    folder = tmp_path_factory.mktemp("bag")
    payloads = recorded_bag(folder / "run.mcap")
    data = (folder / "run.mcap").read_bytes()
    cut = int(fraction * len(data))
    (folder / "torn.mcap").write_bytes(data[:cut])
    contents = repair_bag(folder / "torn.mcap", folder / "fixed.mcap")
    kept = indexed_messages(folder / "fixed.mcap")
    assert kept == payloads[: len(kept)]            # a prefix, in order, nothing invented
    assert contents.complete == (cut == len(data))
    with (folder / "run.mcap").open("rb") as handle:   # every chunk that ends before the cut is kept whole
        chunks = make_reader(handle).get_summary().chunk_indexes
    whole = [c for c in chunks if c.chunk_start_offset + c.chunk_length <= cut]
    assert len(kept) == (max(c.message_end_time for c in whole) + 1 if whole else 0)   # log_time k = message k
    assert len(kept) == MESSAGES or cut < len(data)


def test_the_cli_repairs_a_torn_bag_and_says_what_it_kept(tmp_path: Path) -> None:
    recorded_bag(tmp_path / "run.mcap")
    data = (tmp_path / "run.mcap").read_bytes()
    (tmp_path / "torn.mcap").write_bytes(data[: len(data) // 2])
    assert not read_bag(tmp_path / "torn.mcap").complete
    run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "bag", "repair", str(tmp_path / "torn.mcap")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    kept = indexed_messages(tmp_path / "torn.repaired.mcap")
    assert len(kept) > MESSAGES // 3 and f"{len(kept)} messages on 3 topics" in run.stdout
    assert "torn tail was dropped" in run.stdout
    missing = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "bag", "repair", str(tmp_path / "none.mcap")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "none.mcap: does not exist" in missing.stderr
