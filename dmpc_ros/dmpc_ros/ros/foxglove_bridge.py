"""`dmpc run --foxglove [PORT]`: the run's topics served live over the Foxglove WebSocket protocol (foxglove-sdk),
so the Foxglove app shows a run without any ROS tools. Every topic the recorder takes in is forwarded unchanged
as a ROS 2 CDR channel whose schema is the type's `ros2msg` definition, as rosbag2 would describe it. The server
listens on loopback only."""
from __future__ import annotations

import foxglove

from .message_definitions import definition, type_name

HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class FoxgloveBridge:
    """A Foxglove WebSocket server and one channel per forwarded topic. Every channel is advertised before the
    run starts: one created while a client subscribed raced the server ("subscribe to unknown channel")."""

    def __init__(self, port: int = DEFAULT_PORT, name: str = "dmpc_ros") -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"--foxglove {port} is not allowed: give a TCP port 1..65535 (0: any free one)")
        self.server = foxglove.start_server(name=name, host=HOST, port=port)
        self.channels: dict[str, foxglove.Channel] = {}

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.server.port}"

    def advertise(self, topic: str, message_type: type) -> None:
        name = type_name(message_type)
        self.channels[topic] = foxglove.Channel(topic, message_encoding="cdr", schema=foxglove.Schema(
            name=name, encoding="ros2msg", data=definition(name).encode()))

    def forward(self, topic: str, data: bytes, log_time: int) -> None:
        self.channels[topic].log(data, log_time=log_time)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.server.stop()
