"""Every file in examples/ runs: the YAML scenarios through `dmpc sim`, the Python-API script end to end (two
schemes against centralized, then over ROS 2 from its own factory, equal to the in-process run)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_DIR

EXAMPLES = REPO_DIR / "examples"
DMPC = [sys.executable, "-m", "dmpc_ros.cli"]
COVERED = {"four_tank.yaml", "mass_spring_linear.yaml", "power_system_api.py", "pendulum_pair_api.py",
           "mass_spring_load.yaml"}   # the last: test_disturbances.py


def test_every_example_is_run_by_a_test() -> None:
    assert {p.name for p in EXAMPLES.iterdir() if p.suffix in (".py", ".yaml")} == COVERED


@pytest.mark.parametrize("name", ["four_tank.yaml", "mass_spring_linear.yaml"])
def test_yaml_example_runs_with_dmpc_sim(tmp_path: Path, name: str) -> None:
    out = tmp_path / "run"
    run = subprocess.run(DMPC + ["sim", str(EXAMPLES / name), "--steps", "40", "--output", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_constraint_violation"] < 1e-9 and abs(summary["closed_loop_cost_gap"]) < 0.01
    for plot in ("states_inputs.png", "convergence.png", "setpoints.png"):
        assert (out / plot).stat().st_size > 1000, plot


def test_a_python_factory_runs_with_dmpc_sim(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = subprocess.run(DMPC + ["sim", f"{EXAMPLES / 'power_system_api.py'}:scenario", "--algorithm",
                                 "gauss_seidel", "--steps", "20", "--output", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads((out / "summary.json").read_text())["scenario"] == "three_area_lfc"


def test_a_users_nonlinear_system_runs_with_dmpc_sim(tmp_path: Path) -> None:
    """examples/pendulum_pair_api.py: CasADi dynamics written by the user, sensitivity DMPC vs centralized NMPC."""
    out = tmp_path / "run"
    run = subprocess.run(DMPC + ["sim", f"{EXAMPLES / 'pendulum_pair_api.py'}:scenario", "--steps", "30",
                                 "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "pendulum_pair" and summary["max_constraint_violation"] < 1e-9
    assert abs(summary["closed_loop_cost_gap"]) < 1e-4


@pytest.mark.ros
@pytest.mark.slow
def test_python_api_example_simulates_two_schemes_and_runs_over_ros(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLES / "power_system_api.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "max |x_ros − x_sim| = 0" in run.stdout          # lock-step over ROS is bit-identical
    for scheme in ("jacobi", "admm"):
        summary = json.loads((tmp_path / scheme / "summary.json").read_text())
        assert summary["algorithm"] == scheme and abs(summary["closed_loop_cost_gap"]) < 0.01
        assert summary["max_constraint_violation"] < 1e-9
    parameters = (tmp_path / "ros" / "parameters.yaml").read_text()
    assert "power_system_api.py:scenario" in parameters and "steps: 10" in parameters
    assert (tmp_path / "ros" / "run.mcap").stat().st_size > 1000
