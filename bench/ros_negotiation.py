"""Benchmark: negotiation over DDS with one OS process per agent, against the in-process simulator.

For chains of 2, 4 and 8 masses (lock-step, cooperative Jacobi, exactly 10 iterations per step, N = 20) and
each executor, `dmpc run` records every plan to its MCAP bag; from the recorder's receive times:
  round trip   per (step, iteration p ≥ 1): time from the last agent's plan p−1 to the last agent's plan p —
               every agent received all its neighbours' plans, solved, and published (median, p95);
  steps/s      lock-step control steps per second of wall time (plant's clock), and the in-process
               simulator's steps/s for the same scenario measured in this process; their ratio.
With --agent-processes P the agents share at most P processes (`dmpc run --agents-per-process ⌈M/P⌉`, agent
containers), which lets 64 agents run on this machine.
Usage: python bench/ros_negotiation.py [--agents 2 4 8] [--steps 30] [--executors events single]
                                       [--agent-processes P]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rich.console import Console
from rich.table import Table

from dmpc_ros.scenarios import load_scenario
from dmpc_ros.sim import SimulationSettings, simulate

CONFIG = Path(__file__).resolve().parents[1] / "dmpc_ros" / "config" / "mass_spring.yaml"


def chain_scenario(masses: int, steps: int, directory: Path) -> Path:
    data = yaml.safe_load(CONFIG.read_text())
    data["name"] = f"chain_{masses}"
    masses_section = data["model"]["masses"]
    masses_section.update(count=masses, mass=1.0, spring_to_wall=[1.0] + [0.0] * (masses - 2) + [1.0])
    data["controller"].update(max_iterations=10, tolerance=0.0)
    data["simulation"].update(steps=steps, initial_state=[[float(0.5 * np.cos(1.3 * i)), 0.0] for i in range(masses)])
    path = directory / f"chain_{masses}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def round_trips(bag: Path, masses: int) -> np.ndarray:
    arrivals: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
    with bag.open("rb") as handle:
        for _, channel, message, plan in make_reader(handle,
                                                     decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            if channel.topic.endswith("/plan"):
                arrivals[(plan.step, plan.iteration)][plan.agent_id] = message.log_time / 1e9
    gaps = [max(seen.values()) - max(arrivals[(k, p - 1)].values())
            for (k, p), seen in arrivals.items()
            if p > 0 and len(seen) == masses and len(arrivals.get((k, p - 1), {})) == masses]
    return np.array(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--executors", nargs="+", default=["events", "single"])
    parser.add_argument("--agent-processes", type=int, default=0, metavar="P",
                        help="host the agents in at most P processes (0: one process per agent)")
    args = parser.parse_args()
    console = Console(width=140)
    table = Table(title=f"negotiation over DDS, lock-step, 10 iterations/step, N = 20 ({os.cpu_count()} cores)")
    for column in ("agents", "processes", "executor", "round trip median", "round trip p95", "ROS steps/s",
                   "in-process steps/s", "ratio"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as scratch:
        for masses in args.agents:
            path = chain_scenario(masses, args.steps, Path(scratch))
            scenario = load_scenario(str(path))
            started = time.perf_counter()
            simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                     SimulationSettings("jacobi", scenario.steps, scenario.controller.stopping))
            in_process = scenario.steps / (time.perf_counter() - started)
            per_process = -(-masses // args.agent_processes) if args.agent_processes > 0 else 1
            processes = -(-masses // per_process)
            for executor in args.executors:
                console.log(f"{masses} agents in {processes} processes, {executor} executor: dmpc run …")
                output = Path(scratch) / f"run_{masses}_{executor}"
                result = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "run", str(path),
                                         "--output", str(output), "--no-reference", "--iteration-timeout", "30",
                                         "--agents-per-process", str(per_process)],
                                        env=dict(os.environ, DMPC_EXECUTOR=executor),
                                        capture_output=True, text=True, timeout=900)
                if result.returncode != 0:
                    console.print(f"[red]run failed:[/red] {result.stdout[-2000:]}")
                    continue
                gaps = round_trips(output / "run.mcap", masses)
                wall = np.load(output / "plant.npz")["wall_time"]
                ros_rate = scenario.steps / (wall[-1] - wall[0])
                table.add_row(str(masses), str(processes), executor, f"{1e3 * np.median(gaps):.2f} ms",
                              f"{1e3 * np.percentile(gaps, 95):.2f} ms",
                              f"{ros_rate:.1f}", f"{in_process:.1f}", f"{ros_rate / in_process:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
