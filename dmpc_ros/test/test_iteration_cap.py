"""An iteration cap is never silent (issue 26): a step that stops at controller.max_iterations without meeting its
tolerance is marked capped with the residual it left, by every scheme alike, and the summary, the console line and
the AgentStatus say so; a run that converges reports none."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from builtin_interfaces.msg import Time

from dmpc_ros.api import simulate
from dmpc_ros.coordination.base import StepStatistics, StoppingRule
from dmpc_ros.report import result_from_records
from dmpc_ros.ros.conversions import status_message
from dmpc_ros.scenarios import load_scenario
from dmpc_ros_msgs.msg import AgentStatus


def test_stopping_at_the_limit_without_agreement_is_capped() -> None:
    statistics = StepStatistics()
    assert not statistics.stop(at_limit=False, agreed=False, residual=0.5) and not statistics.capped
    assert statistics.stop(at_limit=True, agreed=False, residual=0.25) and statistics.capped
    assert statistics.residual == 0.25
    assert statistics.stop(at_limit=True, agreed=True, residual=1e-9) and not statistics.capped
    assert statistics.stop(at_limit=False, agreed=True, residual=1e-9) and not statistics.capped
    rule = StoppingRule(max_iterations=3, tolerance=1e-3)
    assert [rule.at_limit(p) for p in (2, 3, 4)] == [False, True, True]
    new, old = np.array([1.0, 2.0]), np.array([1.0, 1.5])
    assert rule.change(new, old) == pytest.approx(0.5 / 2.5)
    assert rule.converged(new, old) == (rule.change(new, old) <= rule.tolerance)


CAPPED = [("mass_spring", "jacobi", 1), ("mass_spring", "gauss_seidel", 1), ("mass_spring", "noncooperative", 1),
          ("mass_spring", "admm", 2), ("mass_budget", "dual_decomposition", 2), ("water_tanks", "sensitivity", 1)]


@pytest.mark.parametrize("name, algorithm, limit", CAPPED, ids=lambda v: str(v))
def test_a_scheme_at_a_tiny_limit_reports_capped_steps_and_the_residual_left(name, algorithm, limit) -> None:
    scenario = load_scenario(name).with_overrides(algorithm=algorithm, max_iterations=limit, steps=4)
    result = simulate(scenario)
    cap = result.summary(name, None)["iteration_limit"]
    assert cap["max_iterations"] == limit and cap["tolerance"] == scenario.controller.tolerance
    assert cap["capped_steps"] >= 1 and cap["first_capped_step"] == int(np.argmax(np.any(result.capped, axis=1)))
    assert cap["max_residual"] > scenario.controller.tolerance
    assert np.all(result.iterations[np.any(result.capped, axis=1)] == limit)
    text = result.warning()
    assert text is not None and f"capped steps {cap['capped_steps']} of 4" in text
    assert f"at limit {limit}" in text and "raise controller.max_iterations" in text


@pytest.mark.parametrize("algorithm", ["jacobi", "gauss_seidel"])
def test_a_run_that_reaches_its_tolerance_reports_no_capped_step(algorithm) -> None:
    scenario = load_scenario("mass_spring").with_overrides(algorithm=algorithm, max_iterations=500, tolerance=1e-4,
                                                           steps=4)
    result = simulate(scenario)
    cap = result.summary("mass_spring", None)["iteration_limit"]
    assert cap["capped_steps"] == 0 and cap["max_residual"] is None and cap["first_capped_step"] is None
    assert np.all(result.iterations < 500) and np.all(result.residual <= 1e-4)
    assert result.cap_text() is None and result.warning() is None


def test_a_centralized_run_has_no_iteration_limit() -> None:
    result = simulate(load_scenario("mass_spring").with_overrides(algorithm="centralized", steps=2))
    cap = result.summary("mass_spring", None)["iteration_limit"]
    assert cap["max_iterations"] is None and cap["capped_steps"] == 0


def test_decentralized_agents_solve_once_by_design_and_are_never_capped() -> None:
    result = simulate(load_scenario("platoon").with_overrides(algorithm="decentralized", steps=5))
    assert result.iterations.max() == 1 and result.iteration_cap()["capped_steps"] == 0


def test_the_capped_record_survives_save_and_load(tmp_path) -> None:
    from dmpc_ros.sim.results import load_result

    scenario = load_scenario("mass_spring").with_overrides(max_iterations=1, steps=3)
    result = simulate(scenario)
    result.save(tmp_path, result.summary("mass_spring", None))
    loaded, _ = load_result(tmp_path)
    assert np.array_equal(loaded.capped, result.capped) and np.array_equal(loaded.residual, result.residual)
    assert loaded.iteration_cap() == result.iteration_cap()


def test_the_status_message_carries_the_cap_and_the_residual() -> None:
    statistics = StepStatistics(iterations=10)
    statistics.stop(at_limit=True, agreed=False, residual=3e-3)
    message = status_message(2, 5, statistics, SimpleNamespace(cost=1.0), math.inf, Time(sec=1), messages_missing=0)
    assert message.capped and message.residual == 3e-3 and message.iterations == 10
    assert deserialize_message(serialize_message(message), AgentStatus) == message
    converged = StepStatistics(iterations=3)
    converged.stop(at_limit=False, agreed=True, residual=1e-8)
    quiet = status_message(2, 6, converged, SimpleNamespace(cost=1.0), 0.0, Time(sec=1), messages_missing=0)
    assert not quiet.capped and quiet.residual == 1e-8


def test_a_ros_runs_summary_counts_the_capped_statuses() -> None:
    """`dmpc run` builds its result from the AgentStatus messages (report.result_from_records)."""
    scenario = load_scenario("mass_spring").with_overrides(steps=3)
    M, n, m = scenario.num_agents, scenario.plant().n_x, scenario.plant().n_u
    statuses = [AgentStatus(agent_id=i, step=k, iterations=10 if k == 1 else 3, capped=k == 1 and i == 2,
                            residual=4e-3 if k == 1 and i == 2 else 1e-7) for k in range(3) for i in range(M)]
    result = result_from_records(scenario, np.zeros((4, n)), np.zeros((3, m)), statuses)
    cap = result.iteration_cap()
    assert (cap["capped_steps"], cap["capped_agent_steps"], cap["first_capped_step"]) == (1, 1, 1)
    assert cap["max_residual"] == 4e-3 and cap["max_iterations"] == scenario.controller.max_iterations
    assert "capped steps 1 of 3" in result.cap_text()
