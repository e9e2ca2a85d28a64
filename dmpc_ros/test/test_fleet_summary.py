"""A robot run's summary from what it recorded (issue 31): the bases' trajectories sampled at the steps give the
scenario's own metrics, the closest approach, and the agents' deadline misses and watchdog stops summed."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dmpc_ros.api import simulate
from dmpc_ros.fleet_summary import fleet_trajectory, robot_summary
from dmpc_ros.summary_table import robot_rows
from dmpc_ros.scenarios import load_scenario


def recorded(result, start: float, dt: float, robots: int) -> list[dict]:
    """What fake_robot would have written had it moved exactly as the simulated plant, one sample per step."""
    t = start + dt * np.arange(result.x.shape[0])
    x = result.x.reshape(result.x.shape[0], robots, 3)
    u = np.vstack([result.u, result.u[-1:]]).reshape(result.x.shape[0], robots, 2)
    return [{"t": t, "x": x[:, i, 0], "y": x[:, i, 1], "yaw": x[:, i, 2], "v": u[:, i, 0], "omega": u[:, i, 1]}
            for i in range(robots)]


def test_a_robot_runs_summary_is_the_scenarios_metrics_of_its_recorded_trajectories() -> None:
    scenario = load_scenario("unicycle_robots").with_overrides(steps=6)
    result = simulate(scenario)
    start, M = 1.798e9, scenario.num_agents
    trajectories = recorded(result, start, scenario.sample_time, M)
    x, u = fleet_trajectory(scenario, trajectories, start)
    np.testing.assert_allclose(x, result.x, atol=1e-6)
    np.testing.assert_allclose(u, result.u, atol=1e-12)
    statuses = [SimpleNamespace(deadline_misses=k % 2, watchdog_stops=1 if k == 3 else 0) for k in range(8)]
    summary = robot_summary(scenario, trajectories, start, statuses)
    expected = scenario.metrics(result.x, result.u)
    assert summary["steps"] == 6 and summary["deadline_misses"] == 4 and summary["watchdog_stops"] == 1
    for name, value in expected.items():
        assert summary["scenario_metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert summary["min_distance_any_pair"] <= summary["scenario_metrics"]["min_neighbour_distance"] + 1e-9
    rows = dict(robot_rows(robot_summary(scenario, trajectories, start)))
    assert rows["deadline misses"].startswith("—") and "min distance (limit, required)" in rows


def test_a_recording_that_covers_no_step_is_refused() -> None:
    scenario = load_scenario("unicycle_robots").with_overrides(steps=2)
    result = simulate(scenario)
    trajectories = recorded(result, 100.0, scenario.sample_time, scenario.num_agents)
    with pytest.raises(ValueError, match="do not cover a step"):
        fleet_trajectory(scenario, trajectories, 1000.0)
    with pytest.raises(ValueError, match="no robot base"):
        fleet_trajectory(load_scenario("formation"), trajectories, 100.0)


def test_dmpc_plot_of_a_robot_folder_writes_the_summary_and_the_plots(tmp_path, capsys) -> None:
    from dmpc_ros.cli import main

    scenario = load_scenario("unicycle_robots").with_overrides(steps=4)
    for i, record in enumerate(recorded(simulate(scenario), 50.0, scenario.sample_time, scenario.num_agents)):
        np.savez(tmp_path / f"robot_{i}.npz", **record)
    assert main(["plot", str(tmp_path), "--scenario", "unicycle_robots"]) == 2
    assert "give --scenario (its source) and --started-at" in capsys.readouterr().err
    assert main(["plot", str(tmp_path), "--scenario", "unicycle_robots", "--started-at", "50"]) == 0
    printed = capsys.readouterr().out
    assert "unicycle_robots — robot run" in printed and "watchdog stops" in printed
    assert {"robot_summary.json", "states_inputs.png", "paths.png"} <= {p.name for p in tmp_path.iterdir()}
