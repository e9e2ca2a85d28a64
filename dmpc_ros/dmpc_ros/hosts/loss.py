"""Packet loss on the links between the hosts of a sandbox, with the `iptables` statistic match.

The kernel here has no `netem` queueing discipline, so loss is the only network fault the sandbox injects; delay is
injected by the project itself (the negotiator can hold a received plan). A link is one direction between two hosts:
the receiving host drops each IPv4 packet from the sender's address with the link's probability (INPUT chain, `-m
statistic --mode random`), so traffic inside a host (loopback) is never lost. Multicast is dropped outright on every
host, in both directions: a run that still works was found by static peers alone, and the drop counters prove that
nothing was multicast.

iptables is not preinstalled on Debian: `ensure_iptables()` installs the Debian package when it runs as root (as CI
does) and otherwise says in one line why it cannot.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from .sandbox import Host, HostSandbox

MULTICAST = "224.0.0.0/4"
INSTALL_TIMEOUT = 300.0   # [s] apt-get


def ensure_iptables() -> str | None:
    """None when `iptables` is there (installed now if missing and root); else one line saying why not."""
    if shutil.which("iptables"):
        return None
    if os.geteuid() != 0:
        return "iptables is not installed and installing it (apt-get install iptables) needs root"
    if shutil.which("apt-get") is None:
        return "iptables is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    installed = subprocess.run(["apt-get", "install", "-y", "-q", "iptables"], capture_output=True, text=True,
                               env=env, timeout=INSTALL_TIMEOUT)
    if installed.returncode != 0 or not shutil.which("iptables"):
        update = subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, env=env,
                                timeout=INSTALL_TIMEOUT)
        installed = subprocess.run(["apt-get", "install", "-y", "-q", "iptables"], capture_output=True, text=True,
                                   env=env, timeout=INSTALL_TIMEOUT) if update.returncode == 0 else update
    if not shutil.which("iptables"):
        return f"apt-get install iptables failed: {(installed.stderr or installed.stdout).strip()[-200:]}"
    return None


def iptables(sandbox: HostSandbox, host: Host, *arguments: str) -> str:
    """`iptables …` inside `host`; its output (CalledProcessError on failure)."""
    return subprocess.run(sandbox.command(host, ["iptables", "-w", *arguments]), capture_output=True, text=True,
                          check=True, timeout=30).stdout


def block_multicast(sandbox: HostSandbox) -> None:
    """Drop every multicast packet in and out of every host."""
    for host in sandbox.hosts:
        iptables(sandbox, host, "-A", "OUTPUT", "-d", MULTICAST, "-j", "DROP")
        iptables(sandbox, host, "-A", "INPUT", "-d", MULTICAST, "-j", "DROP")


def set_link_loss(sandbox: HostSandbox, probability: float, links: list[tuple[str, str]] | None = None) -> None:
    """Each packet on each link (sender, receiver host names; default: every ordered pair of distinct hosts) is
    dropped with `probability`. Replaces the loss rules set before."""
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"loss probability {probability} is not allowed: must be in [0, 1)")
    names = [host.name for host in sandbox.hosts]
    links = links if links is not None else [(a, b) for a in names for b in names if a != b]
    for host in sandbox.hosts:
        _clear_loss(sandbox, host)
    if probability == 0.0:
        return
    for sender, receiver in links:
        iptables(sandbox, sandbox.host(receiver), "-A", "INPUT", "-s", sandbox.host(sender).address, "-m",
                 "statistic", "--mode", "random", "--probability", f"{probability:.6f}", "-j", "DROP")


def _clear_loss(sandbox: HostSandbox, host: Host) -> None:
    rules = iptables(sandbox, host, "-S", "INPUT").splitlines()
    for rule in rules:
        if "statistic" in rule and rule.startswith("-A "):
            iptables(sandbox, host, "-D", *rule[3:].split())


def drop_counts(sandbox: HostSandbox) -> dict[str, dict[str, int]]:
    """Per receiving host: packets dropped by loss ('loss') and multicast packets dropped ('multicast')."""
    counts = {}
    for host in sandbox.hosts:
        listing = iptables(sandbox, host, "-L", "-v", "-x", "-n")
        loss = multicast = 0
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) < 2 or not fields[0].isdigit() or "DROP" not in fields:
                continue
            if "statistic" in line:
                loss += int(fields[0])
            elif re.search(re.escape(MULTICAST), line):
                multicast += int(fields[0])
        counts[host.name] = {"loss": loss, "multicast": multicast}
    return counts
