"""Shared fixtures. Every ROS process a test starts discovers peers on localhost only, in a domain of its own."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from dmpc_ros.ros.environment import reserve_domain_id, ros_environment

# The gate (`make test`, CI) replays the same property-test examples on every run, so a failure there is a
# regression of the code, not a new random draw; `HYPOTHESIS_PROFILE=explore make test` draws new examples.
settings.register_profile("gate", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = PACKAGE_DIR.parent

# Anything rclpy-based in the pytest process itself stays on loopback as well.
_session_domain = reserve_domain_id()
os.environ.update(ros_environment(_session_domain.domain_id, base={}))


def pytest_collection_modifyitems(config, items) -> None:
    """Under xdist (`make test` runs `-n 2 --dist loadgroup`) every test that starts ROS processes runs on one worker,
    one at a time, as in a serial run (their timing and the shared DDS loopback stay as they were); the sans-IO tests
    fill the other core."""
    for item in items:
        if item.get_closest_marker("ros"):
            item.add_marker(pytest.mark.xdist_group("ros"))


@pytest.fixture
def ros_env(monkeypatch) -> dict[str, str]:
    """A fresh domain id for this test: the environment for child processes (also applied to this process)."""
    reservation = reserve_domain_id()
    env = ros_environment(reservation.domain_id)
    monkeypatch.setenv("ROS_DOMAIN_ID", env["ROS_DOMAIN_ID"])
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", env["ROS_AUTOMATIC_DISCOVERY_RANGE"])
    yield env
    reservation.release()


@dataclass(frozen=True)
class LockStepRun:
    """A finished `dmpc run` (lock-step) and its console output."""

    output: Path
    steps: int
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def lock_step_run(tmp_path_factory):
    """lock_step_run(scenario, algorithm, per_process=1, extra=()): `dmpc run` (extra: more flags) in lock-step
    (10 steps; 8 for dual_decomposition, whose many price iterations make a step slow over ROS) with a generous
    iteration deadline (30 s: under CPU load a substituted plan would make two runs differ), run once per session
    and shared. A team's
    bring-up costs more than a test's checks: test_ros_run checks the run against `dmpc sim`, test_launch_files
    against `ros2 launch`, test_plot_report reads its bag. Users copy what they alter in the output folder."""
    runs: dict[tuple, LockStepRun] = {}

    def run(scenario: str, algorithm: str, per_process: int = 1, extra: tuple[str, ...] = ()) -> LockStepRun:
        key = (scenario, algorithm, per_process, tuple(extra))
        if key not in runs:
            steps = 8 if algorithm == "dual_decomposition" else 10
            output = tmp_path_factory.mktemp("lock_step_run") / "run"
            done = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "run", scenario, "--algorithm", algorithm,
                                   "--steps", str(steps), "--output", str(output), "--iteration-timeout", "30",
                                   "--agents-per-process", str(per_process), *extra],
                                  capture_output=True, text=True, timeout=300)
            runs[key] = LockStepRun(output, steps, done.returncode, done.stdout, done.stderr)
        return runs[key]

    return run


@pytest.fixture
def python() -> str:
    return sys.executable
