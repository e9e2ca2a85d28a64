"""Bad command lines end in one line that names the flag or field, the value and what is allowed (exit 2),
before any node starts — never a traceback, never markup-eaten text."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


@pytest.mark.parametrize("arguments,expected", [
    # scenario overrides, validated like the file
    (["sim", "mass_spring", "--steps", "0"], "--steps 0: simulation.steps: 0 is not allowed: must be ≥ 1"),
    (["sim", "mass_spring", "--iterations", "0"], "--iterations 0: controller.max_iterations: 0 is not allowed"),
    (["sim", "mass_spring", "--solver", "gurobi"], "controller.solver: 'gurobi' is not allowed: "
                                                   "must be one of daqp, osqp"),
    (["sim", "mass_spring", "--horizon", "501"], "--horizon 501: controller.horizon: 501 is not allowed: "
                                                 "must be ≤ 500"),
    (["sim", "mass_spring", "--algorithm", "telepathy"], "controller.algorithm: 'telepathy' is not allowed: "
                                                         "must be one of"),
    (["sim", "mass_spring", "--tolerance", "-1"], "controller.tolerance: -1.0 is not allowed: must be ≥ 0.0"),
    # cross-field rules
    (["sim", "mass_spring_robust", "--horizon", "2"], "controller.tube.missed_steps: 2 is not allowed with "
                                                      "controller.horizon 2"),
    (["sim", "mass_budget", "--algorithm", "admm"], "controller.algorithm: admm is not allowed here: the model has a "
                                                    "constraint shared by all agents' inputs"),
    (["run", "formation", "--algorithm", "decentralized"], "controller.algorithm: decentralized is not allowed here: "
                                                           "it cannot keep robots apart"),
    (["run", "mass_spring", "--algorithm", "centralized"], "'centralized' has no agents to run over ROS"),
    # types, caught by the parser
    (["sim", "mass_spring", "--steps", "abc"], "argument --steps: invalid int value: 'abc'"),
    (["run", "mass_spring", "--mode", "fast"], "argument --mode: invalid choice: 'fast'"),
    # dmpc run's own flags
    (["run", "mass_spring", "--domain-id", "999"], "--domain-id 999: is not allowed: ROS domain ids are 0..232"),
    (["run", "mass_spring", "--domain-id", "-1"], "--domain-id -1: is not allowed"),
    (["run", "mass_spring", "--iteration-timeout", "-1"],
     "--iteration-timeout -1.0: is not allowed: must be ≥ 0.001"),
    (["sim", "mass_spring", "--iteration-timeout", "0"],
     "--iteration-timeout 0.0: is not allowed: must be ≥ 0.001"),
    (["run", "mass_spring", "--timeout", "0"], "--timeout 0.0: is not allowed: must be > 0.0"),
    (["run", "mass_spring", "--timeout", "nan"], "--timeout nan: is not allowed"),
    (["run", "mass_spring", "--death-grace", "-3"], "--death-grace -3.0: is not allowed"),
    (["run", "mass_spring", "--agents-per-process", "0"], "--agents-per-process 0: is not allowed: must be ≥ 1"),
    (["run", "mass_spring", "--namespace", "dmpc"], "--namespace dmpc: is not allowed: an absolute ROS namespace"),
    # hostile values (issue 27): each was accepted or ended in a traceback
    (["sim", "mass_spring", "--tolerance", "inf"], "--tolerance inf: controller.tolerance: inf is not allowed: "
                                                   "must be a finite number"),
    (["sim", "mass_spring", "--algorithm", "dual_decomposition"],
     "controller.algorithm: dual_decomposition is not allowed here: it prices a constraint shared by all agents'"),
    (["run", "mass_spring", "--namespace", "/a//b"], "--namespace /a//b: is not allowed: an absolute ROS namespace"),
    (["run", "mass_spring", "--namespace", "/a/"], "--namespace /a/: is not allowed"),
    (["sim", "mass_spring", "--output", "/dev/null/x"], "--output /dev/null/x: /dev/null is not a directory"),
    (["sim", "mass_spring", "--output", "/proc/dmpc/x"], "--output /proc/dmpc/x: /proc is not writable"),
    (["run", "mass_spring", "--timeout", "inf"], "--timeout inf: is not allowed: must be a finite number > 0.0"),
    (["run", "mass_spring", "--domain-id", "9" * 400], "is not allowed: ROS domain ids are 0..232"),
    (["smoke", "--timeout", "nan"], "--timeout nan: is not allowed: must be a finite number"),
    (["smoke", "--count", "0"], "--count 0: is not allowed: must be ≥ 1"),
    (["plot", "/etc/hostname"], "/etc/hostname: is not an MCAP bag"),
    (["bag", "repair", "/etc/hostname"], "/etc/hostname: is not an MCAP bag"),
    # sources
    (["sim", "nope"], "scenario 'nope' not found; known scenarios: "),
    (["sim", "missing.yaml"], "scenario file missing.yaml does not exist"),
    (["sim", "no_such_module:factory"], "scenario factory 'no_such_module:factory': cannot import no_such_module"),
])
def test_bad_command_line_is_one_clear_line(arguments: list[str], expected: str) -> None:
    run = subprocess.run(DMPC + arguments, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert expected in lines[0], lines[0]
    assert "Traceback" not in run.stderr and "dmpc run:" not in run.stdout   # no node was started


def test_a_factory_that_raises_is_one_line_naming_where(tmp_path: Path) -> None:
    module = tmp_path / "broken_factory.py"
    module.write_text("def scenario():\n    return {}['missing']\n")
    run = subprocess.run(DMPC + ["sim", f"{module}:scenario"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"raised KeyError: 'missing' (at {module}:2)" in run.stderr


@pytest.mark.parametrize("body,expected", [
    ("import sys\ndef scenario():\n    sys.exit(0)\n", "called sys.exit(0); a factory must return a Scenario"),
    ("import sys\nsys.exit(0)\ndef scenario():\n    pass\n", "failed: called sys.exit(0)"),
    ("import time\ndef scenario():\n    time.sleep(600)\n", "did not return within 2 s"),
    ("def scenario():\n    raise ValueError('one\\ntwo' + 'x' * 100000)\n", "raised ValueError: one two"),
    ("def scenario():\n    return scenario()\n", "raised RecursionError"),
])
def test_a_factory_that_exits_hangs_or_floods_is_one_line_and_fails(tmp_path: Path, body: str, expected: str) -> None:
    """`sys.exit(0)` in a factory exited 0 with no output; a hang hung; a huge message was printed whole."""
    module = tmp_path / "hostile_factory.py"
    module.write_text(body)
    run = subprocess.run(DMPC + ["sim", f"{module}:scenario"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, DMPC_FACTORY_TIMEOUT="2"))
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and len(lines[0]) <= 420, run.stderr[:1000]
    assert expected in lines[0], lines[0]


def test_output_on_an_existing_file_is_refused_and_loses_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    run = subprocess.run(DMPC + ["sim", "mass_spring", "--output", str(existing)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "is an existing file; give a directory" in run.stderr
    assert existing.read_text() == "keep me"


def test_bracketed_text_in_errors_survives_the_console(tmp_path: Path) -> None:
    """rich markup once ate '[...]' from messages ('must be ' with the allowed values missing)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {type: formation, sample_time: 0.2, robots: {count: 3, shape: [[0, 0], [1, 0], [0, 1]]}}\n"
                   "controller: {algorithm: jacobi, horizon: 5}\nsimulation: {initial_state: [[0, 0]]}\n")
    run = subprocess.run(DMPC + ["sim", str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "expected 3 [px, py, vx, vy] lists" in run.stderr, run.stderr


def test_long_set_up_shows_its_stages(monkeypatch, capsys) -> None:
    """The library names its set-up stages; the CLI shows them once set-up has taken a while (here at once)."""
    from dmpc_ros.cli import SetUpProgress
    from dmpc_ros.coordination import build_agents
    from dmpc_ros.progress import reporting
    from dmpc_ros.scenarios import load_scenario

    monkeypatch.setattr(SetUpProgress, "QUIET_SECONDS", 0.0)
    with SetUpProgress() as progress, reporting(progress):
        scenario = load_scenario("mass_spring")
        build_agents(scenario.design(), "gauss_seidel", scenario.controller.stopping)
    lines = capsys.readouterr().err.splitlines()
    assert any("discretizing the model (4 agents, 8 states)" in line for line in lines)
    assert any("building the gauss_seidel agents 4/4" in line for line in lines)
    monkeypatch.undo()
    with SetUpProgress() as progress, reporting(progress):   # a quick set-up prints nothing
        load_scenario("mass_spring")
    assert capsys.readouterr().err == ""
