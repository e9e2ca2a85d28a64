"""Scenario validation names the bad field; `dmpc sim` writes the output contract."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import PACKAGE_DIR
from scenario_edit import edited, replaced
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario

DEFAULT = yaml.safe_load((PACKAGE_DIR / "config" / "mass_spring.yaml").read_text())


def mutated(path: list, value) -> dict:
    return replaced(DEFAULT, path, value)


@pytest.mark.parametrize("path,value,expected", [
    (["controller", "algorithm"], "telepathy",
     r"controller\.algorithm: 'telepathy' is not allowed: must be one of .*jacobi"),
    (["controller", "state_weight"], [1.0, 2.0, 3.0], r"controller\.state_weight: has 3 entries, expected 2"),
    (["controller", "state_weight"], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
     r"controller\.state_weight: matrix is 2×3, expected 2×2"),
    (["model", "masses", "mass"], [1.0, -2.0, 1.0, 1.0],
     r"model\.masses\.mass\[1\]: -2\.0 is not allowed: must be > 0"),
    (["controller", "horizon"], 0, r"controller\.horizon: 0 is not allowed: must be ≥ 1"),
    (["simulation", "initial_state"], [[0.0, 0.0]],
     r"simulation\.initial_state: .* expected 4 \[position, velocity\] pairs"),
    (["controller", "solver"], "cplex", r"controller\.solver: 'cplex' is not allowed: must be one of daqp, osqp"),
    (["network", "drop_probability"], 1.5, r"network\.drop_probability: 1\.5 is not allowed: must be ≤ 0\.99"),
    (["controller", "horizn"], 5, r"controller\.horizn: unknown field"),
    (["model", "sample_time"], float("inf"), r"model\.sample_time: inf is not allowed: must be ≤ 3600"),
    (["model", "masses", "spring_to_next"], [1.0, 2.0, 3.0, 4.0],
     r"model\.masses\.spring_to_next: has 4 entries, expected 3 \(one per link"),
    (["controller", "admm", "balancing_interval"], 0,
     r"controller\.admm\.balancing_interval: 0 is not allowed: must be ≥ 1"),
    (["controller", "admm", "acceleration"], "yes",
     r"controller\.admm\.acceleration: 'yes' is not allowed: must be true"),
    (["controller", "position_reference"], [0.0, 2.0, 0.0, 0.0],
     r"controller\.position_reference\[1\]: 2\.0 is not allowed: outside the position limit"),
])
def test_bad_scenario_names_field_value_and_rule(path, value, expected) -> None:
    with pytest.raises(ScenarioError, match=expected):
        parse_scenario(mutated(path, value))


def test_unreadable_files_name_the_file_and_what_is_wrong(tmp_path: Path) -> None:
    """Latin-1 bytes, a key given twice (PyYAML would keep the second silently) and a directory named like a
    scenario each give one line naming the problem, not a traceback or a misleading field."""
    text = (PACKAGE_DIR / "config" / "mass_spring.yaml").read_text()
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(text.encode() + "# café\n".encode("latin-1"))
    twice = tmp_path / "twice.yaml"
    twice.write_text(text + "model:\n  type: linear\n")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    for path, expected in ((latin, r"latin\.yaml: not UTF-8 text \(byte 0xe9 at offset \d+\); save it as UTF-8"),
                           (twice, r"twice\.yaml: line \d+: key 'model' is given twice \(first on line \d+\)"),
                           (folder, r"folder\.yaml is a directory; give a YAML file")):
        with pytest.raises(ScenarioError, match=expected):
            load_scenario(str(path))
    per_link = mutated(["model", "masses", "spring_to_next"], [1.0, 2.0, 3.0])
    chain = parse_scenario(per_link).model
    assert chain.spring_to_next == (1.0, 2.0, 3.0, 0.0)   # one value per link; the unused last entry is 0


def test_default_scenario_loads_by_name() -> None:
    scenario = load_scenario("mass_spring")
    assert scenario.num_agents == 4 and scenario.controller.algorithm == "jacobi"
    assert scenario.initial_state.shape == (8,)
    with pytest.raises(ScenarioError, match="scenario 'nope' not found; known scenarios: .*mass_spring"):
        load_scenario("nope")


def test_bad_file_on_command_line_exits_2_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(mutated(["controller", "horizon"], 0)))
    result = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "controller.horizon: 0 is not allowed" in result.stdout + result.stderr


def test_dmpc_sim_writes_output_contract(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", "mass_spring", "--algorithm", "jacobi",
                             "--iterations", "10", "--steps", "15", "--output", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    for key in ("scenario", "algorithm", "steps", "closed_loop_cost", "reference_cost", "max_constraint_violation",
                "iterations", "solve_time", "messages_per_step", "bytes_per_step"):
        assert key in summary, key
    assert summary["scenario"] == "mass_spring" and summary["algorithm"] == "jacobi" and summary["steps"] == 15
    assert summary["max_constraint_violation"] >= 0
    assert summary["closed_loop_cost"] >= summary["reference_cost"] * (1 - 1e-9)
    assert summary["iterations"]["max"] <= 10 and summary["solve_time"]["median"] > 0
    data = np.load(out / "trajectory.npz")
    assert data["t"].shape == (16,) and data["x"].shape == (16, 8) and data["u"].shape == (15, 4)
    np.testing.assert_allclose(data["t"][1] - data["t"][0], 0.1)
    for name in ("states_inputs.png", "convergence.png", "trajectory.csv"):
        assert (out / name).stat().st_size > 1000
    assert "closed-loop cost" in result.stdout


def test_a_set_up_that_would_exceed_the_machine_is_refused_before_it_starts(monkeypatch) -> None:
    """Cooperative Jacobi's plant-wide step bound is estimated at load time (1000 masses: 16 GB, 40 min here);
    the estimate against a machine with 1 kB free, and against the time limit, names the way out."""
    from dmpc_ros.scenarios import checks

    monkeypatch.setattr(checks, "available_memory", lambda: 1e3)
    with pytest.raises(ScenarioError, match=r"controller.algorithm: jacobi is not allowed here: use gauss_seidel or "
                                            r"admm \(local agents\): the step bound for 4 agents, horizon 20 "
                                            r".* about 0.0 GB"):
        load_scenario("mass_spring")
    assert parse_scenario(edited("mass_spring", **{"controller.algorithm": "gauss_seidel"})).num_agents == 4   # local
    monkeypatch.undo()
    monkeypatch.setattr(checks, "SET_UP_LIMIT", 1e-9)
    with pytest.raises(ScenarioError, match="limits: .* GB, 0 min"):
        load_scenario("mass_spring")
