"""Stress suite (issue 26): every coordination scheme on every system of bench/stress_systems/, against centralized
MPC in the same run.

The systems are written from published papers (each module's docstring cites it and says what makes it hard):
strong coupling, neighbour-driven state limits, stiff dynamics, actuators at their limits, large setpoint moves and
load steps. Each module has `scenario() -> dmpc_ros.Scenario`; modules whose name starts with "_" are skipped.
Every registered scheme (dmpc_ros.coordination.scheme) is tried; one that refuses the system at load or at build
is recorded with its one-line reason. Columns:
  gap %        closed-loop cost vs centralized MPC of the same problem (ADMM: with the separable terminal cost)
  violation    largest state-constraint violation of the closed loop [constraint units]; schemes that claim
               feasibility (CLAIMS_FEASIBILITY) above 1e-6 are flagged VIOLATES, others marked "(no claim)"
  failures     infeasible local problems + other solver failures; fallbacks: fallbacks of any kind
  capped       steps whose negotiation stopped at the iteration cap (the scheme's counter when it reports one,
               else iterations == max_iterations)
  agent s      Σ of every agent's whole calls (one core); wall s: the run's wall time
Usage: python bench/stress.py [--systems a b] [--schemes x y] [--steps N] [--json out.json]
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent))   # stress_systems, run from anywhere

import dmpc_ros as dmpc  # noqa: E402
from dmpc_ros.coordination.scheme import scheme_names, scheme_of  # noqa: E402

import stress_systems  # noqa: E402

REFERENCE = "centralized"
# schemes whose closed loop must keep every state limit: those that keep them at every iterate
# (Scheme.coupled_limits == "every_iterate"; sensitivity keeps neighbour-driven limits as exact penalties, met at its
# fixed point, so an iteration cap may leave a violation, reported but not flagged); above TOLERANCE: flagged
def claims_feasibility(scheme: str) -> bool:
    return scheme_of(scheme).coupled_limits == "every_iterate"


TOLERANCE = 1e-6


def system_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(stress_systems.__path__) if not m.name.startswith("_"))


def build(name: str, steps: int | None) -> dmpc.Scenario:
    scenario = importlib.import_module(f"stress_systems.{name}").scenario()
    return scenario.with_overrides(steps=steps) if steps else scenario


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0] if text else ''}"
    return line if len(line) <= 200 else line[:199] + "…"


def agent_time(result) -> float:
    calls = result.agent_call_times or result.agent_solve_times
    return float(sum(t for step in calls if step for agent in step for t in (agent or [])))


def capped_steps(result, max_iterations: int) -> int:
    """Steps at which some agent stopped at the iteration limit short of its tolerance (StepStatistics.capped)."""
    return int(result.iteration_cap()["capped_steps"])


def run_one(base: dmpc.Scenario, scheme: str, progress, task) -> tuple[dict, object]:
    """One closed loop (or the reason it was refused)."""
    row = {"scheme": scheme}
    try:
        scenario = base.with_overrides(algorithm=scheme)
    except Exception as error:   # noqa: BLE001  the refusal at load, recorded
        return {**row, "refused": first_line(error)}, None
    progress.update(task, total=scenario.steps, completed=0)
    started = time.perf_counter()
    try:
        result = dmpc.simulate(scenario, progress=lambda k, total: progress.update(task, completed=k))
    except Exception as error:   # noqa: BLE001  a refusal at build (explicit laws not built) or a crash
        return {**row, "refused": first_line(error)}, None
    wall = time.perf_counter() - started
    failures = result.failures()
    violation = float(np.max(result.violation))
    row.update({
        "cost": result.closed_loop_cost, "violation": violation,
        "violates": claims_feasibility(scheme) and violation > TOLERANCE,
        "failures": failures["infeasible_problems"] + failures["solver_failures"],
        "fallbacks": failures["fallbacks"], "capped": capped_steps(result, scenario.controller.stopping.max_iterations),
        "iterations": float(np.mean(result.iterations)), "agent_time": agent_time(result), "wall_time": wall,
        "steps": result.steps})
    return row, scenario


def run_system(name: str, schemes: list[str], steps: int | None, progress) -> list[dict]:
    base = build(name, steps)
    task = progress.add_task(name, total=base.steps)
    rows, references = [], {}
    for scheme in schemes:
        progress.update(task, description=f"{name}: {scheme}")
        row, scenario = run_one(base, scheme, progress, task)
        if scenario is not None:
            separable = scheme_of(scheme).separable_terminal_cost
            if scheme == REFERENCE:
                references[False] = row["cost"]
            elif separable not in references:   # centralized MPC of the problem this scheme solves
                references[separable] = dmpc.reference(base, scheme).closed_loop_cost
            reference = references[separable]
            row["gap"] = 100.0 * (row["cost"] - reference) / abs(reference) if reference else None
        rows.append({"system": name, **row})
    progress.remove_task(task)
    return rows


COLUMNS = ("system", "scheme", "gap %", "max violation", "failures", "fallbacks", "capped", "iter", "agent s", "wall s")


def table(rows: list[dict]) -> str:
    """A Markdown table (bench/RESULTS.md takes it as printed); refusals below it, one line each."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    refusals = []
    for r in rows:
        if "refused" in r:
            refusals.append(f"- {r['system']} / {r['scheme']}: {r['refused']}")
            cells = [r["system"], r["scheme"], "refused", *[""] * 7]
        else:
            flag = " VIOLATES" if r["violates"] else ("" if r["violation"] <= TOLERANCE else " (no claim)")
            cells = [r["system"], r["scheme"], "—" if r.get("gap") is None else f"{r['gap']:+.3f}",
                     f"{r['violation']:.2e}{flag}", str(r["failures"]), str(r["fallbacks"]),
                     f"{r['capped']}/{r['steps']}", f"{r['iterations']:.1f}", f"{r['agent_time']:.1f}",
                     f"{r['wall_time']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + (["", "Refused:"] + refusals if refusals else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=None, help=f"default: all ({', '.join(system_names())})")
    parser.add_argument("--schemes", nargs="+", default=None, help="default: every registered scheme")
    parser.add_argument("--steps", type=int, default=None, help="override every system's number of steps")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    systems = args.systems or system_names()
    unknown = sorted(set(systems) - set(system_names()))
    if unknown:
        parser.error(f"--systems: unknown {unknown}; known: {system_names()}")
    schemes = [REFERENCE] + [s for s in (args.schemes or scheme_names()) if s != REFERENCE]
    console = Console()
    rows: list[dict] = []
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        for name in systems:
            rows.extend(run_system(name, schemes, args.steps, progress))
            console.print(f"done {name} ({time.perf_counter() - started:.0f} s)")
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    flagged = [f"{r['system']}/{r['scheme']}" for r in rows if r.get("violates")]
    if flagged:
        console.print(f"VIOLATES (claims feasibility, violation > {TOLERANCE:g}): {', '.join(flagged)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
