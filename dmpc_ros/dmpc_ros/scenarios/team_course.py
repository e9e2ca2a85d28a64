"""Where a run with team changes stands, sans IO: the course both drivers follow through the change steps.

`TeamCourse` holds the team (`Roster`), the scenario it runs from its last change step on and the candidate its
agents start that stretch from; at a change step k (`open`) the team is re-formed per change (`Boundary.propose`:
coupling graph, predecessor links, references from k on, the shifted candidate; family hooks `shifted`,
`team_change`), every member of the re-formed team votes on its own rows (`Boundary.vote`, team_protocol.py), the
verdict is applied (`Boundary.settle`) and the next stretch starts (`TeamCourse.close`). The in-process driver
(team_run.py) and the ROS nodes (the plant node tallies, every agent node votes and re-forms, ros/team_plant.py and
ros/team_member.py) call the same methods in the same order on the same numbers, which is why a lock-step ROS run
announces the same verdicts and follows the same trajectory as `dmpc sim`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..coordination.team_change import (JOIN, LEAVE, Announcement, Roster, TeamChange, candidate_inputs, coupling_graph)
from ..coordination.team_protocol import ChangeTally, Vote, local_vote
from .family import FamilyParts
from .schema import Scenario, build_scenario
from .validation import ScenarioError


class TeamCourse:
    """The run's team through its change steps: `roster`, `current` (the scenario from step `start` on, its state
    x(start) in `x`), `warm` (the candidate the stretch's agents start from; None at step 0) and `boundaries` (the
    change steps, then the run's end)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario, self.total = scenario, scenario.steps
        self.roster = Roster.initial(scenario.num_agents)
        self.current, self.start, self.x = scenario, 0, np.asarray(scenario.initial_state, float)
        self.warm: np.ndarray | None = None
        self.boundaries = sorted({c.step for c in scenario.team_changes}) + [scenario.steps]

    @property
    def end(self) -> int:
        """The step the current stretch ends at: the next change step or the run's end."""
        return next(b for b in self.boundaries if b > self.start)

    def changes_at(self, step: int) -> list[TeamChange]:
        return [c for c in self.scenario.team_changes if c.step == step]

    def piece(self) -> Scenario:
        """The scenario of the run from `start` to `end` (what one stretch of the closed loop simulates)."""
        return stretch_scenario(self.current, parts_of(self.current), self.x, self.end - self.start)

    def open(self, piece: Scenario, x: np.ndarray, fixed: np.ndarray) -> "Boundary":
        """The change step `end`, reached in state x with the members' shifted final plans `fixed` (N−1 × m)."""
        step = self.end
        base = stretch_scenario(piece, self.scenario.family.shifted(piece, (step - self.start) * piece.sample_time),
                                x, self.total - step)
        return Boundary(step, base, self.roster, np.asarray(x, float), np.asarray(fixed, float),
                        self.scenario.family.member_noun)

    def close(self, boundary: "Boundary") -> None:
        """After every change of the boundary is settled: the next stretch, its agents' candidate."""
        design = boundary.base.design()
        reference_states, reference_inputs = design.reference.window(0, design.horizon)
        self.warm = candidate_inputs(design.system, design.terminal_gain(), reference_states, reference_inputs,
                                     boundary.x, boundary.fixed, np.arange(design.system.n_u))
        self.current, self.start, self.x, self.roster = boundary.base, boundary.step, boundary.x, boundary.roster


@dataclass
class Proposed:
    """One change under vote: the re-formed team (None: refused before any vote, `announcement` says why) and the
    tally (run by the head)."""

    change: TeamChange
    team: "Reformed | None"
    tally: ChangeTally | None
    announcement: Announcement | None = None


class Boundary:
    """One change step: the team's scenario from there on (`base`), state, shifted plans and roster, updated by
    each settled change in order; `opened` once a change is applied, `source` the agent it disturbs first."""

    def __init__(self, step: int, base: Scenario, roster: Roster, x: np.ndarray, fixed: np.ndarray,
                 noun: str) -> None:
        self.step, self.base, self.roster, self.x, self.fixed, self.noun = step, base, roster, x, fixed, noun
        self.opened, self.source = False, None

    def propose(self, change: TeamChange) -> Proposed:
        """The team re-formed by `change` and its tally, or the refusal when it cannot be re-formed."""
        roster = self.roster
        before = coupling_graph(self.base.prediction_model(), roster, pairs_of(self.base))

        def refused(reason: str) -> Proposed:
            return Proposed(change, None, None, Announcement(change.step, change.kind, change.member, False,
                                                             reason, roster.members, *before))

        if change.kind != JOIN and change.member not in roster.members:
            return refused(f"{self.noun} {change.member} leave at step {change.step}: it is not in the team "
                           f"{list(roster.members)}")
        try:
            team = reform(self.base, roster, change, self.x, self.fixed)
        except ScenarioError as error:
            return refused(f"{self.noun} {change.member} {change.kind} at step {change.step}: {error}")
        graph = coupling_graph(team.scenario.prediction_model(), team.roster, pairs_of(team.scenario))
        return Proposed(change, team, ChangeTally(change, roster, team.roster, {True: graph, False: before},
                                                  noun=self.noun))

    @staticmethod
    def vote(proposed: Proposed, voter: int) -> Vote:
        """Member `voter`'s vote (a persistent id of the re-formed team) from its own rows of the candidate."""
        team = proposed.team
        return local_vote(team.scenario.prediction_model(), team.states, team.candidate, team.collision,
                          proposed.change, team.roster, voter)

    def settle(self, proposed: Proposed, announcement: Announcement) -> None:
        """The verdict: an applied change re-forms the team from here on (scenario, state, candidate)."""
        if not announcement.accepted or proposed.team is None:
            return
        change, team = proposed.change, proposed.team
        index = self.roster.index(change.member) if change.kind == LEAVE else None
        self.source = index if index is not None and index < len(team.roster.members) else None   # who closes up
        self.base, self.x, self.fixed = team.scenario, team.x, team.candidate[:-1]
        self.roster, self.opened = Roster(announcement.members), True


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
