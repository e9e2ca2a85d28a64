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

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..coordination.team_change import (JOIN, LEAVE, Announcement, Roster, TeamChange, candidate_inputs, coupling_graph,
                                        shifted_inputs)
from ..coordination.team_protocol import ChangeTally, local_vote
from ..sim import SimulationResult, SimulationSettings, simulate
from ..sim.closed_loop import SeedRefused
from .family import FamilyParts
from .schema import Scenario, build_scenario
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
                                   "edges": [list(e) for e in a.edges]} for a in self.announcements],
                "stretches": stretches, "overall": overall}


def simulate_team(scenario: Scenario, settings_of: Callable[[Scenario], SimulationSettings],
                  progress: Callable[[int, int], None] | None = None) -> TeamRun:
    """Run `scenario` with its team changes; settings_of(stretch scenario) gives each stretch's simulation
    settings (api.simulation_settings); progress(k, steps) after every step of the whole run."""
    family, dt, total = scenario.family, scenario.sample_time, scenario.steps
    noun = family.member_noun
    run, roster, x, start = TeamRun(), Roster.initial(scenario.num_agents), scenario.initial_state, 0
    current, warm, source, opened = scenario, None, None, True
    boundaries = sorted({c.step for c in scenario.team_changes}) + [total]
    for boundary in boundaries:
        piece = stretch_scenario(current, parts_of(current), x, boundary - start)
        settings = settings_of(piece)
        settings.warm_start = warm
        report = None if progress is None else (lambda k, _, offset=start: progress(offset + k, total))
        try:
            result = simulate(piece.design(), piece.plant(), x, settings, report)
        except SeedRefused as error:   # a scheme whose agents cannot be seeded
            raise ScenarioError(f"team_changes: {error}") from None
        if opened:
            run.stretches.append(Stretch(start, roster, piece, [], source))
        run.stretches[-1].pieces.append(result)
        if boundary == total:
            break
        x = result.x[-1]
        base = stretch_scenario(piece, family.shifted(piece, (boundary - start) * dt), x, total - boundary)
        fixed, opened = shifted_inputs(result.plan_inputs[-1]), False
        for change in (c for c in scenario.team_changes if c.step == boundary):
            announcement, accepted = decide(base, roster, change, x, fixed, noun)
            run.announcements.append(announcement)
            if accepted is not None:
                base, x, fixed, source = accepted
                roster, opened = Roster(announcement.members), True
        design = base.design()
        reference_states, reference_inputs = design.reference.window(0, design.horizon)
        warm = candidate_inputs(design.system, design.terminal_gain(), reference_states, reference_inputs, x, fixed,
                                np.arange(design.system.n_u))
        current, start = base, boundary
    return run


@dataclass(frozen=True)
class Reformed:
    """The team after a change, at its step 0: what every member (and the plant) rebuilds from an announcement —
    the scenario (coupling graph, predecessor links, references), the stacked state, the candidate (N × m: the
    shifted plans, the terminal law for the last step and the joiner) and its predicted states (N+1 × n)."""

    roster: Roster
    scenario: Scenario
    x: np.ndarray
    candidate: np.ndarray
    states: np.ndarray
    collision: object = None


def reform(base: Scenario, roster: Roster, change: TeamChange, x: np.ndarray, fixed: np.ndarray) -> Reformed:
    """The team of `base` (at its step 0, state x, the members' shifted plans `fixed`, N−1 × m) after `change`;
    ScenarioError (one line) when the family cannot re-form it (e.g. a joiner inside another robot's distance)."""
    index = len(roster.members) if change.kind == JOIN else roster.index(change.member)
    after = roster.after(change)
    parts, x_new = base.family.team_change(base, roster.members, index, change, x)
    reformed = stretch_scenario(base, parts, x_new, base.steps)
    design = reformed.design()
    system, old_system = design.system, base.prediction_model()
    columns, kept = [], []   # the surviving members' input columns: new position ← old position
    for member in after.members:
        if member in roster.members:
            columns.append(np.arange(*slice_bounds(system.input_slice(after.index(member)))))
            kept.append(np.arange(*slice_bounds(old_system.input_slice(roster.index(member)))))
    new_columns = np.concatenate(columns) if columns else np.zeros(0, int)
    old_columns = np.concatenate(kept) if kept else np.zeros(0, int)
    reference_states, reference_inputs = design.reference.window(0, design.horizon)
    U = candidate_inputs(system, design.terminal_gain(), reference_states, reference_inputs, x_new,
                         fixed[:, old_columns], new_columns)
    return Reformed(after, reformed, x_new, U, design.predict(x_new, U.ravel()), design.collision)


def decide(base: Scenario, roster: Roster, change: TeamChange, x: np.ndarray, fixed: np.ndarray,
           noun: str) -> tuple[Announcement, tuple | None]:
    """The announcement of `change` on the team of `base` (at its step 0, state x, shifted plans `fixed`, N−1 × m):
    the team re-formed, every member of it votes on its own rows of the candidate (team_protocol.py), the tally
    announces; if applied, also (re-formed scenario, its state, its candidate's first N−1 inputs, the disturbed
    agent)."""
    before = coupling_graph(base.prediction_model(), roster, pairs_of(base))

    def refused(reason: str) -> tuple[Announcement, None]:
        return Announcement(change.step, change.kind, change.member, False, reason, roster.members, *before), None

    if change.kind != JOIN and change.member not in roster.members:
        return refused(f"{noun} {change.member} leave at step {change.step}: it is not in the team "
                       f"{list(roster.members)}")
    try:
        team = reform(base, roster, change, x, fixed)
    except ScenarioError as error:
        return refused(f"{noun} {change.member} {change.kind} at step {change.step}: {error}")
    system, after = team.scenario.prediction_model(), team.roster
    tally = ChangeTally(change, roster, after, {True: coupling_graph(system, after, pairs_of(team.scenario)),
                                                False: before}, noun=noun)
    for voter in after.members:
        announcement = tally.receive(local_vote(system, team.states, team.candidate, team.collision, change, after,
                                                voter))
        if announcement is not None and not announcement.accepted:
            return announcement, None
    index = roster.index(change.member) if change.kind == LEAVE else None
    source = index if index is not None and index < len(after.members) else None   # who closes up after a leave
    return announcement, (team.scenario, team.x, team.candidate[:-1], source)


def slice_bounds(s: slice) -> tuple[int, int]:
    return s.start, s.stop


def pairs_of(scenario: Scenario) -> tuple[tuple[int, int], ...]:
    """Agent pairs coupled through the cost (pair terms) — formation edges; collision pairs are among them."""
    return tuple((t.owner, t.other) for t in scenario.controller.coupling_terms)


def parts_of(scenario: Scenario) -> FamilyParts:
    controller = scenario.controller
    return FamilyParts(scenario.model, controller.Q, controller.R, controller.coupling_terms, scenario.family_settings)


def stretch_scenario(scenario: Scenario, parts: FamilyParts, x: np.ndarray, steps: int) -> Scenario:
    """`scenario`'s sections around `parts`, starting from x for `steps` steps (validated like a file; no
    team changes of its own)."""
    sections = copy.deepcopy(scenario.sections)
    sections.pop("team_changes", None)
    simulation = sections.setdefault("simulation", {})
    sizes = [sub.n_x for sub in parts.model.subsystems()]
    simulation["steps"] = int(steps)
    simulation["initial_state"] = [[float(v) for v in row] for row in np.split(np.asarray(x, float),
                                                                                np.cumsum(sizes)[:-1])]
    return build_scenario(scenario.family, parts, sections, scenario.sample_time, scenario.coupling_tolerance,
                          scenario.source)
