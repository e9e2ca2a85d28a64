"""Nothing lost to a signal (issue 27): SIGTERM (systemd, `docker stop`, a CI timeout) and SIGHUP (a closed terminal)
to `dmpc run` end it like Ctrl-C, with the outputs of the steps done and a readable bag; a plant killed with SIGKILL
leaves no plant.npz, and the runner rebuilds its trajectory from the bag."""
from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from dmpc_ros.scenarios import load_scenario
from test_ros_run import DMPC, disturb_running_scenario, leftover_processes

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_sigterm_to_the_runner_writes_the_outputs_and_a_readable_bag(tmp_path: Path) -> None:
    out, signum = tmp_path / "run", signal.SIGTERM
    code, output = disturb_running_scenario(["--steps", "100000", "--output", str(out), "--no-reference"],
                                            lambda runner: runner.send_signal(signum))
    name = signal.Signals(signum).name
    assert code == 143, output[-3000:]   # 128 + 15, like Ctrl-C's 130
    assert f"dmpc run: interrupted by {name}" in output
    assert "/dmpc/agent_0: deactivate ok" in output   # the manager took the nodes down in order
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["stopped"].startswith(f"interrupted by {name} after ")
    trajectory = np.load(out / "trajectory.npz")
    assert trajectory["u"].shape[0] == summary["steps"] > 0
    assert (out / "states_inputs.png").is_file() and (out / "plant.npz").is_file()
    with (out / "run.mcap").open("rb") as handle:   # the indexed reader: the bag has its summary section
        reader = make_reader(handle)
        topics = {channel.topic for _, channel, _ in reader.iter_messages()}
    assert {"/dmpc/agent_0/state", "/dmpc/agent_0/control", "/dmpc/agent_0/status"} <= topics
    assert subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split() == []


def test_a_killed_plant_has_its_trajectory_rebuilt_from_the_bag(tmp_path: Path) -> None:
    out = tmp_path / "run"

    def kill_plant(runner: subprocess.Popen) -> None:
        victim = subprocess.run(["pgrep", "-f", f"__node:=plant .*{out}"], capture_output=True,
                                text=True).stdout.split()
        assert len(victim) == 1, victim
        os.kill(int(victim[0]), signal.SIGKILL)

    code, output = disturb_running_scenario(["--steps", "100000", "--output", str(out), "--no-reference",
                                             "--death-grace", "1"], kill_plant)
    assert code == 1 and "node plant died (exit code -9)" in output
    assert "dmpc run: the plant left no plant.npz (killed?); rebuilt its trajectory of " in output
    plant = np.load(out / "plant.npz")
    assert str(plant["rebuilt_from"]) == "run.mcap"
    summary = json.loads((out / "summary.json").read_text())
    done = summary["steps"]
    assert done > 0 and summary["stopped"] == (f"node plant died (exit code -9) after {done} of 100000 steps; the "
                                               "plant's trajectory was rebuilt from run.mcap")
    trajectory = np.load(out / "trajectory.npz")
    assert trajectory["u"].shape[0] == done and trajectory["x"].shape[0] == done + 1
    assert np.array_equal(trajectory["x"][0], load_scenario("mass_spring").initial_state)
    assert np.all(np.isfinite(trajectory["x"])) and (out / "states_inputs.png").is_file()


def test_a_closed_terminal_ends_the_run_with_its_outputs(tmp_path: Path) -> None:
    """The runner in a pseudo-terminal that goes away: the kernel sends SIGHUP, and writing to the terminal would
    fail from then on (before, the runner died at once; with the handler alone, its next print failed)."""
    out = tmp_path / "run"
    pid, terminal = pty.fork()
    if pid == 0:   # the child: `dmpc run` on the terminal
        os.execv(sys.executable, [*DMPC, "run", "mass_spring", "--steps", "100000", "--output", str(out),
                                  "--no-reference"])
    try:
        seen, deadline = b"", time.monotonic() + 120
        while b"all 5 nodes active" not in seen and time.monotonic() < deadline:
            seen += os.read(terminal, 4096)
        time.sleep(1.0)
        os.close(terminal)   # hang up
        code = wait_for_exit(pid, 120)
    finally:
        for leftover in leftover_processes(str(out)):
            os.kill(leftover, signal.SIGKILL)
    assert code == 129, seen[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"].startswith("interrupted by SIGHUP after ") and (out / "states_inputs.png").is_file()
    with (out / "run.mcap").open("rb") as handle:
        assert make_reader(handle).get_summary() is not None


def wait_for_exit(pid: int, timeout: float) -> int:
    """The exit code of child `pid` (killed after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
