"""The in-process driver of a run with team changes: the closed loop in stretches between change steps.

At a change step k the team is re-formed by the family (`ModelFamily.shifted`, `team_change`: coupling graph,
predecessor links, references from k on) and the change is decided by the shared rules of
coordination/team_change.py: the candidate (the members' final plans of step k − 1, shifted; the terminal law
for the last step and for a joiner) must satisfy every constraint of the re-formed problem. An applied change
starts the next stretch with agents seeded with that candidate (`Agent.seed`), so its first problem is feasible;
a refused one is announced with its reason and the team runs on unchanged, its agents seeded with their own
shifted plans.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..coordination.team_change import Announcement, Roster, shifted_inputs
from ..sim import SimulationResult, SimulationSettings, simulate
from ..sim.closed_loop import SeedRefused
from .schema import Scenario
from .team_course import TeamCourse, parts_of, stretch_scenario
from .validation import ScenarioError


@dataclass
class Stretch:
    """The run between two applied changes (the team is the same throughout): its first step, team, scenario
    (references from its start) and the pieces it was simulated in (split at refused changes, each restarted from
    its shifted plans); `source` is the agent the change before it disturbs first (None: a join or the start)."""

    start: int
    roster: Roster
    scenario: Scenario
    pieces: list[SimulationResult]
    source: int | None = None

    @property
    def steps(self) -> int:
        return sum(piece.steps for piece in self.pieces)

    def trajectory(self) -> tuple[np.ndarray, np.ndarray]:
        """(x steps+1 × n, u steps × m) over the pieces."""
        x = np.vstack([piece.x[:-1] for piece in self.pieces] + [self.pieces[-1].x[-1:]])
        return x, np.vstack([piece.u for piece in self.pieces])

    def metrics(self) -> dict:
        x, u = self.trajectory()
        whole = stretch_scenario(self.scenario, parts_of(self.scenario), x[0], self.steps)   # references for all
        return self.scenario.family.change_metrics(whole, x, u, self.source)

    def figures(self) -> dict:
        """Its metrics and its feasibility counts (`first_step_fallbacks`: repairs of the seeded candidates at the
        pieces' first steps; 0 where the candidate was feasible)."""
        fails, metrics = [piece.failures() for piece in self.pieces], self.metrics()
        return {
            "start": self.start, "steps": self.steps, "team": list(self.roster.members),
            "max_constraint_violation": float(max([np.max(piece.violation) for piece in self.pieces]
                                                  + [metrics.get("constraint_violation") or 0.0])),
            **{key: sum(f[key] for f in fails) for key in ("infeasible_problems", "fallbacks", "failed_steps")},
            "first_step_fallbacks": int(sum(piece.fallbacks[0].sum() for p, piece in enumerate(self.pieces)
                                            if piece.fallbacks.size and (p or self.start))),   # seeded pieces
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float, list)) or v is None}}


@dataclass
class TeamRun:
    """A run with team changes: its stretches and the announcements between them."""

    stretches: list[Stretch] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)

    def summary(self) -> dict:
        """Per stretch (between applied changes) its figures (min gap or distance, string-stability ratios ...) and
        feasibility counts; over the run the smallest `min_*` and the largest `*_ratio` figures."""
        stretches = [stretch.figures() for stretch in self.stretches]
        overall = {}
        for figures in stretches:
            for key, value in figures.items():
                if isinstance(value, float) and key.startswith("min_"):
                    overall[key] = min(overall.get(key, np.inf), value)
                elif isinstance(value, float) and key.endswith("_ratio"):
                    overall[key] = max(overall.get(key, 0.0), value)
        overall["max_constraint_violation"] = max(s["max_constraint_violation"] for s in stretches)
        return {"announcements": [{"step": a.step, "kind": a.kind, "member": a.member, "accepted": a.accepted,
                                   "reason": a.reason, "team": list(a.members),
                                   "edges": [list(e) for e in a.edges],
                                   "predecessors": {str(m): list(p) for m, p in a.predecessors.items()}}
                                  for a in self.announcements],
                "stretches": stretches, "overall": overall}


def announcement_of(entry: dict) -> Announcement:
    """An announcement of `TeamRun.summary` (a team_changes.json entry) as the object again."""
    return Announcement(entry["step"], entry["kind"], entry["member"], entry["accepted"], entry["reason"],
                        tuple(entry["team"]), tuple(tuple(e) for e in entry["edges"]),
                        {int(m): tuple(p) for m, p in entry.get("predecessors", {}).items()})


def simulate_team(scenario: Scenario, settings_of: Callable[[Scenario], SimulationSettings],
                  progress: Callable[[int, int], None] | None = None) -> TeamRun:
    """Run `scenario` with its team changes; settings_of(stretch scenario) gives each stretch's simulation
    settings (api.simulation_settings); progress(k, steps) after every step of the whole run. The course through
    the changes is team_course.py's, which the ROS nodes follow too."""
    total = scenario.steps
    run, course, source, opened = TeamRun(), TeamCourse(scenario), None, True
    while True:
        piece, start = course.piece(), course.start
        settings = settings_of(piece)
        settings.warm_start = course.warm
        report = None if progress is None else (lambda k, _, offset=start: progress(offset + k, total))
        try:
            result = simulate(piece.design(), piece.plant(), course.x, settings, report)
        except SeedRefused as error:   # a scheme whose agents cannot be seeded
            raise ScenarioError(f"team_changes: {error}") from None
        if opened:
            run.stretches.append(Stretch(start, course.roster, piece, [], source))
        run.stretches[-1].pieces.append(result)
        if course.end == total:
            return run
        boundary = course.open(piece, result.x[-1], shifted_inputs(result.plan_inputs[-1]))
        for change in course.changes_at(boundary.step):
            proposed = boundary.propose(change)
            announcement = proposed.announcement or proposed.tally.settle_in_order(
                {voter: boundary.vote(proposed, voter) for voter in proposed.tally.after.members})
            boundary.settle(proposed, announcement)
            run.announcements.append(announcement)
        opened, source = boundary.opened, boundary.source if boundary.opened else source
        course.close(boundary)
