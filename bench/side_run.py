"""A `dmpc run` with something happening beside it: the benchmarks that disturb a running scenario (a flood of bad
plans, forged inputs, a killed node) start the run, wait until its nodes are up, then run their disturbance in a
thread until the run ends."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable


def run_beside(command: list[str], side: Callable[[int, threading.Event], None] | None,
               timeout: float) -> tuple[int, str]:
    """Run `command` (a `dmpc run …`, in a session of its own); once it says all nodes are active, call
    side(domain_id, stop) in a thread; `stop` is set when the run has ended. Returns (exit code, console output).
    Whatever is left of the run is killed."""
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    stop, lines, worker = threading.Event(), [], None
    try:
        for line in runner.stdout:
            lines.append(line)
            if re.search(r"all \d+ nodes active", line):
                break
        if side is not None:
            domain = int(re.search(r"ROS_DOMAIN_ID=(\d+)", "".join(lines))[1])
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
