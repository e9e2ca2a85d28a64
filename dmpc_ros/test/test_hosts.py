"""A team split across three network hosts (namespaces on a bridge, hosts/), found by static peers with multicast
dropped, at 0 and 30 % packet loss on every inter-host link. Skips, saying why, where namespaces or iptables cannot
be had (not root); CI runs as root and runs them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dmpc_ros.hosts.loss import block_multicast, drop_counts, ensure_iptables, set_link_loss
from dmpc_ros.hosts.sandbox import HostSandbox, unavailable
from dmpc_ros.hosts.team import split_run
from dmpc_ros.ros.environment import reserve_domain_id

# ROS processes in network namespaces on one bridge subnet: under xdist these run in the ROS group, one at a time
# (conftest.pytest_collection_modifyitems), never beside test_ros_team_change's sandbox on the same subnet
pytestmark = pytest.mark.ros
PLACEMENT = {"h1": "plant,lifecycle_manager,agent_0", "h2": "agent_1-2", "h3": "agent_3"}


@pytest.fixture(scope="module")
def sandbox_ready() -> None:
    reason = unavailable() or ensure_iptables()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def domain_id():
    reservation = reserve_domain_id()   # held by this test: the hosts share it, nobody else on this machine takes it
    yield reservation.domain_id
    reservation.release()


def console(runs) -> str:
    return "\n".join(f"== {run.host} ({run.nodes}) exit {run.returncode}\n{run.output[-2500:]}"
                     for run in runs.values())


def test_a_sandbox_is_removed_also_when_its_test_fails(sandbox_ready) -> None:
    with pytest.raises(RuntimeError):
        with HostSandbox(3, subnet="10.78.0.0/24") as sandbox:
            assert sandbox.exists() and sandbox.addresses == ["10.78.0.1", "10.78.0.2", "10.78.0.3"]
            links = subprocess.run(sandbox.command(sandbox.hosts[0], ["ip", "-o", "link"]), capture_output=True,
                                   text=True).stdout
            assert sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()) == ["eth0", "lo"]
            raise RuntimeError("the test failed")
    assert not sandbox.exists()


def test_a_team_over_three_hosts_with_static_peers_reproduces_dmpc_sim(sandbox_ready, domain_id, tmp_path) -> None:
    """Lock-step over three hosts, multicast dropped on every host: the run completes, found by unicast alone (no
    multicast packet was even tried), and its trajectory is dmpc sim's to the last bit."""
    steps = 12
    with HostSandbox(3) as sandbox:
        block_multicast(sandbox)
        runs = split_run(sandbox, "mass_spring", PLACEMENT, tmp_path / "ros", domain_id,
                         flags=("--no-reference", "--steps", str(steps)), timeout=150)
        drops = drop_counts(sandbox)
    assert all(run.returncode == 0 for run in runs.values()), console(runs)
    assert "discovery static peers 10.77.0.1,10.77.0.2,10.77.0.3; this computer runs agent_1, agent_2" \
        in runs["h2"].output
    assert all(counts["multicast"] == 0 for counts in drops.values()), drops
    simulated = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", "mass_spring", "--steps", str(steps),
                                "--output", str(tmp_path / "sim"), "--no-reference"], capture_output=True, text=True,
                               timeout=240)
    assert simulated.returncode == 0, simulated.stderr
    ros, sim = np.load(tmp_path / "ros" / "trajectory.npz"), np.load(tmp_path / "sim" / "trajectory.npz")
    np.testing.assert_array_equal(ros["x"], sim["x"])


def test_a_tube_platoon_across_hosts_at_30_percent_loss_keeps_every_constraint(sandbox_ready, domain_id,
                                                                                tmp_path) -> None:
    """Real time, 30 % of the packets on every inter-host link dropped: every gap and limit holds, no input is NaN
    or outside U, and the loss was real (the hosts' drop counters)."""
    placement = {"h1": "plant,lifecycle_manager,agent_0-1", "h2": "agent_2-3", "h3": "agent_4-5"}
    with HostSandbox(3) as sandbox:
        block_multicast(sandbox)
        set_link_loss(sandbox, 0.3)
        runs = split_run(sandbox, "platoon_robust", placement, tmp_path / "ros", domain_id,
                         flags=("--no-reference", "--steps", "25", "--mode", "real_time"), timeout=150)
        drops = drop_counts(sandbox)
    assert all(run.returncode == 0 for run in runs.values()), console(runs)
    assert sum(counts["loss"] for counts in drops.values()) > 100, drops
    summary = json.loads((tmp_path / "ros" / "summary.json").read_text())
    assert summary["complete"] is True and summary["max_constraint_violation"] <= 1e-9, summary
    trajectory = np.load(tmp_path / "ros" / "trajectory.npz")
    u = trajectory["u"]
    assert np.all(np.isfinite(u)) and np.all(u >= -5.0 - 1e-12) and np.all(u <= 2.5 + 1e-12)


def test_an_agent_killed_on_another_host_is_respawned_there_and_the_run_completes(sandbox_ready, domain_id,
                                                                                   tmp_path) -> None:
    """SIGKILL of agent 2 on h2 once it has negotiated a step: h2's runner starts it again (--respawn agents on
    every host), the head's manager brings it up again across the network, and the lock-step run ends complete."""
    killed = {}

    def kill_agent_2() -> None:
        plan = tmp_path / "ros" / "h2" / "resume" / "agent_2.npz"   # written once agent 2 has finished a step
        deadline = time.monotonic() + 120
        while not plan.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        found = subprocess.run(["pgrep", "-f", f"__node:=agent_2 .*{tmp_path}/ros/h2/"], capture_output=True,
                               text=True).stdout.split()
        if len(found) == 1:
            os.kill(int(found[0]), signal.SIGKILL)
            killed["pid"] = int(found[0])

    with HostSandbox(3) as sandbox:
        block_multicast(sandbox)
        killer = threading.Thread(target=kill_agent_2)
        killer.start()
        runs = split_run(sandbox, "mass_spring", PLACEMENT, tmp_path / "ros", domain_id, timeout=200,
                         flags=("--no-reference", "--steps", "30", "--respawn", "agents", "--iteration-timeout",
                                "0.5"))
        killer.join(timeout=10)
    assert killed, console(runs)
    assert all(run.returncode == 0 for run in runs.values()), console(runs)
    assert "node agent_2 respawned" in runs["h2"].output, console(runs)
    summary = json.loads((tmp_path / "ros" / "summary.json").read_text())
    assert summary["complete"] is True and summary["max_constraint_violation"] <= 1e-9, summary
