"""Several network hosts on one machine, for tests and benchmarks of a team split across computers.

A sandbox is a set of Linux network namespaces: one per host, each with a loopback and one veth interface `eth0`
with an address of the caller's choosing, all plugged into a bridge that lives in a namespace of its own. The bridge
has no uplink, so nothing sent by a host reaches any interface of the machine: DDS traffic stays inside the sandbox
(the project's network rule). Processes run in a host with `ip netns exec`; they share the machine's file system
(the run's files) but not its network.

Every namespace of a sandbox is named `dmpcsb<pid>x<k>…` after the creating process: leaving the `with` block
(also on an exception) kills the processes started in it and deletes its namespaces, and a new sandbox first
deletes those of sandboxes whose creator is gone (a test killed with SIGKILL). Needs root and `ip` (iproute2);
`unavailable()` says in one line why a sandbox cannot be made here, for a test to skip with.
"""
from __future__ import annotations

import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

PREFIX = "dmpcsb"   # every namespace the project creates starts with it
_COUNTER = itertools.count()


@dataclass(frozen=True)
class Host:
    name: str          # h1, h2, … (the caller's label)
    namespace: str     # its network namespace
    address: str       # its eth0 address in the sandbox's subnet


def ip(*arguments: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`ip …`, in `namespace` if given; CalledProcessError with ip's message on failure when `check`."""
    command = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """None when network namespaces can be made here; else one line saying why not."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) on this machine"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run as root, as CI does"
    probe = f"{PREFIX}{os.getpid()}probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed here: {made.stderr.strip()[:200]}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def remove_orphans() -> list[str]:
    """Delete the namespaces of sandboxes whose creating process is gone; returns their names."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    removed = []
    for name in re.findall(rf"^({PREFIX}(\d+)\S*)", listed, flags=re.MULTILINE):
        namespace, pid = name[0], int(name[1])
        if not os.path.exists(f"/proc/{pid}"):
            _kill_namespace_processes(namespace)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
            removed.append(namespace)
    return removed


def _kill_namespace_processes(namespace: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@dataclass
class HostSandbox:
    """`count` hosts h1…h<count> on a bridge, addresses from `subnet` (.1, .2, …); a context manager."""

    count: int
    subnet: str = "10.77.0.0/24"
    hosts: list[Host] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        network = ipaddress.ip_network(self.subnet)
        if not 2 <= self.count < min(network.num_addresses - 2, 100):
            raise ValueError(f"hosts: {self.count} is not allowed: must be 2..{min(network.num_addresses - 3, 99)} "
                             f"for subnet {self.subnet}")
        self._network = network
        self._tag = f"{PREFIX}{os.getpid()}x{next(_COUNTER)}"
        self.bridge = f"{self._tag}br"

    def __enter__(self) -> "HostSandbox":
        remove_orphans()
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.bridge], check=True, capture_output=True)
        ip("link", "add", "br0", "type", "bridge", namespace=self.bridge)
        ip("link", "set", "br0", "up", namespace=self.bridge)
        addresses = list(self._network.hosts())
        for k in range(1, self.count + 1):
            host = Host(f"h{k}", f"{self._tag}h{k}", str(addresses[k - 1]))
            subprocess.run(["ip", "netns", "add", host.namespace], check=True, capture_output=True)
            self.hosts.append(host)
            inside, outside = f"{self._tag[-6:]}v{k}", f"{self._tag[-6:]}p{k}"   # ≤ 15 characters
            ip("link", "add", inside, "type", "veth", "peer", "name", outside)
            ip("link", "set", inside, "netns", host.namespace)
            ip("link", "set", outside, "netns", self.bridge)
            ip("link", "set", inside, "name", "eth0", namespace=host.namespace)
            ip("addr", "add", f"{host.address}/{self._network.prefixlen}", "dev", "eth0", namespace=host.namespace)
            ip("link", "set", "eth0", "up", namespace=host.namespace)
            ip("link", "set", "lo", "up", namespace=host.namespace)
            ip("link", "set", outside, "master", "br0", namespace=self.bridge)
            ip("link", "set", outside, "up", namespace=self.bridge)

    @property
    def addresses(self) -> list[str]:
        return [host.address for host in self.hosts]

    def host(self, name: str) -> Host:
        return next(host for host in self.hosts if host.name == name)

    def command(self, host: Host, command: list[str]) -> list[str]:
        """`command` run inside `host`'s network namespace."""
        return ["ip", "netns", "exec", host.namespace, *command]

    def start(self, host: Host, command: list[str], env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
        """Start `command` in `host` (its own session, killed when the sandbox closes)."""
        process = subprocess.Popen(self.command(host, command), env=env, start_new_session=True, **popen)
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Kill what runs in the hosts, then delete every namespace of the sandbox."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for namespace in [host.namespace for host in self.hosts] + [self.bridge]:
            _kill_namespace_processes(namespace)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        deadline = time.monotonic() + 5
        while self.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def exists(self) -> bool:
        """Whether any namespace of this sandbox is still there."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return self._tag in listed
