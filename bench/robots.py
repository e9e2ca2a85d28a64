"""Benchmark: robot mode on the wall clock with fake differential-drive bases (`ros2 launch dmpc_ros robots.launch.py
fake_robots:=true`), four agents and four bases sharing this machine's cores, at 10 Hz (unicycle_robots).

Per odometry condition (noise [m], latency [s], loss): deadline misses (steps whose command was not out within
0.8 Δt after the step started, over all agents' steps), steps with a stale pose, watchdog stops, the worst distance
between any two robots (from the bases' true trajectories; the constraint is 0.6 m) and the tracking error
‖p_i − p̄_i(t)‖ against the reference path (RMS over the run, largest in the last second).
Baseline in the same run: the same scenario in the in-process simulator (`dmpc sim`: no clock, no transport, the
exact plant), whose figures are what the controller achieves without the robots' timing and odometry.
Needs the launch stack (`make launch-stack`). Usage: python bench/robots.py [--steps 100]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dmpc_ros.report import fleet_figures
from dmpc_ros.ros.environment import reserve_domain_id, ros_environment
from dmpc_ros.scenarios import load_scenario

CONDITIONS = ((0.0, 0.0, 0.0), (0.01, 0.02, 0.05), (0.02, 0.05, 0.2))
SUMMARY = re.compile(r"robot mode: (\d+) steps, (\d+) deadline misses, (\d+) steps with a stale pose")


def run(steps: int, noise: float, latency: float, drop: float) -> dict:
    reservation = reserve_domain_id()
    try:
        with tempfile.TemporaryDirectory() as folder:
            start = time.time() + 10.0
            command = ["env", "--default-signal=INT", str(Path(sys.prefix) / "bin" / "ros2"), "launch", "dmpc_ros",
                       "robots.launch.py", "fake_robots:=true", "exit_on_completion:=true", f"output:={folder}",
                       f"steps:={steps}", f"start_time:={start:.3f}", f"odom_noise:={noise}",
                       f"odom_latency:={latency}", f"odom_drop:={drop}"]
            launched = subprocess.run(command, env=ros_environment(reservation.domain_id), capture_output=True,
                                      text=True, timeout=steps * 0.1 + 120)
            output = launched.stdout + launched.stderr
            if launched.returncode != 0:
                raise RuntimeError(output[-3000:])
            counts = np.array([[int(v) for v in m] for m in SUMMARY.findall(output)])
            scenario = load_scenario("unicycle_robots").with_overrides(steps=steps)
            robots = [dict(np.load(Path(folder) / f"robot_{i}.npz")) for i in range(scenario.num_agents)]
            figures = fleet_figures(scenario, robots, start)
    finally:
        reservation.release()
    return {**figures, "steps": int(counts[:, 0].sum()), "misses": int(counts[:, 1].sum()),
            "stale": int(counts[:, 2].sum()),
            "stops": output.count("robot stopped") - output.count("steps are done; robot stopped")}


def simulated(steps: int) -> dict:
    """The same figures for the in-process closed loop (the robots' true positions = the simulated plant's)."""
    from dmpc_ros import simulate

    scenario = load_scenario("unicycle_robots").with_overrides(steps=steps)
    result = simulate(scenario, compare_centralized=False)
    M, n_x = scenario.num_agents, result.x.shape[1] // scenario.num_agents
    states = result.x.reshape(-1, M, n_x)
    robots = [{"t": result.t, "x": states[:, i, 0], "y": states[:, i, 1]} for i in range(M)]
    return fleet_figures(scenario, robots, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    table = Table(title=f"robot mode, 4 fake bases, 10 Hz, {args.steps} steps (2 cores shared)")
    for column in ("noise / latency / loss", "deadline misses", "stale-pose steps", "watchdog stops logged",
                   "worst distance [m]", "tracking RMS [m]", "final tracking [m]"):
        table.add_column(column, justify="right")
    baseline = simulated(args.steps)   # first: it also builds the agents' compiled functions the nodes load
    for noise, latency, drop in CONDITIONS:
        r = run(args.steps, noise, latency, drop)
        table.add_row(f"{noise:g} m / {1e3 * latency:g} ms / {100 * drop:g} %",
                      f"{r['misses']}/{r['steps']} ({100 * r['misses'] / r['steps']:.1f} %)", str(r["stale"]),
                      str(r["stops"]), f"{r['worst_distance']:.3f}", f"{r['rms_tracking_error']:.3f}",
                      f"{r['final_tracking_error']:.3f}")
        print(f"done: {noise} {latency} {drop}", flush=True)
    table.add_row("in-process simulation", "—", "—", "—", f"{baseline['worst_distance']:.3f}",
                  f"{baseline['rms_tracking_error']:.3f}", f"{baseline['final_tracking_error']:.3f}")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
