"""Run bags (MCAP) that survive a killed recorder: read every complete record in streaming mode and write them
into a well-formed bag again (`dmpc bag repair`, and `dmpc plot` by itself); the steps a bag misses.

A recorder killed with SIGKILL leaves a file without its summary and footer and with a torn last record, which
the indexed reader refuses (`RecordLengthLimitExceeded`, a bad magic). The recorder writes small chunks and
flushes them (ros/recorder.py), so all but the last chunk is on disk; a streaming read stops at the first
incomplete record, and what precedes it is kept. A file that does not start like an MCAP file is refused in one
line (`NotABag`).

A run's plant publishes every subsystem's state for steps 0..T (the last one after the last input), every agent its
input and status for steps 0..T-1. `missing_steps` names the steps of those topics a bag lacks, from 0 to the last
state it has; `gap_text` says it in one line per topic, e.g. "agent_0/state: 42 of 101 steps missing: 3-7, 12, …".
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mcap.exceptions import McapError
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import Writer

# what a torn tail raises: a cut record (struct, EOF), a bad length, a cut compressed chunk, a CRC mismatch
TORN = (McapError, struct.error, EOFError, ValueError, zlib.error)
MAGIC = b"\x89MCAP0\r\n"   # how every MCAP file starts
STEP_TOPICS = {"state": 0, "control": 1, "status": 1}   # topic leaf → steps it has fewer than the states (0..T)
RANGES_SHOWN = 8   # ranges of missing steps a warning line names before "…"


class NotABag(ValueError):
    """The file is not an MCAP bag at all (its first bytes are not the MCAP magic)."""


@dataclass
class BagContents:
    """The complete records of a bag, in file order, and whether it ended cleanly (with its footer)."""

    schemas: dict[int, Schema]
    channels: dict[int, Channel]
    messages: list[Message]
    complete: bool
    error: str = ""   # what stopped the read of a torn file
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)   # metadata records by name

    def torn_text(self, path: Path) -> str:
        """One line on a torn bag: what stopped the read and what was recovered."""
        return (f"{path} is torn ({self.error or 'no footer'}): recovered {len(self.messages)} messages on "
                f"{len(self.channels)} topics from its complete records")


def read_bag(path: Path) -> BagContents:
    """Every schema, channel, metadata and message record of `path` up to the first incomplete one (streaming
    read). Raises NotABag when the file does not start with the MCAP magic (an empty or cut one is torn)."""
    schemas, channels, messages, metadata = {}, {}, [], {}
    complete = False
    error = ""
    with Path(path).open("rb") as handle:
        head = handle.read(len(MAGIC))
        if not MAGIC.startswith(head):
            raise NotABag(f"{path}: is not an MCAP bag (it starts with {head!r}, an MCAP file with {MAGIC!r})")
        handle.seek(0)
        try:
            for record in StreamReader(handle, validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    messages.append(record)
                elif isinstance(record, Metadata):
                    metadata[record.name] = dict(record.metadata)
            complete = True
        except TORN as failure:
            error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
    return BagContents(schemas, channels, messages, complete, error, metadata)


def decoded_messages(contents: BagContents, leaves: tuple[str, ...]) -> Iterator[tuple[str, object]]:
    """(topic, decoded message) of every message on a topic ending in one of `leaves` (e.g. "state"), in file
    order; messages a torn file cut, or whose schema it lost, are skipped."""
    from mcap_ros2.decoder import DecoderFactory

    factory, decoders = DecoderFactory(), {}
    for message in contents.messages:
        channel = contents.channels.get(message.channel_id)
        if channel is None or channel.topic.rsplit("/", 1)[-1] not in leaves:
            continue
        if channel.id not in decoders:
            schema = contents.schemas.get(channel.schema_id)
            decoders[channel.id] = None if schema is None else factory.decoder_for(channel.message_encoding, schema)
        if decoders[channel.id] is not None:
            yield channel.topic, decoders[channel.id](message.data)


def topic_name(topic: str) -> str:
    """A topic without its namespace: "/dmpc/agent_0/state" → "agent_0/state"."""
    return "/".join(topic.rsplit("/", 2)[-2:])


def missing_steps(steps: dict[str, set[int]]) -> dict[str, tuple[list[int], int]]:
    """Per topic (state, control and status topics of `steps`: topic → the steps it has), the steps it lacks and how
    many it should have: states 0..T, inputs and statuses 0..T-1, T the last step of any state topic."""
    states = [max(found) for topic, found in steps.items() if found and topic.endswith("/state")]
    if not states:
        return {}
    last = max(states)
    gaps = {}
    for topic, found in sorted(steps.items()):
        leaf = topic.rsplit("/", 1)[-1]
        if leaf in STEP_TOPICS:
            expected = last + 1 - STEP_TOPICS[leaf]
            lacking = [k for k in range(expected) if k not in found]
            if lacking:
                gaps[topic_name(topic)] = (lacking, expected)
    return gaps


def step_ranges(steps: list[int], limit: int | None = None) -> str:
    """Sorted steps as ranges, "3-7, 12, 15-16", the first `limit` ranges then "…"."""
    ranges: list[list[int]] = []
    for k in steps:
        if ranges and k == ranges[-1][1] + 1:
            ranges[-1][1] = k
        else:
            ranges.append([k, k])
    text = [f"{a}-{b}" if b > a else f"{a}" for a, b in ranges]
    if limit is not None and len(text) > limit:
        text = text[:limit] + ["…"]
    return ", ".join(text)


def gap_text(topic: str, lacking: list[int], expected: int) -> str:
    """One line on the steps a topic lacks, e.g. "agent_0/state: 42 of 101 steps missing: 3-7, 12, …"."""
    return f"{topic}: {len(lacking)} of {expected} steps missing: {step_ranges(lacking, RANGES_SHOWN)}"


def gap_lines(gaps: dict[str, tuple[list[int], int]], topics: int = 6) -> list[str]:
    """gap_text of the first `topics` topics missing steps, then one line for the rest."""
    lines = [gap_text(topic, lacking, expected) for topic, (lacking, expected) in list(gaps.items())[:topics]]
    if len(gaps) > topics:
        lines.append(f"and {len(gaps) - topics} more topics miss steps")
    return lines


def gap_summary(gaps: dict[str, tuple[list[int], int]]) -> dict[str, dict]:
    """summary.json's "bag_missing_steps": per topic the count missing, of how many, and every missing step as
    ranges."""
    return {topic: {"missing": len(lacking), "of": expected, "steps": step_ranges(lacking)}
            for topic, (lacking, expected) in gaps.items()}


def repair_bag(source: Path, target: Path) -> BagContents:
    """Write the complete records of `source` into a well-formed bag at `target` (summary, footer, index)."""
    contents = read_bag(source)
    with Path(target).open("wb") as handle:
        writer = Writer(handle)
        writer.start(profile="ros2", library="dmpc_ros bag repair")
        for name, values in contents.metadata.items():   # the dmpc_ros record names the run's scenario
            writer.add_metadata(name, values)
        schema_ids = {old: writer.register_schema(s.name, s.encoding, s.data) for old, s in contents.schemas.items()}
        channel_ids = {old: writer.register_channel(c.topic, c.message_encoding, schema_ids.get(c.schema_id, 0),
                                                    c.metadata) for old, c in contents.channels.items()}
        for message in contents.messages:
            if message.channel_id in channel_ids:
                writer.add_message(channel_ids[message.channel_id], message.log_time, message.data,
                                   message.publish_time, message.sequence)
        writer.finish()
    return contents
