"""Benchmark: which outputs of `dmpc run` survive a signal, per signal and victim process (issue 27, "Lost").

Each cell is a real lock-step run of mass_spring (100000 steps, so that the signal always comes mid-run): one second
after bring-up the victim gets the signal — the runner (`dmpc run` itself), the plant, one agent (agent_0) or the
lifecycle manager — and the run is waited for (killed after 120 s). Then:
  code       the runner's exit code
  summary    summary.json (its "steps"), trajectory.npz, the plots (states_inputs.png) and plant.npz: written or not
  bag        run.mcap: "ok" (the indexed reader opens it), "torn" (it needs `dmpc bag repair`), "-" (none)
  left       node processes still running 20 s after the runner ended (killed then)
Only `python -m dmpc_ros.cli` and the mcap library are used, so the same script measures any checkout:
`PYTHONPATH=<checkout>/dmpc_ros python bench/signals.py` (e.g. f7b30e1, before issue 27).
Usage: python bench/signals.py [--signals INT TERM HUP KILL] [--victims runner plant agent_0 lifecycle_manager]
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

from rich.console import Console
from rich.table import Table

SIGNALS = ("INT", "TERM", "HUP", "KILL")
VICTIMS = ("runner", "plant", "agent_0", "lifecycle_manager")
DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


def processes_of(output: Path) -> list[int]:
    """Processes whose command line names the run's output folder (the nodes' parameter file is in it)."""
    found = subprocess.run(["pgrep", "-f", str(output)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found if int(pid) != os.getpid()]


def victim_pid(victim: str, runner: subprocess.Popen, output: Path) -> int:
    if victim == "runner":
        return runner.pid
    found = subprocess.run(["pgrep", "-f", f"__node:={victim} .*{output}"], capture_output=True, text=True)
    pids = found.stdout.split()
    if len(pids) != 1:
        raise RuntimeError(f"{victim}: {len(pids)} processes match")
    return int(pids[0])


def bag_state(bag: Path) -> str:
    if not bag.is_file():
        return "-"
    from mcap.reader import make_reader

    try:
        with bag.open("rb") as handle:
            for _ in make_reader(handle).iter_messages():
                pass
        return "ok"
    except Exception:   # noqa: BLE001 — any failure of the indexed reader: the bag is torn
        return "torn"


def one_cell(signame: str, victim: str, output: Path) -> dict:
    """Run, signal the victim, wait; what survived."""
    command = DMPC + ["run", "mass_spring", "--steps", "100000", "--output", str(output), "--no-reference",
                      "--death-grace", "2"]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    lines: list[str] = []
    try:
        for line in runner.stdout:
            lines.append(line)
            if "all 5 nodes active" in line:
                break
        time.sleep(1.0)
        os.kill(victim_pid(victim, runner, output), getattr(signal, f"SIG{signame}"))
        lines += runner.stdout.readlines()
        code = runner.wait(timeout=120)
    except subprocess.TimeoutExpired:
        code = "hang"
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20.0
    while processes_of(output) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = processes_of(output)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    summary = output / "summary.json"
    text = "".join(lines)
    return {"code": code, "summary": json.loads(summary.read_text())["steps"] if summary.is_file() else None,
            "trajectory": (output / "trajectory.npz").is_file(), "plots": (output / "states_inputs.png").is_file(),
            "plant.npz": (output / "plant.npz").is_file(), "bag": bag_state(output / "run.mcap"), "left": len(left),
            "rebuilt": "rebuilt its trajectory" in text}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", nargs="+", default=list(SIGNALS), choices=SIGNALS)
    parser.add_argument("--victims", nargs="+", default=list(VICTIMS), choices=VICTIMS)
    args = parser.parse_args()
    import dmpc_ros

    table = Table(title=f"outputs after a signal mid-run (dmpc_ros from {Path(dmpc_ros.__file__).parents[1]})")
    for column in ("signal", "victim", "code", "summary (steps)", "trajectory", "plots", "plant.npz", "run.mcap",
                   "left"):
        table.add_column(column)
    yes = {True: "yes", False: "NO"}
    with tempfile.TemporaryDirectory() as folder:
        for signame in args.signals:
            for victim in args.victims:
                cell = one_cell(signame, victim, Path(folder) / f"{signame}-{victim}")
                Console().print(f"SIG{signame} → {victim}: {cell}")
                table.add_row(f"SIG{signame}", victim, str(cell["code"]),
                              "NO" if cell["summary"] is None else f"yes ({cell['summary']})",
                              yes[cell["trajectory"]], yes[cell["plots"]],
                              yes[cell["plant.npz"]] + (" (rebuilt)" if cell["rebuilt"] else ""), cell["bag"],
                              str(cell["left"]))
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
