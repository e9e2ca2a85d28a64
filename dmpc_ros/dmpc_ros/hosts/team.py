"""A run of one scenario split across the hosts of a sandbox: `dmpc run --nodes … --peers … --domain-id …` on each
host, exactly the commands the README's "Several computers" recipe gives a user, with the sandbox's addresses as
the peers. The head host (plant and lifecycle manager) writes the results into `output`; every other host writes
its parameter file into output/<host>.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .sandbox import HostSandbox

# Fast DDS between namespaces of one machine: UDP only. Its shared-memory transport would otherwise carry the
# traffic between "hosts" through /dev/shm, around the links (and their loss); separate computers have no such path.
SANDBOX_ENV = {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4", "PYTHONUNBUFFERED": "1"}


@dataclass
class HostRun:
    host: str
    nodes: str
    returncode: int | None
    output: str


def split_run(sandbox: HostSandbox, scenario: str, placement: dict[str, str], output: Path, domain_id: int,
              flags: tuple[str, ...] = (), timeout: float = 300.0, head: str | None = None) -> dict[str, HostRun]:
    """Run `scenario` with placement {host name: its --nodes} and return each host's exit code and console. The
    members start first, the head (the host whose nodes include the lifecycle manager) last; everything left is
    killed after `timeout`."""
    head = head or next(name for name, nodes in placement.items() if "lifecycle_manager" in nodes)
    peers = ",".join(sandbox.addresses)
    env = {**os.environ, **SANDBOX_ENV}
    started: dict[str, tuple[subprocess.Popen, list[str]]] = {}
    readers = []
    for name in sorted(placement, key=lambda n: n == head):
        folder = output if name == head else output / name
        command = [sys.executable, "-m", "dmpc_ros.cli", "run", scenario, "--nodes", placement[name], "--peers",
                   peers, "--domain-id", str(domain_id), "--output", str(folder), "--timeout", str(timeout),
                   *flags]
        process = sandbox.start(sandbox.host(name), command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda p=process, out=lines: out.extend(p.stdout), daemon=True)
        reader.start()
        readers.append(reader)
        started[name] = (process, lines)
    deadline = time.monotonic() + timeout + 60
    for name, (process, _) in started.items():
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for reader in readers:
        reader.join(timeout=5)
    return {name: HostRun(name, placement[name], process.poll(), "".join(lines))
            for name, (process, lines) in started.items()}
