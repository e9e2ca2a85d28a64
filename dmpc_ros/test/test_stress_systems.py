"""The stress systems of bench/stress_systems/ (issue 26): each builds and validates through the public API, and
runs three steps under centralized MPC and one distributed scheme (jacobi, or sensitivity on a nonlinear model)."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import dmpc_ros as dmpc  # noqa: E402
import stress_systems  # noqa: E402

SYSTEMS = sorted(m.name for m in pkgutil.iter_modules(stress_systems.__path__) if not m.name.startswith("_"))


def test_there_are_at_least_eight_systems():
    assert len(SYSTEMS) >= 8, SYSTEMS


@pytest.mark.parametrize("name", SYSTEMS)
def test_stress_system_builds_and_runs(name):
    module = importlib.import_module(f"stress_systems.{name}")
    assert module.__doc__ and "hard" in module.__doc__, f"{name}: the docstring must say what makes it hard"
    scenario = module.scenario().with_overrides(steps=3, horizon=6, max_iterations=3)   # short: < 20 s in all
    assert isinstance(scenario, dmpc.Scenario)
    try:                                  # linear systems: cooperative Jacobi; nonlinear ones refuse it
        distributed = scenario.with_overrides(algorithm="jacobi")
    except dmpc.ScenarioError:
        distributed = scenario.with_overrides(algorithm="sensitivity")
    for case in (scenario.with_overrides(algorithm="centralized"), distributed):
        result = dmpc.simulate(case)
        assert result.steps == 3
        assert np.all(np.isfinite(result.x)) and np.all(np.isfinite(result.u))
