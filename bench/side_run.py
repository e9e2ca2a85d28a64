"""A `dmpc run` with something happening beside it: the benchmarks that disturb a running scenario (a flood of bad
plans, forged inputs, a killed node) start the run, wait until its nodes are up, then run their disturbance in a
thread until the run ends."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np


ACTIVE = r"all \d+ nodes active"       # the run's nodes are up: step 0 is next
DOMAIN = r"ROS_DOMAIN_ID=(\d+)"          # the runner's first line: before any node starts


def run_beside(command: list[str], side: Callable[[int, threading.Event], None] | None,
               timeout: float, ready: str = ACTIVE) -> tuple[int, str]:
    """Run `command` (a `dmpc run …`, in a session of its own); once a line matches `ready` (by default: all nodes
    are active; DOMAIN: at once, to be discovered before step 0), call side(domain_id, stop) in a thread; `stop` is
    set when the run has ended. Returns (exit code, console output). Whatever is left of the run is killed."""
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    stop, lines, worker = threading.Event(), [], None
    try:
        for line in runner.stdout:
            lines.append(line)
            if re.search(ready, line):
                break
        if side is not None:
            domain = int(re.search(DOMAIN, "".join(lines))[1])
            worker = threading.Thread(target=side, args=(domain, stop))
            worker.start()
        text = "".join(lines) + runner.communicate(timeout=timeout)[0]
    finally:
        stop.set()
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
        if worker is not None:
            worker.join(timeout=60)
    return runner.returncode, text


class RunOutputs:
    """What a `dmpc run` left in its output folder (`folder`, a field of the dataclass that mixes this in)."""

    folder: Path

    @property
    def summary(self) -> dict:
        return json.loads((self.folder / "summary.json").read_text())

    @property
    def plant(self):
        return np.load(self.folder / "plant.npz")
