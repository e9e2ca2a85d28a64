"""Model families are plugins: the built-ins moved onto the registry without changing a closed-loop cost,
unknown types list what exists, and a family from another package arrives through the entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PACKAGE_DIR
from dmpc_ros.api import simulation_settings
from dmpc_ros.scenarios import ScenarioError, family_names, load_scenario, parse_scenario
from dmpc_ros.sim import simulate

HERE = Path(__file__).resolve().parent
RECORDED = json.loads((HERE / "data" / "closed_loop_costs.json").read_text())["closed_loop_cost"]


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_shipped_scenarios_keep_their_closed_loop_costs(case: str) -> None:
    """Recorded before the families became plugins (data/closed_loop_costs.json), equal to 5e-8 relative: the BLAS
    kernels alone move platoon_robust/centralized by up to 9e-9 (OpenBLAS Haswell, the recording: 18.3306884455;
    SkylakeX on an AVX-512 machine: 18.3306884900; Haswell on one thread: 18.3306886102)."""
    name, algorithm = case.split("/")
    base = load_scenario(name)
    scenario = base.with_overrides(algorithm=algorithm, steps=min(base.steps, 25))
    result = simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                      simulation_settings(scenario, algorithm, False))
    assert result.closed_loop_cost == pytest.approx(RECORDED[case], rel=5e-8)


def test_registry_has_the_builtin_families_and_names_them_on_a_typo() -> None:
    assert {"linear", "mass_spring_chain", "platoon", "formation", "nonlinear"} <= set(family_names())
    with pytest.raises(ScenarioError, match=r"model\.type: 'mass_spring' is not allowed: must be one of .*"
                                            r"formation, linear, mass_spring_chain, nonlinear, platoon.*"
                                            r"dmpc_ros\.models"):
        parse_scenario({"model": {"type": "mass_spring", "sample_time": 0.1}, "controller": {"horizon": 5}})


def test_a_family_from_another_package_runs_through_the_entry_point(tmp_path: Path) -> None:
    """test/plugins holds a package with a dist-info declaring `thermal_rooms` in group dmpc_ros.models; with it
    on the path (as `pip install` would put it), `dmpc sim` runs a scenario of that family, plots included."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE / "plugins"), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "rooms"
    run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(HERE / "plugins" / "rooms.yaml"),
                          "--output", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == "gauss_seidel" and summary["max_constraint_violation"] < 1e-9
    assert abs(summary["closed_loop_cost_gap"]) < 1e-3 and summary["scenario_metrics"]["energy_kwh"] > 0
    assert (out / "states_inputs.png").stat().st_size > 1000
    # a scenario factory of the same package, found by its entry point name (group dmpc_ros.scenarios)
    named = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", "three_rooms", "--steps", "5", "--output",
                            str(tmp_path / "named"), "--no-reference"], capture_output=True, text=True, timeout=300,
                           env=env)
    assert named.returncode == 0, named.stdout + named.stderr
    assert json.loads((tmp_path / "named" / "summary.json").read_text())["steps"] == 5
    # without the plugin on the path the type is unknown, and the message says where families come from
    bare = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(HERE / "plugins" / "rooms.yaml")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bare.returncode == 2 and "model.type: 'thermal_rooms' is not allowed" in bare.stdout + bare.stderr


def test_a_broken_plugin_is_named_when_its_type_is_asked_for(tmp_path: Path) -> None:
    info = tmp_path / "broken_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dmpc_ros.models]\nbroken = no_such_package.family:Family\n")
    data = tmp_path / "broken.yaml"
    data.write_text("model: {type: broken, sample_time: 0.1}\ncontroller: {algorithm: jacobi, horizon: 5}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(data)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 2
    assert ("model.type: 'broken' is registered but its plugin failed to load (no_such_package.family:Family: "
            "ModuleNotFoundError") in run.stderr, run.stderr
    mass_spring = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", "mass_spring", "--steps", "2",
                                  "--no-reference", "--output", str(tmp_path / "ok")], capture_output=True,
                                 text=True, timeout=120, env=env)
    assert mass_spring.returncode == 0, mass_spring.stderr   # the other families still load


def test_the_builtin_families_are_one_module_each_and_schema_names_none() -> None:
    families = {p.stem for p in (PACKAGE_DIR / "dmpc_ros" / "families").glob("*.py")} - {"__init__"}
    assert families == {"linear", "mass_spring_chain", "platoon", "formation", "nonlinear"}
    schema = (PACKAGE_DIR / "dmpc_ros" / "scenarios" / "schema.py").read_text()
    for name in ("Platoon", "Formation", "MassSpringChain", "isinstance(self.model"):
        assert name not in schema, name
