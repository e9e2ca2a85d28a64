"""Crash and rejoin over ROS (issue 28, point 4; bench/rejoin.py measures it): `dmpc run --respawn all` with one node
process killed (SIGKILL) mid-run. A killed agent is respawned, brought up again by the lifecycle manager and
negotiates on; a killed plant resumes from its checkpoint, and the lock-step run still equals `dmpc sim`; a killed
lifecycle manager is respawned, adopts the running team and beats again before the plant's manager_timeout."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_DIR

pytestmark = [pytest.mark.ros, pytest.mark.slow]
sys.path.insert(0, str(REPO_DIR / "bench"))
from forged_input import scenario_with_sample_time  # noqa: E402
from rejoin import rejoin_run  # noqa: E402


def test_a_killed_agent_is_respawned_and_negotiates_again(tmp_path: Path) -> None:
    run = rejoin_run("agent_1", "lock_step", 24, tmp_path / "run", at_step=4, flags=("--iteration-timeout", "0.5"),
                     timeout=240)
    assert run.killed_at is not None, run.output[-3000:]
    assert run.returncode == 0 and run.respawned == 1, run.output[-4000:]
    assert "/dmpc/agent_1 rejoined: active again" in run.output             # the manager brought it up again
    assert "rejoining: warm start from its own final plan of step" in run.output
    assert run.rejoin_seconds() is not None                                 # a solved input of the new agent 1
    summary, trajectory = run.summary, np.load(run.folder / "trajectory.npz")
    assert summary["complete"] is True and np.all(np.isfinite(trajectory["u"]))
    assert summary["respawns"] == {"agent_1": 1}                            # counted in the summary
    assert np.max(np.abs(trajectory["u"])) <= 1.0 + 1e-9                    # inside U (mass_spring: 1 N)


def test_in_real_time_the_plant_holds_a_safe_input_until_the_killed_agent_is_back(tmp_path: Path) -> None:
    scenario = str(scenario_with_sample_time(0.5, tmp_path / "scenario"))
    run = rejoin_run("agent_1", "real_time", 30, tmp_path / "run", at_step=3, scenario=scenario, timeout=240)
    assert run.killed_at is not None and run.returncode == 0, run.output[-4000:]
    assert "/dmpc/agent_1 rejoined: active again" in run.output
    safe = run.summary["plant_inputs"]["safe_input_steps"]
    assert safe[1] > 0 and safe[0] == safe[2] == safe[3] == 0, safe        # only the dead agent's subsystem
    assert run.rejoin_seconds() is not None and run.summary["messages_missing"] > 0   # its neighbours substituted


def test_a_killed_plant_resumes_and_the_lock_step_run_still_equals_dmpc_sim(tmp_path: Path) -> None:
    steps = 12
    run = rejoin_run("plant", "lock_step", steps, tmp_path / "ros", at_step=5, flags=("--iteration-timeout", "30"),
                     timeout=240)
    assert run.killed_at is not None and run.returncode == 0, run.output[-4000:]
    assert "resuming at step" in run.output and "/dmpc/plant rejoined" in run.output
    simulated = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", "mass_spring", "--steps", str(steps),
                                "--output", str(tmp_path / "sim"), "--no-reference"], capture_output=True, text=True,
                               timeout=240)
    assert simulated.returncode == 0, simulated.stderr
    ros, sim = np.load(tmp_path / "ros" / "trajectory.npz"), np.load(tmp_path / "sim" / "trajectory.npz")
    np.testing.assert_allclose(ros["x"], sim["x"], atol=1e-9, rtol=0)   # the inputs lost with it were sent again
    assert int(run.plant["late_inputs"]) == 0


def test_a_killed_lifecycle_manager_is_respawned_and_adopts_the_running_team(tmp_path: Path) -> None:
    scenario = str(scenario_with_sample_time(0.5, tmp_path / "scenario"))
    run = rejoin_run("lifecycle_manager", "real_time", 24, tmp_path / "run", at_step=3, scenario=scenario,
                     timeout=240)
    assert run.killed_at is not None and run.returncode == 0, run.output[-4000:]
    assert "already active, adopted" in run.output and run.back_seconds() is not None
    assert "stopping: no heartbeat" not in run.output                      # it beat again within manager_timeout
    assert run.summary["complete"] is True
