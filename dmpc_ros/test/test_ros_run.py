"""`dmpc run` end to end: separate processes, lock-step; cross-checked against `dmpc sim`; a neighbour killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from conftest import REPO_DIR
from dmpc_ros.scenarios import load_scenario

pytestmark = [pytest.mark.ros, pytest.mark.slow]
DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


HELD = ("--control-horizon", "6")   # controller.control_horizon: inputs after 6 steps held (the node parameter)


@pytest.mark.parametrize("scenario,algorithm,per_process,extra", [
    ("mass_spring", "jacobi", 1, ()), ("mass_spring", "admm", 1, HELD), ("mass_budget", "dual_decomposition", 1, ()),
    ("platoon", "gauss_seidel", 1, ()), ("formation", "jacobi", 1, ()), ("mass_spring_robust", "jacobi", 1, ()),
    (str(REPO_DIR / "examples" / "four_tank.yaml"), "gauss_seidel", 1, ()),
    ("platoon", "gauss_seidel", 3, HELD)])   # agent containers of 3 nodes (sequential scheme: one executor per 3)
def test_lock_step_run_reproduces_in_process_simulation(tmp_path: Path, lock_step_run, scenario: str, algorithm: str,
                                                        per_process: int, extra: tuple[str, ...]) -> None:
    run = lock_step_run(scenario, algorithm, per_process, extra)   # shared with test_launch_files and test_plot_report
    ros, sim, steps = run.output, tmp_path / "sim", run.steps
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    simulated = subprocess.run(DMPC + ["sim", scenario, "--algorithm", algorithm, "--steps", str(steps),
                                       "--output", str(sim), "--no-reference", *extra],
                               capture_output=True, text=True, timeout=300)
    assert simulated.returncode == 0, simulated.stderr
    a, b = np.load(ros / "trajectory.npz"), np.load(sim / "trajectory.npz")
    plant = load_scenario(scenario).plant()
    assert a["x"].shape == (steps + 1, plant.n_x) and a["u"].shape == (steps, plant.n_u)
    np.testing.assert_allclose(a["x"], b["x"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(a["u"], b["u"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(a["t"], b["t"])

    summary_ros = json.loads((ros / "summary.json").read_text())
    summary_sim = json.loads((sim / "summary.json").read_text())
    assert summary_ros["closed_loop_cost"] == pytest.approx(summary_sim["closed_loop_cost"], rel=1e-9)
    assert summary_ros["reference_cost"] > 0 and summary_ros["iterations"]["max"] == summary_sim["iterations"]["max"]
    assert (ros / "states_inputs.png").stat().st_size > 1000

    topics, plans = {}, []
    with (ros / "run.mcap").open("rb") as handle:
        for _, channel, _, message in make_reader(handle, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            topics[channel.topic] = topics.get(channel.topic, 0) + 1
            if channel.topic == "/dmpc/agent_1/plan":
                plans.append(message)
    # one (reliable) input per step, plus the safe zero command each agent sends when it is deactivated at the end
    # (that one may come after the recorder stopped); status is best-effort by design, so under load some can drop
    assert steps <= topics["/dmpc/agent_0/control"] <= steps + 1
    assert 0 < topics[f"/dmpc/agent_{plant.num_agents - 1}/status"] <= steps
    loaded = load_scenario(scenario)
    horizon, n_x = loaded.controller.horizon, loaded.plant().subsystems[1].n_x
    assert plans and plans[0].horizon == horizon and len(plans[0].states) == (horizon + 1) * n_x
    if extra == HELD:   # the plans carry all N inputs, the tail after N_c held
        inputs = np.asarray(plans[-1].inputs).reshape(horizon, -1)
        assert np.allclose(inputs[6:], inputs[5], atol=1e-9)
    for line in ("plant", "agent_0" if per_process == 1 else "agents_0", "lifecycle_manager"):
        assert f"[{line}]" in run.stdout  # forwarded, prefixed output
    if per_process > 1:
        assert f"in {-(-plant.num_agents // per_process)} processes" in run.stdout


def test_killed_neighbour_is_reported_and_the_others_keep_going(tmp_path: Path) -> None:
    out = tmp_path / "run"
    killed = {}

    def kill_agent_2(runner: subprocess.Popen) -> None:
        victim = subprocess.run(["pgrep", "-f", f"__node:=agent_2 .*{out}"], capture_output=True,
                                text=True).stdout.split()
        assert len(victim) == 1, victim
        os.kill(int(victim[0]), signal.SIGKILL)
        killed["at"] = time.monotonic()

    code, output = disturb_running_scenario(["--steps", "400", "--output", str(out), "--no-reference",
                                             "--iteration-timeout", "0.2", "--death-grace", "8"], kill_agent_2)
    killed_at = killed["at"]
    assert code != 0
    assert "node agent_2 died" in output
    assert "lost agent: no heartbeat on /dmpc/agent_2/heartbeat" in output
    assert time.monotonic() - killed_at < 60

    missing_after = []
    with (out / "run.mcap").open("rb") as handle:
        for _, channel, _, status in make_reader(handle, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            if channel.topic.endswith("/status") and status.messages_missing > 0:
                missing_after.append(status.agent_id)
    # the survivors kept negotiating without agent 2: their console says so; their statuses in the bag say so too
    # when the recorder kept them (in the full suite it has kept none of them twice: the bag drops messages under
    # load, issue 27, open)
    assert "no plan from [" in output
    assert set(missing_after) <= {0, 1, 3}
    # nothing is lost: the steps done are written, marked incomplete with the step the run stopped at
    summary = json.loads((out / "summary.json").read_text())
    done = summary["steps"]
    assert 0 < done < 400 and summary["complete"] is False
    assert summary["stopped"] == f"node agent_2 died (exit code -9) after {done} of 400 steps"
    trajectory = np.load(out / "trajectory.npz")
    assert trajectory["u"].shape[0] == done and trajectory["x"].shape[0] == done + 1
    assert np.all(np.isfinite(trajectory["x"]))
    assert (out / "states_inputs.png").is_file() and (out / "plant.csv").is_file()


def wait_for_line(process: subprocess.Popen, text: str, timeout: float) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return lines
        assert time.monotonic() < deadline, f"no '{text}' within {timeout} s"
    raise AssertionError(f"process ended before '{text}':\n{''.join(lines)[-3000:]}")


def disturb_running_scenario(arguments: list[str], disturb, sigint_ignored: bool = False) -> tuple[int, str]:
    """Start `dmpc run mass_spring <arguments>` (optionally with SIGINT ignored, as a parent may pass it on), call
    disturb(runner) a second after bring-up, wait for the runner to end; returns its exit code and output.
    Whatever is left is killed."""
    command = DMPC + ["run", "mass_spring", *arguments]
    if sigint_ignored:   # `trap '' INT` ignores it, exec keeps it ignored
        command = ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *command]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        lines = wait_for_line(runner, "all 5 nodes active", 120)
        time.sleep(1.0)
        disturb(runner)
        lines += runner.stdout.readlines()
        code = runner.wait(timeout=120)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        for pid in leftover_processes(arguments[arguments.index("--output") + 1]):   # never poison later tests
            os.kill(pid, signal.SIGKILL)
    return code, "".join(lines)


def leftover_processes(output: str) -> list[int]:
    """Processes whose command line names the run's output directory (its nodes' parameter file does)."""
    found = subprocess.run(["pgrep", "-f", output], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found if int(pid) != os.getpid()]


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_ctrl_c_stops_every_node_cleanly(tmp_path: Path, sigint_ignored: bool) -> None:
    """SIGINT stops the run, also when the runner was started with SIGINT ignored (the full suite's pytest
    process passed it on that way, and the run went on for 300 s)."""
    out = tmp_path / "run"
    code, output = disturb_running_scenario(["--steps", "100000", "--output", str(out), "--no-reference"],
                                            lambda runner: runner.send_signal(signal.SIGINT), sigint_ignored)
    assert code == 130, output[-3000:]
    assert "dmpc run: interrupted" in output
    assert json.loads((out / "summary.json").read_text())["stopped"].startswith("interrupted after ")
    assert "/dmpc/agent_0: deactivate ok" in output           # the manager took the nodes down in order
    leftovers = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert leftovers == []


def test_nodes_end_when_the_runner_is_killed(tmp_path: Path) -> None:
    """kill -9 of `dmpc run` gives it no chance to stop its nodes: they notice that their supervisor is gone
    (DMPC_SUPERVISOR_PID) and end themselves instead of spinning forever."""
    out = tmp_path / "run"
    seen = {}

    def kill_runner(runner: subprocess.Popen) -> None:
        seen["nodes"] = leftover_processes(str(out))
        os.killpg(runner.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20.0
        while leftover_processes(str(out)) and time.monotonic() < deadline:
            time.sleep(0.2)
        seen["left"] = leftover_processes(str(out))

    disturb_running_scenario(["--steps", "100000", "--output", str(out), "--no-reference"], kill_runner)
    assert len(seen["nodes"]) == 7, seen   # the runner, plant, 4 agents and the lifecycle manager were running
    assert seen["left"] == []
    # the bag it left has no summary; `dmpc bag repair` keeps every complete chunk (the first second of the run)
    repair = subprocess.run(DMPC + ["bag", "repair", str(out / "run.mcap")], capture_output=True, text=True,
                            timeout=120)
    assert repair.returncode == 0, repair.stderr
    with (out / "run.repaired.mcap").open("rb") as handle:
        topics = {channel.topic for _, channel, _ in make_reader(handle).iter_messages()}
    assert {"/dmpc/agent_0/plan", "/dmpc/agent_0/state", "/dmpc/agent_0/status"} <= topics, repair.stdout


def test_real_time_mode_runs_at_the_sample_rate(tmp_path: Path) -> None:
    """Real time with plan_qos best_effort_deadline: the DDS deadline on plan topics (offered = requested, so they
    match) and the missed-deadline events wired to the negotiator, counted in the summary; the start gate activates
    the plant once every agent hears its neighbours."""
    out = tmp_path / "run"
    run = subprocess.run(DMPC + ["run", "mass_spring", "--mode", "real_time", "--steps", "30", "--output", str(out),
                                 "--no-reference", "--plan-qos", "best_effort_deadline"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:]
    output = run.stdout + run.stderr
    gate = output.find("start gate: every agent hears its neighbours")
    plant_up = output.find("/dmpc/plant: activate ok")
    assert 0 <= gate < plant_up, output[-4000:]
    plant = np.load(out / "plant.npz")
    periods = np.diff(plant["wall_time"])
    assert np.median(periods) == pytest.approx(0.1, abs=0.01)   # the plant keeps its own rate
    data = np.load(out / "trajectory.npz")
    assert np.all(np.isfinite(data["u"])) and np.max(np.abs(data["u"])) <= 1.0 + 1e-9
    assert np.max(np.abs(data["x"][-1])) < np.max(np.abs(data["x"][0]))   # still regulating towards rest
    summary = json.loads((out / "summary.json").read_text())
    assert summary["late_inputs"] >= 0 and summary["counters"]["plan_deadlines"] >= 0



def test_a_flood_of_bad_plans_is_refused_and_does_not_stall_the_negotiation(tmp_path: Path) -> None:
    """A rogue publisher floods agent 1's plan topic at 2000 plans/s (bench/ros_flood.py): the DDS content filter
    of the listeners' subscriptions drops them before their bounded queues, so agent 1's real plans keep their
    place and the lock-step run is bit-identical to the one without the flood (`dmpc sim`: a lock-step run without
    substituted plans equals it to the last bit; the run without a flood is bench/ros_flood.py's). Before, the flood
    stalled the run: rclpy's throttled warning costs 2 ms a call, and the queue it shared with the real plans
    overflowed."""
    sys.path.insert(0, str(REPO_DIR / "bench"))
    from ros_flood import flooded_run

    steps = 40
    flooded = flooded_run(2000, steps, tmp_path / "flooded", timeout=240)
    assert flooded.returncode == 0, flooded.output[-3000:]
    quiet = subprocess.run(DMPC + ["sim", "mass_spring", "--steps", str(steps), "--output", str(tmp_path / "sim"),
                                   "--no-reference"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert flooded.sent > 5000 and flooded.missing == 0, (flooded.sent, flooded.output[-3000:])
    np.testing.assert_array_equal(flooded.x, np.load(tmp_path / "sim" / "trajectory.npz")["x"])
    print(f"\nflood: {flooded.sent} plans sent, {flooded.refused} reached agent 0 and were refused; step median "
          f"{1e3 * flooded.step_median:.1f} ms flooded")
