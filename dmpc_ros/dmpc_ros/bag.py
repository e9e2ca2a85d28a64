"""Run bags (MCAP) that survive a killed recorder: read every complete record in streaming mode and write them
into a well-formed bag again (`dmpc bag repair`).

A recorder killed with SIGKILL leaves a file without its summary and footer and with a torn last record, which
the indexed reader refuses (`RecordLengthLimitExceeded`, a bad magic). The recorder writes small chunks and
flushes them (ros/recorder.py), so all but the last chunk is on disk; a streaming read stops at the first
incomplete record, and what precedes it is kept.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import Writer

# what a torn tail raises: a cut record (struct, EOF), a bad length, a cut compressed chunk, a CRC mismatch
TORN = (McapError, struct.error, EOFError, ValueError, zlib.error)


@dataclass
class BagContents:
    """The complete records of a bag, in file order, and whether it ended cleanly (with its footer)."""

    schemas: dict[int, Schema]
    channels: dict[int, Channel]
    messages: list[Message]
    complete: bool
    error: str = ""   # what stopped the read of a torn file


def read_bag(path: Path) -> BagContents:
    """Every schema, channel and message record of `path` up to the first incomplete one (streaming read)."""
    schemas, channels, messages = {}, {}, []
    complete = False
    error = ""
    with Path(path).open("rb") as handle:
        try:
            for record in StreamReader(handle, validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    messages.append(record)
            complete = True
        except TORN as failure:
            error = f"{type(failure).__name__}: {failure}"
    return BagContents(schemas, channels, messages, complete, error)


def repair_bag(source: Path, target: Path) -> BagContents:
    """Write the complete records of `source` into a well-formed bag at `target` (summary, footer, index)."""
    contents = read_bag(source)
    with Path(target).open("wb") as handle:
        writer = Writer(handle)
        writer.start(profile="ros2", library="dmpc_ros bag repair")
        schema_ids = {old: writer.register_schema(s.name, s.encoding, s.data) for old, s in contents.schemas.items()}
        channel_ids = {old: writer.register_channel(c.topic, c.message_encoding, schema_ids.get(c.schema_id, 0),
                                                    c.metadata) for old, c in contents.channels.items()}
        for message in contents.messages:
            if message.channel_id in channel_ids:
                writer.add_message(channel_ids[message.channel_id], message.log_time, message.data,
                                   message.publish_time, message.sequence)
        writer.finish()
    return contents
