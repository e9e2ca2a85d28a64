"""Benchmark: crash and rejoin (issue 28, point 4) in real ROS runs of `dmpc run mass_spring --respawn all`.

One node process is killed (SIGKILL) mid-run, once the plant has done --at-step steps: agent_1, the plant, the
lifecycle manager, or (--agents-per-process 2) the agent container agents_0 of agents 0 and 1. The runner respawns
it (`--respawn-delay`), the lifecycle manager brings it up again (a respawned manager adopts the running team), and
the run goes on. Per victim and mode (lock-step, real time) the table prints:
  back [s]       kill → the respawned node active again (the manager's log: "<node> rejoined"), or a respawned
                 manager's first heartbeat (the plant stops after 5 s without one); process start-up is most of it;
  rejoin [s]     kill → the next input of agent 1 solved by its new incarnation applied by the plant (agent kill), or
                 kill → the first step the plant applies after the kill (plant and manager kills: the plant's own
                 step times, plant.npz wall_time, on the steady clock every process shares);
  safe steps     agent-steps on the plant's safe input (summary.json plant_inputs.safe_input_steps, all agents);
  longest gap    the longest time between two plant steps after the kill [s];
  missing        neighbour plans substituted after the iteration timeout (summary.json);
  steps / exit   steps done of the run's, and dmpc run's exit code (0: the run went on to its end).
Real time uses mass_spring with a sample time of 0.5 s (--real-time-sample-time): at 0.1 s this loaded 2-core machine
delivers most real-time inputs late (bench/forged_input.py).
Usage: python bench/rejoin.py [--steps 40] [--real-time-steps 40] [--at-step 10] [--delay 0.5]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forged_input import pid_of, scenario_with_sample_time
from side_run import RunOutputs, run_beside

VICTIMS = ("agent_1", "plant", "lifecycle_manager")
CONTAINER = "agents_0"   # with --agents-per-process 2: the agent container of agents 0 and 1
AGENT = 1
INPUT_SOLVED = 0   # AgentStatus.INPUT_SOLVED


@dataclass
class RejoinRun(RunOutputs):
    returncode: int
    output: str                # the runner's console
    folder: Path
    victim: str
    killed_at: float | None    # time.monotonic() of the kill (None: the victim was not found)
    killed_unix: float | None = None   # time.time() of the kill (the nodes' log stamps are UNIX time)

    @property
    def respawned(self) -> int:
        return self.output.count("respawned (pid")

    def back_seconds(self) -> float | None:
        """Kill → the respawned node active again: the manager's "rejoined" line for the plant or an agent, the new
        manager's first heartbeat for the manager (it then adopts the team: "already active, adopted")."""
        node = "agent_1" if self.victim == CONTAINER else self.victim
        pattern = r"heartbeat on \(loading\)" if self.victim == "lifecycle_manager" else f"/{node} rejoined"
        stamps = [float(m[1]) for m in re.finditer(r"\[lifecycle_manager\] \[\w+\] \[([0-9.]+)\].*" + pattern,
                                                   self.output)]
        later = [t for t in stamps if self.killed_unix is not None and t > self.killed_unix]
        return later[0] - self.killed_unix if later else None

    def first_step_after_kill(self) -> int | None:
        """The first step whose state the plant published after the kill."""
        wall = self.plant["wall_time"]
        later = np.flatnonzero(wall > self.killed_at) if self.killed_at is not None else []
        return int(later[0]) if len(later) else None

    def rejoin_seconds(self) -> float | None:
        """Kill → the victim's (agent) next solved input applied, or the plant's first step applied (see above)."""
        wall = self.plant["wall_time"]
        first = self.first_step_after_kill()
        if first is None:
            return None
        applied = first
        if self.victim in ("agent_1", CONTAINER):
            solved = self._solved_after(first)
            if not solved:
                return None
            applied = solved[0]
        return float(wall[applied + 1] - self.killed_at) if applied + 1 < len(wall) else None

    def _solved_after(self, first: int) -> list[int]:
        """Steps ≥ first whose input agent 1's new incarnation solved (its statuses after its rejoin line)."""
        from dmpc_ros.report import read_run_bag

        statuses = [s for s in read_run_bag(self.folder / "run.mcap").statuses if s.agent_id == AGENT]
        steps = sorted({s.step for s in statuses if s.step >= first and s.input_source == INPUT_SOLVED})
        # the dead incarnation may have finished `first` before it died: the new one starts at a later step
        return [k for k in steps if k > first] or steps

    def longest_gap(self) -> float | None:
        wall = self.plant["wall_time"]
        first = self.first_step_after_kill()
        if first is None:
            return None
        times = wall[max(first - 1, 0):]
        times = times[np.isfinite(times)]
        return float(np.max(np.diff(times))) if len(times) > 1 else None


def plant_step(folder: Path) -> int:
    """The steps the plant has done, from its checkpoint (sim/resume.py; -1: none yet)."""
    try:
        with np.load(folder / "resume" / "plant.npz") as data:
            return int(data["step"])
    except (OSError, ValueError, KeyError, EOFError):
        return -1


def kill_at_step(victim: str, folder: Path, step: int, stop, result: dict) -> None:
    """SIGKILL the victim's process (its command names __node:=<victim> and the folder) once the plant has done
    `step` steps."""
    pid = pid_of(f"agent_container agent_0 .*{folder}" if victim == CONTAINER else f"__node:={victim} .*{folder}")
    while plant_step(folder) < step and not stop.is_set():   # the pid first: pgrep is slow on a loaded machine
        time.sleep(0.005)
    if pid is not None and not stop.is_set():
        os.kill(pid, signal.SIGKILL)
        result["killed_at"], result["killed_unix"] = time.monotonic(), time.time()


def rejoin_run(victim: str, mode: str, steps: int, folder: Path, at_step: int = 10, delay: float = 0.5,
               scenario: str = "mass_spring", flags: tuple[str, ...] = (), timeout: float = 300.0) -> RejoinRun:
    """`dmpc run <scenario> --respawn all` with `victim` killed once the plant has done `at_step` steps."""
    command = [sys.executable, "-m", "dmpc_ros.cli", "run", scenario, "--mode", mode, "--steps", str(steps),
               "--output", str(folder), "--no-reference", "--respawn", "all", "--respawn-delay", str(delay),
               "--death-grace", "5", *flags]
    result: dict = {}
    code, text = run_beside(command, lambda _domain, stop: kill_at_step(victim, folder, at_step, stop, result),
                            timeout)
    return RejoinRun(code, text, folder, victim, result.get("killed_at"), result.get("killed_unix"))


def row(run: RejoinRun, mode: str) -> str:
    def seconds(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    try:
        summary, plant = run.summary, run.plant
    except (OSError, ValueError):
        return f"| {run.victim} | {mode} | — | — | — | — | — | — / exit {run.returncode} |"
    safe = sum(summary["plant_inputs"]["safe_input_steps"])
    return (f"| {run.victim} | {mode} | {seconds(run.back_seconds())} | {seconds(run.rejoin_seconds())} | {safe} | "
            f"{seconds(run.longest_gap())} | "
            f"{summary.get('messages_missing', 0)} | {int(plant['completed_steps'])}/{int(plant['steps'])} / exit "
            f"{run.returncode} (respawned {run.respawned}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="lock-step run length")
    parser.add_argument("--real-time-steps", type=int, default=40)
    parser.add_argument("--real-time-sample-time", type=float, default=0.5)
    parser.add_argument("--at-step", type=int, default=10, help="kill once the plant has done this many steps")
    parser.add_argument("--delay", type=float, default=0.5, help="--respawn-delay [s]")
    parser.add_argument("--victims", default=",".join(VICTIMS + (CONTAINER,)))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        slow = str(scenario_with_sample_time(args.real_time_sample_time, folder / "slow"))
        for victim in args.victims.split(","):
            for mode, steps, scenario, flags in (
                    ("lock_step", args.steps, "mass_spring", ("--iteration-timeout", "0.5")),
                    ("real_time", args.real_time_steps, slow, ())):
                hosted = ("--agents-per-process", "2") if victim == CONTAINER else ()
                run = rejoin_run(victim, mode, steps, folder / f"{victim}-{mode}", args.at_step, args.delay, scenario,
                                 flags + hosted)
                rows.append(row(run, mode))
                print(rows[-1], flush=True)
    print(f"\nmass_spring over ROS, --respawn all --respawn-delay {args.delay:g}; SIGKILL after step {args.at_step} "
          f" (lock-step: {args.steps} steps, iteration timeout 0.5 s; real time: {args.real_time_steps} steps "
          f"of {args.real_time_sample_time:g} s)")
    print("| killed | mode | back [s] | rejoin [s] | safe steps | longest gap [s] | missing plans | steps / exit |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
