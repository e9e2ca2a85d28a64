"""In-process recorder of a run: every plan, state, input, status, path and marker array as an MCAP bag, statuses
kept for the summary.

Subscribes with raw (CDR) delivery and writes the bytes unchanged, with the message definitions as
`ros2msg` schemas, so the bag opens in PlotJuggler / Foxglove / `ros2 bag` like one rosbag2 wrote. Chunks are
small and flushed, so after a SIGKILL `dmpc bag repair` recovers everything but the last chunk (dmpc_ros/bag.py).
Its subscriptions match each topic's reliability and durability with a deep keep-last queue of their own
(`Recording.depth`, qos.recording_qos), chosen by measurement under CPU load (bench/bag_completeness.py).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mcap.writer import Writer
from nav_msgs.msg import Path as NavPath
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from visualization_msgs.msg import MarkerArray

from dmpc_ros_msgs.msg import AgentStatus, ControlInput, PredictedTrajectory, SubsystemState

from ..scenarios.node_specs import agent_topic
from .message_definitions import definition, type_name
from .qos import CONTROL_QOS, STATE_QOS, STATUS_QOS, plan_qos, recording_qos

CHUNK_SIZE = 32 * 1024   # [bytes] small chunks: a killed runner leaves all but the last one readable (dmpc bag)
FLUSH_PERIOD = 0.25      # [s]
RECORDER_DEPTH = 1000    # keep-last depth of every recorder subscription (bench/bag_completeness.py)


@dataclass(frozen=True)
class Recording:
    """How the recorder takes messages in: `depth` of each subscription's keep-last queue (0: keep all; None: the
    publishers' own profiles, depth 1 for states), and whether a background thread writes the file (the callback
    then only queues the bytes)."""

    depth: int | None = RECORDER_DEPTH
    writer_thread: bool = False


class RunRecorder(Node):
    def __init__(self, namespace: str, num_agents: int, bag_path: Path, plan_qos_choice: str,
                 metadata: tuple[str, dict[str, str]] | None = None, live=None, recording: Recording = Recording(),
                 **kwargs) -> None:
        """`live` (the Foxglove bridge), if given, is told every topic up front (`advertise(topic, message_type)`)
        and then gets every message too (`forward(topic, cdr_bytes, log_time_ns)`)."""
        super().__init__("recorder", namespace=namespace, **kwargs)
        bag_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = bag_path.open("wb")
        self.writer = Writer(self._file, chunk_size=CHUNK_SIZE)
        self._flushed = time.monotonic()
        self.writer.start(profile="ros2", library="dmpc_ros")
        if metadata is not None:   # what `dmpc plot` needs to rebuild the report from the bag alone
            self.writer.add_metadata(*metadata)
        self.live = live
        self.statuses: list[AgentStatus] = []
        self.plans = 0
        self.plan_bytes = 0
        self._channels = {}
        topics = []
        for i in range(num_agents):
            topics += [(agent_topic(i, "plan"), PredictedTrajectory, plan_qos(plan_qos_choice)),
                       (agent_topic(i, "state"), SubsystemState, STATE_QOS),
                       (agent_topic(i, "control"), ControlInput, CONTROL_QOS),
                       (agent_topic(i, "status"), AgentStatus, STATUS_QOS),
                       (agent_topic(i, "path"), NavPath, STATUS_QOS),
                       (agent_topic(i, "markers"), MarkerArray, STATUS_QOS)]
        schemas = {}
        for topic, message_type, qos in topics:
            if message_type not in schemas:
                schemas[message_type] = self.writer.register_schema(
                    name=type_name(message_type), encoding="ros2msg", data=definition(type_name(message_type)).encode())
            full = f"{namespace.rstrip('/')}/{topic}"
            channel = self.writer.register_channel(topic=full, message_encoding="cdr", schema_id=schemas[message_type])
            if live is not None:
                live.advertise(full, message_type)
            self.create_subscription(message_type, topic, lambda data, c=channel, t=message_type, name=full:
                                     self._on(c, t, data, name), recording_qos(qos, recording.depth), raw=True)
        self._queue: queue.SimpleQueue | None = None
        self._writer_thread = None
        if recording.writer_thread:
            self._queue = queue.SimpleQueue()
            self._writer_thread = threading.Thread(target=self._write_queued, name="recorder-writer", daemon=True)
            self._writer_thread.start()

    def _write(self, channel: int, now: int, data: bytes) -> None:
        self.writer.add_message(channel_id=channel, log_time=now, publish_time=now, data=data)
        if time.monotonic() - self._flushed > FLUSH_PERIOD:   # closed chunks reach the disk: a kill loses one chunk
            self._file.flush()
            self._flushed = time.monotonic()

    def _write_queued(self) -> None:
        while (item := self._queue.get()) is not None:
            self._write(*item)

    def _on(self, channel: int, message_type: type, data: bytes, topic: str) -> None:
        now = self.get_clock().now().nanoseconds
        if self._queue is not None:
            self._queue.put((channel, now, data))
        else:
            self._write(channel, now, data)
        if self.live is not None:
            self.live.forward(topic, data, now)
        if message_type is AgentStatus:
            self.statuses.append(deserialize_message(data, AgentStatus))
        elif message_type is PredictedTrajectory:
            self.plans += 1
            self.plan_bytes += len(data)

    def close(self) -> None:
        if self._writer_thread is not None:
            self._queue.put(None)
            self._writer_thread.join()
        self.writer.finish()
        self._file.close()
