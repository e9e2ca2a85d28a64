"""Start a group of OS processes, forward their output with a name prefix, and stop them cleanly.

Used by `dmpc demo` and the scenario runner the way `ros2 launch` supervises its processes: each child
gets its own process group, output lines are prefixed with the child's name, shutdown sends SIGINT, then
SIGTERM, then SIGKILL, in reverse start order. Children learn this process's pid (DMPC_SUPERVISOR_PID) so that
ROS nodes end themselves if it dies without stopping them. No ROS imports: the environment comes from the caller.
STOP_SIGNALS are the signals every process of a run treats as Ctrl-C: SIGTERM is what systemd, `docker stop` and CI
timeouts send, SIGHUP what a closed terminal sends.
`RespawnPolicy` decides which dead children are started again (`restart`), after what delay and how often, the way
launch's `respawn`, `respawn_delay` and `respawn_max_retries` do for `ros2 launch`.
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
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


RESPAWN_SCOPES = {"none": (), "agents": ("agent",), "all": ("agent", "plant", "lifecycle_manager")}


@dataclass
class RespawnPolicy:
    """Which dead node processes are started again: `scope` none, agents (agent processes and agent containers) or
    all (also the plant and the lifecycle manager), at most `limit` times each, `delay` seconds after the death.
    A clean exit (0) is never respawned, nor an exit whose code says a restart would only repeat it (`final`, per
    kind: the manager's failed bring-up, the plant stopped because its team is gone)."""

    scope: str = "none"
    limit: int = 3
    delay: float = 0.5
    final: dict[str, tuple[int, ...]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scope not in RESPAWN_SCOPES:
            raise ValueError(f"respawn: {self.scope!r} is not allowed: must be one of {', '.join(RESPAWN_SCOPES)}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"respawn_limit: {self.limit!r} is not allowed: must be an integer ≥ 0")
        if not (isinstance(self.delay, (int, float)) and 0.0 <= self.delay < float("inf")):
            raise ValueError(f"respawn_delay: {self.delay!r} is not allowed: must be a finite number of seconds ≥ 0")

    def covers(self, kind: str) -> bool:
        """Whether processes of `kind` (agent, plant, lifecycle_manager) are respawned at all."""
        return kind in RESPAWN_SCOPES[self.scope]

    def restart_delay(self, name: str, kind: str, code: int) -> float | None:
        """The delay [s] before process `name` of `kind`, dead with exit `code`, starts again (counted as one of its
        restarts), or None: it stays dead (not covered, a clean or final exit, or its restarts are spent)."""
        if code == 0 or code in self.final.get(kind, ()) or not self.covers(kind) or \
                self.restarts.get(name, 0) >= self.limit:
            return None
        self.restarts[name] = self.restarts.get(name, 0) + 1
        return float(self.delay)


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
        managed = ManagedProcess(name, popen, threading.Thread(daemon=True), command=list(command), env=dict(env))
        managed.forwarder = threading.Thread(target=self._forward, args=(managed,), daemon=True)
        managed.forwarder.start()
        self.processes.append(managed)
        return managed

    def restart(self, managed: ManagedProcess) -> ManagedProcess:
        """Start an exited child again with its command and environment, in its place (stop order unchanged)."""
        managed.forwarder.join(timeout=2.0)
        index = self.processes.index(managed)
        self.processes.remove(managed)
        fresh = self.start(managed.name, managed.command, managed.env)
        self.processes.remove(fresh)
        self.processes.insert(index, fresh)
        return fresh

    def respawn_dead(self, processes: dict[str, ManagedProcess], policy: RespawnPolicy, kinds: dict[str, str],
                     respawning: dict[str, float]) -> None:
        """Start again, once their delay is over, the dead children `policy` covers (`kinds`: name → agent, plant or
        lifecycle_manager; `respawning`: name → when it starts again, those waiting; `processes`: name → child, kept
        current). A child it does not cover (or whose restarts are spent) is left to the caller's death rule."""
        now = time.monotonic()
        for managed in list(self.processes):
            code = managed.popen.poll()
            if code is None or managed.name in respawning:
                continue
            delay = policy.restart_delay(managed.name, kinds[managed.name], code)
            if delay is None:
                continue
            respawning[managed.name] = now + delay
            print(f"dmpc run: node {managed.name} exited with code {code}; respawning it in {delay:g} s (restart "
                  f"{policy.restarts[managed.name]} of {policy.limit})", flush=True)
        for name, due in list(respawning.items()):
            if now >= due:
                processes[name] = self.restart(processes[name])
                del respawning[name]
                print(f"dmpc run: node {name} respawned (pid {processes[name].popen.pid})", flush=True)

    def _forward(self, managed: ManagedProcess) -> None:
        assert managed.popen.stdout is not None
        for line in managed.popen.stdout:
            line = line.rstrip("\n")
            managed.lines.append(line)
            if self.echo and self.output is not None:
                with self._lock:
                    print(f"[{managed.name}] {line}", file=self.output, flush=True)

    def first_exited(self, ignore: frozenset[str] = frozenset()) -> ManagedProcess | None:
        """The first child (in start order) that has exited, if any, but those named in `ignore`."""
        return next((p for p in self.processes if p.name not in ignore and p.popen.poll() is not None), None)

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

    def stop_all(self, grace: float = 5.0, first: tuple[str, ...] = ()) -> dict[str, int]:
        """Stop every child, those named in `first` before the others (a lifecycle manager takes its nodes down in
        order, also nodes started after it), the others in reverse start order."""
        order = [p for p in self.processes if p.name in first] + [p for p in reversed(self.processes)
                                                                  if p.name not in first]
        return {p.name: self.stop(p, grace) for p in order}

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()
