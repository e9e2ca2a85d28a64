"""The summary table explains itself (issue 31): step 0's repaired warm start apart from later failures, consensus
iterations apart from negotiation ones, required values labelled as limits, tiny gaps as 0, no wrapped title; and
the console's progress lines when the output is not a terminal."""
from __future__ import annotations

import numpy as np

from dmpc_ros.progress import StepLines, phase, report, reporting
from dmpc_ros.sim.results import GAP_TOLERANCE, SimulationResult, explain_gap
from dmpc_ros.summary_table import failure_rows, fit_title, gap_cell, iteration_cell, metric_row


def result(steps: int = 5, controllers: int = 2) -> SimulationResult:
    run = SimulationResult.empty("jacobi", steps, 3, 2, 2, controllers, 20, 0.1)
    run.stage_cost[:], run.iterations[:] = 1.0, 3
    return run


def test_step_0_repairs_are_told_apart_from_later_failures() -> None:
    run = result()
    run.infeasible[0] = [2, 2]
    run.fallbacks[0] = [4, 4]
    failures = run.failures()
    assert failures["at_step_0"] == {"infeasible_problems": 4, "solver_failures": 0, "fallbacks": 8, "repaired": True}
    rows = dict(failure_rows(failures, run.steps))
    assert rows["  at step 0 (warm start repaired)"] == "4 infeasible, 8 fallbacks"
    assert rows["  later (steps 1–4)"] == "0 infeasible, 0 fallbacks"
    run.fallback_input[0, 1] = True   # a fallback input applied at step 0: not repaired
    run.infeasible[3, 0] = 1
    rows = dict(failure_rows(run.failures(), run.steps))
    assert rows["  at step 0 (warm start, fallback input applied)"] == "4 infeasible, 8 fallbacks"
    assert rows["  later (steps 1–4)"] == "1 infeasible, 0 fallbacks"
    assert len(failure_rows(result().failures(), 5)) == 2   # nothing at step 0: no split


def test_consensus_iterations_are_not_negotiation_iterations() -> None:
    run = result()
    run.iterations[:] = [25, 4, 6, 3, 2]
    run.counter("consensus_iterations")[0] = [21, 21]
    iterations = run.iteration_summary()
    assert iterations == {"mean": 3.8, "max": 6, "consensus_iterations": 21}
    assert iteration_cell(iterations) == "3.80 / 6 (+ 21 of consensus)"
    assert "consensus_iterations" not in run.counter_totals()
    assert "consensus_iterations" not in result().iteration_summary()


def test_a_required_value_is_labelled_as_a_limit() -> None:
    assert metric_row("required_min_distance", 0.6) == ("min distance (limit, required)", "0.6")
    assert metric_row("min_neighbour_distance", 0.8312) == ("min neighbour distance", "0.8312")


def test_a_tiny_negative_gap_is_zero_within_tolerance_and_gets_no_note() -> None:
    run, reference = result(), result()
    reference.stage_cost[:] = 1.0 + 1e-9
    gap = (run.closed_loop_cost - reference.closed_loop_cost) / reference.closed_loop_cost
    assert -GAP_TOLERANCE < gap < 0
    assert explain_gap(run, reference, gap) is None
    assert gap_cell(gap).startswith("0 (within tolerance")
    assert gap_cell(-0.01) == "-1.0000 %" and gap_cell(None) == "—"
    assert explain_gap(run, reference, -0.01).startswith("negative: ")


def test_the_title_fits_its_width() -> None:
    parts = ["mass_spring — jacobi over ROS (lock_step)", "4 agents", "N = 20"]
    assert fit_title(parts, 120) == ", ".join(parts)
    assert fit_title(parts, 55) == "mass_spring — jacobi over ROS (lock_step), 4 agents"
    short = fit_title(parts, 20)
    assert len(short) == 20 and short.endswith("…")


def test_the_printed_title_is_on_one_line(tmp_path) -> None:
    """A narrow console and a long name: the title is shortened, never wrapped."""
    import dataclasses
    import io

    from rich.console import Console

    from dmpc_ros.api import save, simulate
    from dmpc_ros.scenarios import load_scenario

    scenario = load_scenario("mass_spring").with_overrides(steps=2)
    run = simulate(scenario)
    console = Console(file=io.StringIO(), width=50)
    save(run, dataclasses.replace(scenario, name="a rather long scenario name"), tmp_path, console=console)
    lines = console.file.getvalue().splitlines()
    assert lines[0].strip() == "a rather long scenario name — jacobi, 4 agents" and lines[1].startswith("┏")


def test_piped_progress_prints_lines_every_tenth_or_period() -> None:
    lines, now = [], [0.0]
    progress = StepLines("jacobi run", lines.append, lambda: now[0], period=10.0, fraction=0.1, quiet=2.0)
    for k in range(1, 101):
        now[0] = 0.5 * k
        progress(k, 100)
    assert lines[0] == "jacobi run: step 10/100 (10 %), 5 s elapsed, about 45 s left"
    assert lines[-1] == "jacobi run: step 100/100 (100 %), 50 s elapsed" and len(lines) == 10
    quick, now[0] = [], 0.0
    progress = StepLines("quick", quick.append, lambda: now[0])
    for k in range(1, 11):
        progress(k, 10)
    assert quick == []   # a quick run prints nothing
    slow, now[0] = [], 0.0
    progress = StepLines("slow", slow.append, lambda: now[0], period=10.0)
    for k in range(1, 4):
        now[0] = 11.0 * k
        progress(k, 1000)
    assert len(slow) == 3   # every period, whatever the steps


def test_set_up_stages_are_named_with_their_phase() -> None:
    seen = []
    with reporting(lambda stage, done, total: seen.append(stage)):
        report("discretizing the model")
        with phase("centralized reference run"):
            report("discretizing the model")
    assert seen == ["discretizing the model", "centralized reference run: discretizing the model"]


def test_a_formation_summary_counts_negotiation_iterations_within_the_limit() -> None:
    from dmpc_ros.api import simulate
    from dmpc_ros.scenarios import load_scenario

    scenario = load_scenario("formation").with_overrides(steps=2)
    run = simulate(scenario)
    iterations = run.iteration_summary()
    assert iterations["consensus_iterations"] > 0
    assert np.all(run.negotiation_iterations()[0] <= scenario.controller.max_iterations)


def test_a_finished_set_up_stage_is_not_shown_once_the_run_steps(monkeypatch, capsys) -> None:
    """The watcher shows the stage under way; after set_up_over (the first step done) there is none, so a stage
    that ended long ago is not printed among the progress lines; a new phase is timed from its own start."""
    from dmpc_ros.cli import SetUpProgress
    from dmpc_ros.progress import set_up_over

    monkeypatch.setattr(SetUpProgress, "QUIET_SECONDS", 0.0)
    progress = SetUpProgress()
    with reporting(progress):
        report("building the agents")
        set_up_over()
    progress._show()
    assert capsys.readouterr().err.splitlines() == ["set-up (0 s): building the agents"]
    monkeypatch.setattr(SetUpProgress, "QUIET_SECONDS", 100.0)
    progress.started -= 200.0   # long since the start, but the reference run's set-up has only begun
    with reporting(progress), phase("centralized reference run"):
        report("discretizing the model")
    assert capsys.readouterr().err == ""
