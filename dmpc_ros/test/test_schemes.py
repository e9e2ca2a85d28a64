"""Coordination schemes are plugins: one registry for linear and nonlinear schemes, each scheme's settings, checks
and counters in its own module; a scheme from another package arrives through the entry point, with its settings
section and its counter in the summary; nothing outside the scheme modules compares algorithm names."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PACKAGE_DIR
from dmpc_ros.coordination.scheme import scheme_names, scheme_of
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario
from dmpc_ros.scenarios.yaml_file import read_yaml

HERE = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR / "dmpc_ros"
PENDING: set[str] = set()   # files allowed to compare scheme names while an edit is pending elsewhere


def test_one_registry_holds_the_linear_and_nonlinear_schemes() -> None:
    assert {"centralized", "decentralized", "noncooperative", "jacobi", "gauss_seidel", "admm", "dual_decomposition",
            "explicit_iterative", "explicit_iteration_free", "explicit_facet", "sensitivity"} <= set(scheme_names())
    assert scheme_names(runs_as_agents=False) == ("centralized",)
    assert scheme_of("admm").build_nonlinear is not None and scheme_of("sensitivity").build_linear is None
    assert set(scheme_of("explicit_facet").counters) == {"qp_fallbacks", "full_searches", "iterative_fallbacks",
                                                         "combinations"}
    with pytest.raises(ValueError, match="algorithm: 'telepathy' is not allowed: must be one of .*dmpc_ros.schemes"):
        scheme_of("telepathy")


def test_a_setting_the_nonlinear_admm_would_ignore_is_refused_at_load() -> None:
    data = read_yaml(Path(load_scenario("water_tanks").source))
    data["controller"] = dict(data["controller"], algorithm="admm", admm={"penalty": 2.0, "over_relaxation": 1.6})
    with pytest.raises(ScenarioError, match=r"controller\.admm\.over_relaxation: 1\.6 is not allowed for admm on a "
                                            r"nonlinear model: its agents take plain ADMM steps"):
        parse_scenario(data)
    data["controller"]["admm"] = {"penalty": 2.0, "residual_balancing": False}   # what it does: allowed
    assert parse_scenario(data).controller.scheme_settings.penalty == 2.0


def literal_name_comparisons(path: Path, names: set[str]) -> list[int]:
    """Lines comparing something with a literal scheme name (==, !=, in, not in)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            literals = [c for o in operands for c in ([o] if not isinstance(o, (ast.Tuple, ast.List, ast.Set))
                                                      else o.elts)]
            if any(isinstance(c, ast.Constant) and c.value in names for c in literals):
                lines.append(node.lineno)
    return lines


def test_nothing_outside_the_scheme_modules_compares_algorithm_names() -> None:
    names = set(scheme_names())
    found = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("schemes/") or relative in PENDING:
            continue
        lines = literal_name_comparisons(path, names)
        if lines:
            found[relative] = lines
    assert not found, found


def test_a_scheme_from_another_package_runs_with_its_settings_and_counter(tmp_path: Path) -> None:
    """test/plugins holds a package whose dist-info declares `damped_noncooperative` in group dmpc_ros.schemes; with
    it on the path, `dmpc sim` runs it with its own section controller.damped_noncooperative, and its counter
    large_moves reaches summary.json and the table by name."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE / "plugins"), os.environ.get("PYTHONPATH", "")]),
               COLUMNS="200")
    data = read_yaml(Path(load_scenario("mass_spring").source))
    data["controller"].update(algorithm="damped_noncooperative", max_iterations=30,
                              damped_noncooperative={"damping": 0.6, "move_threshold": 0.001})
    data["simulation"]["steps"] = 8
    scenario = tmp_path / "damped.yaml"
    scenario.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(scenario), "--output", str(out)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == "damped_noncooperative" and summary["max_constraint_violation"] < 1e-6
    assert summary["counters"]["large_moves"] > 0 and summary["iterations"]["max"] > 1
    assert "damped_noncooperative: large moves" in run.stdout
    # its settings are validated by its own parser, errors naming the field
    data["controller"]["damped_noncooperative"]["damping"] = 1.5
    scenario.write_text(yaml.safe_dump(data))
    bad = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(scenario)], capture_output=True,
                         text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "controller.damped_noncooperative.damping: 1.5 is not allowed" in bad.stderr
    # without the plugin the name is unknown (and so is its section), and the message says where schemes come from
    del data["controller"]["damped_noncooperative"]
    scenario.write_text(yaml.safe_dump(data))
    bare = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(scenario)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert bare.returncode == 2 and "controller.algorithm: 'damped_noncooperative' is not allowed" in bare.stderr
    assert "dmpc_ros.schemes" in bare.stderr


def test_a_broken_scheme_plugin_is_named_when_asked_for(tmp_path: Path) -> None:
    info = tmp_path / "broken_scheme-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-scheme\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dmpc_ros.schemes]\nbroken = no_such_package.scheme:SCHEME\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", "mass_spring", "--algorithm", "broken"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2
    assert ("controller.algorithm: 'broken' is registered but its plugin failed to load (no_such_package.scheme:"
            "SCHEME: ModuleNotFoundError") in run.stderr, run.stderr
