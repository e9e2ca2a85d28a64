"""`dmpc run --foxglove PORT`: a Foxglove WebSocket client (subprotocol foxglove.sdk.v1, as the app) subscribes to
three topics of a running scenario and decodes their CDR messages with the ros2msg schemas the server advertises."""
from __future__ import annotations

import json
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import websocket
from mcap.records import Schema
from mcap_ros2.decoder import DecoderFactory

DMPC = [str(Path(sys.prefix) / "bin" / "dmpc")]
TOPICS = ("/dmpc/agent_0/status", "/dmpc/agent_1/plan", "/dmpc/agent_2/path")


def test_bad_port_is_refused() -> None:
    run = subprocess.run(DMPC + ["run", "mass_spring", "--foxglove", "70000"], capture_output=True, text=True)
    assert run.returncode == 2 and "--foxglove 70000: is not allowed" in run.stderr


@pytest.mark.ros
def test_a_websocket_client_receives_and_decodes_three_topics(tmp_path: Path, ros_env: dict[str, str]) -> None:
    runner = subprocess.Popen(DMPC + ["run", "mass_spring", "--steps", "300", "--mode", "real_time", "--foxglove",
                                      "0", "--output", str(tmp_path), "--no-reference"], env=ros_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []   # the runner's output, read all along (an unread pipe would stall it) and shown on failure
    announced = threading.Event()

    def read_output() -> None:
        for line in runner.stdout:
            log.append(line)
            if "Foxglove live at" in line:
                announced.set()
        announced.set()

    threading.Thread(target=read_output, daemon=True).start()
    try:
        assert announced.wait(timeout=120), "no Foxglove announcement within 120 s"
        found = re.search(r"Foxglove live at (ws://127\.0\.0\.1:\d+)", "".join(log))
        assert found, "dmpc run ended before announcing the Foxglove server:\n" + "".join(log)
        url = found.group(1)
        client = websocket.create_connection(url, subprotocols=["foxglove.sdk.v1"], timeout=60)
        channels, decoded = {}, {topic: [] for topic in TOPICS}
        subscribed: dict[int, str] = {}
        deadline = time.monotonic() + 90
        while any(len(v) < 3 for v in decoded.values()) and time.monotonic() < deadline:
            frame = client.recv()
            assert frame != "", "the server closed the connection:\n" + "".join(log)
            if isinstance(frame, str):
                message = json.loads(frame)
                if message["op"] == "advertise":
                    for channel in message["channels"]:
                        channels[channel["topic"]] = channel
                    wanted = [channels[t] for t in TOPICS if t in channels and t not in subscribed.values()]
                    if wanted:
                        subscriptions = [{"id": len(subscribed) + k + 1, "channelId": c["id"]}
                                         for k, c in enumerate(wanted)]
                        subscribed.update({s["id"]: c["topic"] for s, c in zip(subscriptions, wanted)})
                        client.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))
                continue
            opcode, subscription, _ = struct.unpack_from("<BIQ", frame)
            assert opcode == 1   # MessageData
            channel = channels[subscribed[subscription]]
            assert channel["encoding"] == "cdr" and channel["schemaEncoding"] == "ros2msg"
            decoder = DecoderFactory().decoder_for("cdr", Schema(id=1, name=channel["schemaName"], encoding="ros2msg",
                                                                 data=channel["schema"].encode()))
            decoded[channel["topic"]].append(decoder(frame[13:]))
        client.close()
    finally:
        runner.send_signal(signal.SIGINT)   # Ctrl-C: the runner stops its nodes
        code = runner.wait(timeout=60)
    output = "".join(log)
    assert code in (0, 130), output
    assert "unknown channel" not in output, output   # every channel is advertised before a client can connect
    assert all(len(v) >= 3 for v in decoded.values()), ({t: len(v) for t, v in decoded.items()}, output)
    assert {m.agent_id for m in decoded["/dmpc/agent_0/status"]} == {0}
    assert all(len(m.states) == 21 * 2 for m in decoded["/dmpc/agent_1/plan"])   # N + 1 states of 2 each
    assert all(m.header.frame_id == "map" and len(m.poses) == 21 for m in decoded["/dmpc/agent_2/path"])
