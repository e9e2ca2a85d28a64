"""counter_traces.png (sim/plot_counters.py): one line per agent of the control horizons a run reported, from a
result of `dmpc sim` and from the AgentStatus records `dmpc plot` reads of a bag."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from dmpc_ros.report import plot_report, result_from_records
from dmpc_ros.scenarios import load_scenario
from dmpc_ros.sim import plot_counters
from dmpc_ros.sim.plot_counters import FILE, plot_counter_traces
from dmpc_ros.sim.results import SimulationResult


def figures_of(monkeypatch) -> list:
    """The figures plot_counters saves (then saved for real)."""
    drawn, real = [], plot_counters.save

    def keep(fig, path):
        drawn.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plot_counters, "save", keep)
    return drawn


def test_one_line_per_agent_and_gaps_for_steps_without_a_solve(tmp_path: Path, monkeypatch) -> None:
    drawn = figures_of(monkeypatch)
    result = SimulationResult.empty("horizons", 6, 10, 6, 3, 3, 5, 0.1)
    result.counter("control_horizon")[:] = [[8, 10, 4], [7, 10, 4], [6, 9, 4], [5, 9, 3], [5, 9, 3], [0, 9, 3]]
    result.counter("decision_variables")[:] = 5
    result.counter("repairs")[0, 0] = 1                       # a count, not traced
    paths = plot_counter_traces(result, tmp_path, "three masses", ["m0", "m1", "m2"])
    assert paths == [tmp_path / FILE] and paths[0].stat().st_size > 0
    horizons, variables = drawn[0].axes
    assert [line.get_label() for line in horizons.get_lines()] == ["m0", "m1", "m2"]
    assert len(variables.get_lines()) == 3
    first = horizons.get_lines()[0].get_ydata()
    assert list(first[:5]) == [8, 7, 6, 5, 5] and np.isnan(first[5])
    assert "N_c,i" in horizons.get_ylabel()


def test_nothing_drawn_without_a_traced_counter(tmp_path: Path) -> None:
    result = SimulationResult.empty("jacobi", 4, 10, 8, 4, 4, 5, 0.1)
    result.counter("repairs")[:] = 1
    assert plot_counter_traces(result, tmp_path, "chain") == [] and not (tmp_path / FILE).exists()


def test_the_report_of_a_runs_statuses_draws_the_horizons(tmp_path: Path, monkeypatch) -> None:
    """What `dmpc plot` of a bag builds: the result from the plant's trajectory and the agents' AgentStatus
    counters (result_from_records), then the report with counter_traces.png, one line per agent."""
    drawn = figures_of(monkeypatch)
    scenario = load_scenario("mass_spring_horizons").with_overrides(steps=4)
    plant, M, T = scenario.plant(), scenario.num_agents, 4
    x, u = np.zeros((T + 1, plant.n_x)), np.zeros((T, plant.n_u))
    statuses = [SimpleNamespace(step=k, agent_id=i, iterations=3, solve_time=0.01, infeasible_problems=0,
                                solver_failures=0, fallbacks=0, input_source=0, messages_missing=0, messages_late=0,
                                counter_names=["control_horizon", "decision_variables"],
                                counter_values=[12.0 - k - i, 13.0 - k - i])
                for k in range(T) for i in range(M)]
    result = result_from_records(scenario, x, u, statuses)
    paths = plot_report(result, scenario, tmp_path)
    assert tmp_path / FILE in paths
    lines = drawn[0].axes[0].get_lines()
    assert len(lines) == M and list(lines[1].get_ydata()) == [11.0, 10.0, 9.0, 8.0]
