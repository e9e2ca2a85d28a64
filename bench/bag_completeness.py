"""Benchmark: is a run bag complete under CPU load? Per recorder setting, the steps each topic has in run.mcap
against the steps the plant ran, for real `dmpc run` runs (lock-step) while busy loops load the machine.

The recorder (ros/recorder.py) is one Python node in the runner process; each candidate changes how it takes
messages in (ros/recorder.Recording):
  nodes' QoS      the publishers' own profiles (states: reliable, transient local, keep-last 1) — before issue 27
  keep-last D     each topic's reliability and durability, keep-last depth D
  keep all        the same with KEEP_ALL history
  + writer thread the callback only queues the bytes; a background thread writes the MCAP file
Columns, summed over agents: state (steps 0..T), control and status (0..T-1) found / expected, with T the steps the
plant ran (plant.npz); "load" is the 1-minute load average at the end of the run. Each run is a child process of
this script (`--one`), the load `--load` busy-loop processes started here and ended at the end.
--mode real_time runs the plant on the wall clock instead of lock-step.
Usage: python bench/bag_completeness.py [--load 4] [--scenarios mass_spring:100 formation:60] [--candidates ...]
       [--mode lock_step|real_time]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dmpc_ros.bag import STEP_TOPICS
from dmpc_ros.ros.recorder import RECORDER_DEPTH, Recording

CANDIDATES = {
    "nodes' QoS": Recording(depth=None),
    "keep-last 100": Recording(depth=100),
    "keep-last 1000": Recording(depth=1000),
    "keep all": Recording(depth=0),
    "keep-last 1000 + writer thread": Recording(depth=1000, writer_thread=True),
}
BUSY_LOOP = "while True: pass"


def run_one(scenario_name: str, steps: int, candidate: str, mode: str, output: Path) -> None:
    """Child process: one `dmpc run` of the scenario with the candidate's recorder, no console echo."""
    from dmpc_ros.ros.runner import run_scenario
    from dmpc_ros.scenarios.source import load_source

    scenario = load_source(scenario_name).with_overrides(steps=steps)
    outcome = run_scenario(scenario, scenario_name, output, mode=mode, echo=False, overrides={"steps": steps},
                           recording=CANDIDATES[candidate])
    (output / "outcome.json").write_text(json.dumps({"code": outcome.code, "message": outcome.message,
                                                     "load": os.getloadavg()[0]}))


def completeness(output: Path) -> dict[str, tuple[int, int]]:
    """Per topic kind (state, control, status): steps found in the bag / expected from the plant's steps, summed over
    agents (steps beyond the plant's are not counted)."""
    from dmpc_ros.report import read_run_bag

    steps = int(np.load(output / "plant.npz")["u"].shape[0])
    bag = read_run_bag(output / "run.mcap")
    agents = {topic.rsplit("/", 2)[-2] for topic in bag.steps}
    found = {}
    for leaf, fewer in STEP_TOPICS.items():
        expected = steps + 1 - fewer
        have = sum(len({k for k in bag.steps.get(topic, set()) if k < expected})
                   for topic in bag.steps if topic.endswith("/" + leaf))
        found[leaf] = (have, expected * len(agents))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load", type=int, default=4, help="busy-loop processes during the runs")
    parser.add_argument("--scenarios", nargs="+", default=["mass_spring:100", "formation:60"],
                        help="scenario:steps to run")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--mode", choices=("lock_step", "real_time"), default="lock_step")
    parser.add_argument("--one", nargs=5, metavar=("SCENARIO", "STEPS", "CANDIDATE", "MODE", "OUTPUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one[0], int(args.one[1]), args.one[2], args.one[3], Path(args.one[4]))
        return 0
    load = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.load)]
    table = Table(title=f"run.mcap completeness under {args.load} busy loops ({args.mode}; found / expected, all "
                        f"agents; default keep-last {RECORDER_DEPTH})")
    for column in ("scenario", "recorder", "load", "state", "control", "status", "complete"):
        table.add_column(column, justify="left" if column in ("scenario", "recorder") else "right")
    try:
        time.sleep(15.0 if args.load else 0.0)   # let the load average rise
        with tempfile.TemporaryDirectory() as folder:
            for entry in args.scenarios:
                name, steps = entry.split(":")
                for candidate in args.candidates:
                    output = Path(folder) / f"{name}-{len(os.listdir(folder))}"
                    child = subprocess.run([sys.executable, __file__, "--one", name, steps, candidate, args.mode,
                                            str(output)],
                                           capture_output=True, text=True, timeout=900)
                    if child.returncode or not (output / "plant.npz").is_file():
                        table.add_row(name, candidate, "", "", "", "", f"failed: {child.stderr.strip()[-200:]}")
                        continue
                    outcome = json.loads((output / "outcome.json").read_text())
                    found = completeness(output)
                    whole = all(have == expected for have, expected in found.values())
                    table.add_row(name, candidate, f"{outcome['load']:.1f}",
                                  *(f"{have}/{expected}" for have, expected in found.values()),
                                  "yes" if whole else "no")
                    Console().print(f"{name}, {candidate}: {found} ({outcome['message']})")
    finally:
        for process in load:
            process.send_signal(signal.SIGKILL)
            process.wait()
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
