"""A network namespace of the project's own whose loopback loses packets: the single-host stand-in for lossy links.

`lossy_loopback(p)` makes namespace dmpc_loss_<pid>_<n>, brings its `lo` up and, for p > 0, drops each packet
entering `lo` with probability p (iptables statistic match); the namespace is deleted on exit, also on failure.
Processes started with `in_namespace(name, argv)` see only that loopback, so nothing they send leaves it.

Every packet on that `lo` is exposed, not only the plans between agents: plant ↔ agent states and inputs, the
lifecycle services, discovery and the recorder's subscriptions lose packets too. That is harsher than the multi-host
harness, where only the links between hosts are lossy (and the plant's topics may stay on one host).

Fast DDS would carry same-host traffic over shared memory, which no iptables rule sees: the processes get
FASTDDS_BUILTIN_TRANSPORTS=UDPv4 (ENVIRONMENT), so every sample crosses `lo` as UDP.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

ENVIRONMENT = {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}   # no shared memory: every sample crosses lo (and its rule)
_names = itertools.count()


def unavailable(install: bool = False) -> str | None:
    """Why no lossy loopback can be made here (one line), or None. With `install`, a missing iptables is installed
    by apt-get (root only)."""
    if os.geteuid() != 0:
        return "network namespaces and iptables need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if shutil.which("iptables") is None and install:
        subprocess.run(["apt-get", "install", "-y", "iptables"], capture_output=True)
    if shutil.which("iptables") is None:
        return "no iptables (apt-get install -y iptables)"
    try:
        with lossy_loopback(0.5):
            pass
    except (subprocess.CalledProcessError, OSError) as error:
        return f"cannot make a network namespace with an iptables rule: {error}"
    return None


def run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True)


@contextmanager
def lossy_loopback(loss: float) -> Iterator[str]:
    """A namespace whose lo drops each incoming packet with probability `loss` (0: none); yields its name."""
    if not 0.0 <= loss < 1.0:
        raise ValueError(f"loss: {loss} is not allowed: must be in [0, 1)")
    name = f"dmpc_loss_{os.getpid()}_{next(_names)}"
    run("ip", "netns", "add", name)
    try:
        run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        if loss > 0:
            run("ip", "netns", "exec", name, "iptables", "-A", "INPUT", "-i", "lo", "-m", "statistic", "--mode",
                "random", "--probability", f"{loss:.6f}", "-j", "DROP")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def dropped_packets(name: str) -> int:
    """Packets the namespace's rule has dropped so far (0 without a rule)."""
    out = subprocess.run(["ip", "netns", "exec", name, "iptables", "-L", "INPUT", "-v", "-n", "-x"],
                         capture_output=True, text=True).stdout.splitlines()
    rows = [line.split() for line in out[2:] if "DROP" in line]
    return sum(int(row[0]) for row in rows)


def in_namespace(name: str, argv: list[str]) -> list[str]:
    """The command line that runs `argv` inside namespace `name`."""
    return ["ip", "netns", "exec", name, *argv]
