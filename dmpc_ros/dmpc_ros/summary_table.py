"""The rows of the summary table `dmpc sim` and `dmpc run` print, from summary.json's mapping (sans-IO: text only).

Each row says what it counts: step 0's repaired warm start apart from later failures, negotiation iterations apart
from consensus rounds, a required value labelled as a limit next to the measured one, a capped step with the residual
it stopped at, and a cost gap below the solvers' accuracy shown as 0 within tolerance.
"""
from __future__ import annotations

from .sim.results import GAP_TOLERANCE

REQUIRED_PREFIX = "required_"   # a scenario metric that is a limit the run had to respect, not a measurement


def cap_cell(cap: dict, steps: int) -> str:
    """The cell for steps that stopped at controller.max_iterations without meeting the tolerance."""
    if not cap["capped_steps"]:
        return f"0 of {steps} (limit {cap['max_iterations']})"
    return f"{cap['capped_steps']} of {steps} (limit {cap['max_iterations']}, max residual {cap['max_residual']:.1e})"


def refusal_cell(counts: dict) -> str:
    """The cell for an authenticated run: refused plans / inputs, each with its reasons."""
    def part(by_reason: dict) -> str:
        reasons = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in by_reason.items() if n)
        return f"{sum(by_reason.values())}{f' ({reasons})' if reasons else ''}"
    return f"{part(counts['plans_refused'])} / {part(counts['inputs_refused'])}"


def gap_cell(gap: float | None) -> str:
    """The cost gap in percent; |gap| below GAP_TOLERANCE is 0 within the solvers' accuracy."""
    if gap is None:
        return "—"
    if abs(gap) < GAP_TOLERANCE:
        return f"0 (within tolerance {GAP_TOLERANCE:.0e})"
    return f"{100 * gap:+.4f} %"


def iteration_cell(iterations: dict) -> str:
    """Negotiation iterations per step (mean / max), and the consensus iterations apart when there were any."""
    text = f"{iterations['mean']:.2f} / {iterations['max']}"
    rounds = iterations.get("consensus_iterations")
    return f"{text} (+ {rounds} of consensus)" if rounds else text


def counts_text(infeasible: int, failures: int, fallbacks: int) -> str:
    """E.g. "4 infeasible, 8 fallbacks" (solver failures named only when there are any)."""
    failed = f"{failures} solver failures, " if failures else ""
    return f"{infeasible} infeasible, {failed}{fallbacks} fallbacks"


def failure_rows(failures: dict, steps: int) -> list[tuple[str, str]]:
    """The failure counts, with step 0's (the warm start, often infeasible and repaired) apart from later ones."""
    rows = [("infeasible problems / solver failures", f"{failures['infeasible_problems']} / "
                                                      f"{failures['solver_failures']}"),
            ("fallbacks / steps on fallback input", f"{failures['fallbacks']} / {failures['steps_on_fallback_input']}")]
    first = failures.get("at_step_0")
    if first is None or not (first["infeasible_problems"] or first["solver_failures"] or first["fallbacks"]):
        return rows
    later = (failures["infeasible_problems"] - first["infeasible_problems"],
             failures["solver_failures"] - first["solver_failures"], failures["fallbacks"] - first["fallbacks"])
    how = "warm start repaired" if first["repaired"] else "warm start, fallback input applied"
    rows.append((f"  at step 0 ({how})", counts_text(first["infeasible_problems"], first["solver_failures"],
                                                     first["fallbacks"])))
    rows.append((f"  later (steps 1–{max(steps - 1, 1)})", counts_text(*later)))
    return rows


def metric_row(name: str, value: object) -> tuple[str, str]:
    """A scenario metric's row; a required value (REQUIRED_PREFIX) is labelled as the limit it is."""
    text = "—" if value is None else (", ".join(f"{v:.3g}" for v in value) if isinstance(value, list)
                                      else f"{value:.4g}")
    if name.startswith(REQUIRED_PREFIX):
        return f"{name[len(REQUIRED_PREFIX):].replace('_', ' ')} (limit, required)", text
    return name.replace("_", " "), text


def summary_rows(summary: dict, algorithm: str, stopped: str = "") -> list[tuple[str, str]]:
    """Every row of the table, in order, from a summary.json mapping (SimulationResult.summary plus
    scenario_metrics)."""
    median, p95 = summary["solve_time"]["median"], summary["solve_time"]["p95"]
    reference, error = summary["reference_cost"], summary["max_input_error"]
    rows = [
        ("closed-loop cost", f"{summary['closed_loop_cost']:.6g}"),
        ("centralized closed-loop cost", "—" if reference is None else f"{reference:.6g}"),
        ("cost gap", gap_cell(summary["closed_loop_cost_gap"])),
        *([("cost gap note", summary["cost_gap_note"])] if summary["cost_gap_note"] else []),
        ("max constraint violation", f"{summary['max_constraint_violation']:.3g}"),
        ("negotiation iterations mean / max", iteration_cell(summary["iterations"])),
        ("agent solve time median / p95", "—" if median is None else f"{1e6 * median:.0f} µs / {1e6 * p95:.0f} µs"),
        ("max input error vs centralized", "—" if error is None else f"{error:.3g}"),
        ("messages / bytes per step", f"{summary['messages_per_step']:.1f} / {summary['bytes_per_step']:.0f}"),
        *failure_rows(summary["failures"], summary["steps"]),
    ]
    failures = summary["failures"]
    if summary["iteration_limit"]["max_iterations"]:
        rows.append(("steps capped at the iteration limit", cap_cell(summary["iteration_limit"], summary["steps"])))
    if failures["worst_fallback_state_margin"] is not None:
        rows.append(("safety inputs / worst fallback x(k+1) margin in X",
                     f"{failures['safety_inputs']} / {failures['worst_fallback_state_margin']:.3g}"))
    rows += [(f"{algorithm}: {name.replace('_', ' ')}", f"{total:g}") for name, total in summary["counters"].items()]
    if "authentication" in summary:
        rows.append(("plans / inputs refused (authentication)", refusal_cell(summary["authentication"])))
    if stopped:
        rows.append(("stopped", stopped))
    return rows + [metric_row(name, value) for name, value in summary.get("scenario_metrics", {}).items()]


def fit_title(parts: list[str], width: int) -> str:
    """The table title from its parts ("name — scheme", "4 agents", "N = 20"), dropping trailing parts and then
    shortening the first with "…" so it fits `width` characters on one line (never wrapped mid-part)."""
    parts = list(parts)
    while len(parts) > 1 and len(", ".join(parts)) > width:
        parts.pop()
    title = ", ".join(parts)
    return title if len(title) <= width else title[:max(width - 1, 1)] + "…"


def robot_rows(summary: dict) -> list[tuple[str, str]]:
    """The table `dmpc plot` prints for a robot run (fleet_summary.robot_summary; the scenario's metrics as in the
    run's table)."""
    def count(key: str) -> str:
        return "— (no bag with the agents' statuses)" if summary[key] is None else str(summary[key])

    rows = [("steps", str(summary["steps"])), ("min distance, any two robots [m]",
                                               f"{summary['min_distance_any_pair']:.4g}"),
            ("deadline misses", count("deadline_misses")), ("watchdog stops", count("watchdog_stops"))]
    return rows + [metric_row(name, value) for name, value in summary["scenario_metrics"].items()]
