"""The plant guards itself in real ROS runs (bench/forged_input.py): a forged out-of-limit input is refused and
counted in the run summary while the lock-step run stays equal to `dmpc sim`; the plant stops by itself when the
lifecycle manager is killed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_DIR

pytestmark = [pytest.mark.ros, pytest.mark.slow]
sys.path.insert(0, str(REPO_DIR / "bench"))
from forged_input import guarded_run  # noqa: E402


def test_a_forged_50_newton_input_is_refused_counted_and_changes_nothing(tmp_path: Path) -> None:
    steps = 12
    run = guarded_run("forged", steps, tmp_path / "ros", mode="lock_step", flags=("--iteration-timeout", "30"),
                      timeout=240)
    assert run.returncode == 0, run.output[-3000:]
    summary = run.summary
    refused = summary["plant_inputs"]["refused"]["outside"]
    assert run.sent > 0 and refused[1] >= 1 and refused[0] == refused[2] == refused[3] == 0, (run.sent, summary)
    assert summary["refused_inputs"] == sum(refused) and summary["complete"] is True
    assert "of agent 1 refused: outside its input set by 49" in run.output   # the plant's throttled warning
    simulated = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", "mass_spring", "--steps", str(steps),
                                "--output", str(tmp_path / "sim"), "--no-reference"], capture_output=True, text=True,
                               timeout=240)
    assert simulated.returncode == 0, simulated.stderr
    ros, sim = np.load(tmp_path / "ros" / "trajectory.npz"), np.load(tmp_path / "sim" / "trajectory.npz")
    np.testing.assert_array_equal(ros["x"], sim["x"])   # the forgery changed nothing, to the last bit
    assert np.max(np.abs(ros["u"])) <= 1.0


def test_the_real_time_plant_stops_when_the_lifecycle_manager_is_killed(tmp_path: Path) -> None:
    run = guarded_run("manager", 100000, tmp_path / "run", timeout=240, grace=8.0, after=1.0)
    assert run.seconds_to_stop is not None and 5.0 <= run.seconds_to_stop < 8.0, run.output[-3000:]
    assert "stopping: no heartbeat from the lifecycle manager for 5." in run.output
    plant = run.plant
    assert str(plant["stopped"]).startswith("no heartbeat from the lifecycle manager")
    assert 0 < int(plant["completed_steps"]) < 100000 and plant["u"].shape[0] == int(plant["completed_steps"])
    assert run.summary["complete"] is False
