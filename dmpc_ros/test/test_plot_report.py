"""The report's plots (limits drawn, axis labels, legends) and `dmpc plot` from an output folder or a run bag."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmpc_ros.scenarios import load_scenario
from dmpc_ros.sim.plots import PANELS, agent_labels, box_limits, panel_labels

DMPC = [str(Path(sys.prefix) / "bin" / "dmpc")]
REPORT = {"states_inputs.png", "convergence.png"}


def test_limits_labels_and_legends() -> None:
    chain = load_scenario("mass_spring").plant()
    first = chain.subsystems[0]
    limit = load_scenario("mass_spring").model.position_limit[0]
    assert sorted(box_limits(first.state_constraint, 0)) == [-limit, limit]
    formation = load_scenario("formation").plant().subsystems[0]
    assert panel_labels(formation, PANELS)[2].startswith("ax")   # the input panel shows accelerations
    assert agent_labels(["df", "df", "df"]) == ["agent 0: df", "agent 1: df", "agent 2: df"]
    assert agent_labels(["p_0", "p_1"]) == ["p_0", "p_1"]


def test_dmpc_plot_rebuilds_the_report_of_a_sim_folder(tmp_path: Path) -> None:
    run = subprocess.run(DMPC + ["sim", "mass_spring", "--steps", "8", "--output", str(tmp_path / "sim")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    replot = subprocess.run(DMPC + ["plot", str(tmp_path / "sim"), "--output", str(tmp_path / "again")],
                            capture_output=True, text=True, timeout=300)
    assert replot.returncode == 0, replot.stderr
    assert REPORT <= {p.name for p in (tmp_path / "again").iterdir()}
    missing = subprocess.run(DMPC + ["plot", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.ros
def test_dmpc_plot_of_a_bag_alone_has_the_runs_trajectory(tmp_path: Path, lock_step_run) -> None:
    from dmpc_ros.report import result_from_bag

    run = lock_step_run("mass_spring_robust", "jacobi")   # the session's run (test_ros_run checks it against dmpc sim)
    output = run.output
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    bag = tmp_path / "elsewhere" / "run.mcap"   # no scenario.yaml beside it: the bag's metadata names the source
    bag.parent.mkdir()
    shutil.copyfile(output / "run.mcap", bag)
    result, scenario = result_from_bag(bag)
    saved = np.load(output / "trajectory.npz")
    T = result.steps   # every step: the plant also publishes the state after its last step
    assert T == run.steps and saved["x"].shape[0] == T + 1
    np.testing.assert_array_equal(result.x, saved["x"][:T + 1])
    np.testing.assert_array_equal(result.u, saved["u"][:T])
    assert scenario.name == "mass_spring_robust" and result.iterations.min() >= 1
    replot = subprocess.run(DMPC + ["plot", str(bag)], capture_output=True, text=True, timeout=300)
    assert replot.returncode == 0, replot.stderr
    assert REPORT <= {p.name for p in bag.parent.iterdir()}


def test_shared_panels_name_each_agents_channel_and_draw_setpoints(monkeypatch, tmp_path: Path) -> None:
    """four_tank_nonlinear: the panels cover h1 and h2, h3 and h4, v1 and v2: each line's legend names its own
    channel and unit, the axis only what they share; the setpoints are drawn (dotted), the limits still (dashed)."""
    from dmpc_ros.api import simulate
    from dmpc_ros.report import plot_report
    from dmpc_ros.sim import plots

    scenario = load_scenario("four_tank_nonlinear").with_overrides(steps=2)
    plant = scenario.plant()
    assert panel_labels(plant.subsystems, PANELS) == ["first state of each agent [m]", "second state of each agent [m]",
                                                      "first input of each agent [V]"]
    assert panel_labels(load_scenario("mass_spring").plant().subsystems, PANELS)[0].startswith("p")
    figures = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.setdefault(path.name, fig) and path)
    names = {p.name for p in plot_report(simulate(scenario), scenario, tmp_path)}
    assert "setpoints.png" in names   # the nonlinear family's own setpoint plot too
    states = figures["states_inputs.png"].axes
    legends = [[text.get_text() for text in axis.get_legend().get_texts()] for axis in states]
    assert legends == [["h1 [m]", "h2 [m]"], ["h3 [m]", "h4 [m]"], ["v1 [V]", "v2 [V]"]]
    styles = [line.get_linestyle() for line in states[0].get_lines()]
    assert styles.count(":") == 2 and styles.count("--") >= 2   # a setpoint per agent; the level limits
    x_ref = scenario.model.setpoints[0].state
    dotted = [line for line in states[0].get_lines() if line.get_linestyle() == ":"]
    assert dotted[0].get_ydata()[0] == x_ref[0] and dotted[1].get_ydata()[0] == x_ref[2]
