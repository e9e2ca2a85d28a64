"""Start a group of OS processes, forward their output with a name prefix, and stop them cleanly.

Used by `dmpc demo` and the scenario runner the way `ros2 launch` supervises its processes: each child
gets its own process group, output lines are prefixed with the child's name, shutdown sends SIGINT, then
SIGTERM, then SIGKILL, in reverse start order. Children learn this process's pid (DMPC_SUPERVISOR_PID) so that
ROS nodes end themselves if it dies without stopping them. No ROS imports: the environment comes from the caller.
STOP_SIGNALS are the signals every process of a run treats as Ctrl-C: SIGTERM is what systemd, `docker stop` and CI
timeouts send, SIGHUP what a closed terminal sends.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def interrupted_code(signum: int) -> int:
    """The shell's exit code of a process ended by signal `signum` (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + int(signum)


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen
    forwarder: threading.Thread
    lines: list[str] = field(default_factory=list)


class ProcessGroup:
    """Children started with start(); stop_all() ends them, newest first; usable as a context manager."""

    def __init__(self, output: TextIO | None = sys.stdout, echo: bool = True) -> None:
        self.output = output
        self.echo = echo
        self.processes: list[ManagedProcess] = []
        self._lock = threading.Lock()

    def start(self, name: str, command: list[str], env: dict[str, str]) -> ManagedProcess:
        env = {**env, "DMPC_SUPERVISOR_PID": str(os.getpid())}   # the nodes end when this process dies
        popen = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1, start_new_session=True,
        )
        managed = ManagedProcess(name, popen, threading.Thread(daemon=True))
        managed.forwarder = threading.Thread(target=self._forward, args=(managed,), daemon=True)
        managed.forwarder.start()
        self.processes.append(managed)
        return managed

    def _forward(self, managed: ManagedProcess) -> None:
        assert managed.popen.stdout is not None
        for line in managed.popen.stdout:
            line = line.rstrip("\n")
            managed.lines.append(line)
            if self.echo and self.output is not None:
                with self._lock:
                    print(f"[{managed.name}] {line}", file=self.output, flush=True)

    def first_exited(self) -> ManagedProcess | None:
        """The first child (in start order) that has exited, if any."""
        return next((p for p in self.processes if p.popen.poll() is not None), None)

    def wait(self, managed: ManagedProcess, timeout: float) -> int:
        code = managed.popen.wait(timeout=timeout)
        managed.forwarder.join(timeout=2.0)
        return code

    def stop(self, managed: ManagedProcess, grace: float = 5.0) -> int:
        """SIGINT, then SIGTERM, then SIGKILL, each after `grace` seconds; returns the exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if managed.popen.poll() is not None:
                break
            try:
                os.killpg(managed.popen.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while managed.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        code = managed.popen.wait()
        managed.forwarder.join(timeout=2.0)
        return code

    def stop_all(self, grace: float = 5.0) -> dict[str, int]:
        return {p.name: self.stop(p, grace) for p in reversed(self.processes)}

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()
