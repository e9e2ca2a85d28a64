"""The public Python API: `import dmpc_ros` is light and exposes what a user needs; a system built in code is
validated like a file; choosing a scheme sets what it needs."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import dmpc_ros as dmpc
from dmpc_ros.sim import SimulationSettings
from dmpc_ros.sim import simulate as simulate_design


def two_carts(**agent_fields) -> dmpc.LinearNetwork:
    """Two carts on a spring (continuous time), forces limited to ±1 N."""
    def cart(name: str, other: str) -> dmpc.LinearAgent:
        return dmpc.LinearAgent(name, A=[[0.0, 1.0], [-1.0, -0.1]], B=[[0.0], [1.0]],
                                couplings={other: dmpc.Coupling(A=[[0.0, 0.0], [1.0, 0.0]])},
                                Q=np.diag([10.0, 1.0]), R=[[0.1]],
                                input_constraint=dmpc.PolytopicConstraint.box(np.array([-1.0]), np.array([1.0])),
                                state_names=(f"p_{name}", f"v_{name}"), **agent_fields)
    return dmpc.LinearNetwork([cart("a", "b"), cart("b", "a")], sample_time=0.1, time="continuous")


def test_import_is_light_and_every_exported_name_resolves() -> None:
    code = ("import sys, dmpc_ros; assert 'rclpy' not in sys.modules and 'matplotlib' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('rclpy', 'matplotlib')));"
            "[getattr(dmpc_ros, n) for n in dmpc_ros.__all__]; assert 'rclpy' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        dmpc.simulat


def test_a_system_built_in_code_simulates_under_two_schemes_against_centralized() -> None:
    scenario = dmpc.scenario(two_carts(), name="carts", controller={"algorithm": "gauss_seidel", "horizon": 20,
                                                                   "max_iterations": 30, "tolerance": 1e-8},
                             simulation={"steps": 40, "initial_state": np.array([1.0, 0.0, -0.5, 0.0])})
    for algorithm in ("gauss_seidel", "admm"):
        result = dmpc.simulate(scenario, algorithm)
        centralized = dmpc.reference(scenario, algorithm)
        assert abs(result.closed_loop_cost / centralized.closed_loop_cost - 1) < 1e-3, algorithm
        assert np.max(np.abs(result.u)) == pytest.approx(1.0, abs=1e-6)   # the force limit is reached


def test_admm_sets_its_separable_terminal_cost_itself() -> None:
    """A design made for another scheme (full DARE terminal cost): ADMM agents and their centralized comparison
    both switch to the separable terminal cost, so the comparison is exact (it once had to be set by hand)."""
    scenario = dmpc.scenario(two_carts(), controller={"algorithm": "jacobi", "horizon": 20, "max_iterations": 200,
                                                      "tolerance": 1e-9},
                             simulation={"steps": 15, "initial_state": [[1.0, 0.0], [-0.5, 0.0]]})
    design = scenario.design()
    assert not design.separable_terminal_cost and design.for_algorithm("admm").separable_terminal_cost
    result = simulate_design(design, scenario.plant(), scenario.initial_state,
                             SimulationSettings("admm", 15, scenario.controller.stopping, compare_centralized=True))
    assert np.nanmax(result.input_error) < 1e-3


@pytest.mark.parametrize("sections,expected", [
    ({"controller": {"algorithm": "jacobi", "horizon": 10, "state_weight": [1, 1]}},
     r"controller\.state_weight: unknown field"),
    ({"controller": {"algorithm": "jacobi", "horizon": 10}, "simulation": {"initial_state": np.zeros(3)}},
     r"simulation\.initial_state: has 3 entries, expected 4"),
    ({"controller": {"algorithm": "jacobi", "horizon": 10},
      "simulation": {"initial_state": {"a": [0.0, 0.0], "c": [0.0, 0.0]}}},
     r"simulation\.initial_state\.c: unknown agent"),
    ({"controller": {"algorithm": "jacobi", "horizon": 0}}, r"controller\.horizon: 0 is not allowed: must be ≥ 1"),
])
def test_python_built_scenarios_are_validated_like_files(sections, expected) -> None:
    with pytest.raises(dmpc.ScenarioError, match=expected):
        dmpc.scenario(two_carts(), **sections)


@pytest.mark.parametrize("build,expected", [
    (lambda: dmpc.LinearNetwork([dmpc.LinearAgent("a", A=[[1.0]], B=[[1.0]], Q=[[1.0, 0.0]])], 0.1),
     r"agent 'a': Q is 1×2, expected 1×1"),
    (lambda: dmpc.LinearNetwork([dmpc.LinearAgent("a", A=[[1.0]], B=[[1.0]]),
                                 dmpc.LinearAgent("a", A=[[1.0]], B=[[1.0]])], 0.1),
     r"agent names must be unique; 'a' appears 2 times"),
    (lambda: dmpc.LinearNetwork([dmpc.LinearAgent("a", A=[[1.0]], B=[[1.0]], setpoints=[(1.0, [0.0])])], 0.1),
     r"agent 'a': the first setpoint must be at time 0"),
    (lambda: two_carts().discrete(0.2) and dmpc.LinearNetwork(
        [dmpc.LinearAgent("a", A=[[1.0]], B=[[1.0]])], 0.1).discrete(0.2),
     r"the matrices are discrete-time for sample_time 0\.1 s; cannot use them at 0\.2 s"),
])
def test_malformed_networks_in_code_are_named(build, expected) -> None:
    with pytest.raises(ValueError, match=expected):
        build()


def test_coupling_tolerance_of_a_python_built_system_reaches_the_prediction_model() -> None:
    """Weak couplings (1e-4 of the largest entry) are dropped from the prediction model only, as in files."""
    agents = [dmpc.LinearAgent("a", A=[[0.9]], B=[[1.0]], couplings={"b": dmpc.Coupling(A=[[1e-4]])}),
              dmpc.LinearAgent("b", A=[[0.9]], B=[[1.0]])]
    sections = dict(controller={"algorithm": "jacobi", "horizon": 5}, simulation={"initial_state": [[1.0], [0.0]]})
    loose = dmpc.scenario(dmpc.LinearNetwork(agents, 0.1, coupling_tolerance=1e-3), **sections)
    assert not np.any(loose.prediction_model().A[0][1]) and np.any(loose.plant().A[0][1])
    exact = dmpc.scenario(dmpc.LinearNetwork(agents, 0.1), **sections)
    assert np.any(exact.prediction_model().A[0][1])
    with pytest.raises(ValueError, match=r"coupling_tolerance 2 is not allowed: must be in \[0, 1\]"):
        dmpc.LinearNetwork(agents, 0.1, coupling_tolerance=2)


def test_run_ros_refuses_a_scenario_the_nodes_cannot_rebuild() -> None:
    scenario = dmpc.scenario(two_carts(), controller={"algorithm": "jacobi", "horizon": 10},
                             simulation={"initial_state": [[0.0, 0.0], [0.0, 0.0]]})
    with pytest.raises(ValueError, match="pass 'file.py:function'"):
        dmpc.run_ros(scenario, "unused")
