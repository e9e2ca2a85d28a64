"""How a team agrees on a change, sans IO: proposal, one vote per member of the re-formed team, announcement.

The acceptance test of coordination/team_change.py splits by agent: the candidate misses a row of agent i only if
agent i's own rows are missed (X_i, U_i, its mixed rows, its collision pairs), and agent i can check those from
what it holds (its view of the candidate: its neighbours' shifted plans, the joiner's state). So a change is
decided without a plant-wide check:
1. the change is proposed for step k (`Proposal`: who joins or leaves, the joiner's state and parameters);
2. every member of the re-formed team checks its own rows of the candidate and votes (`local_vote`: a `Vote`
   with the first row it misses, if any);
3. the tally (`ChangeTally`, run by whoever announces: the in-process driver, the ROS plant node) announces
   the change applied once every member voted yes, refused at the first no (the reason is the earliest
   violation among the votes) or when a vote is missing at the deadline (a silent member refuses).
The announcement goes out before step k's measurements; every member re-forms its problem from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.linear import CoupledLinearSystem
from .team_change import (FEASIBILITY_TOLERANCE, Announcement, Roster, TeamChange, Violation, earliest, refusal,
                          violations)


@dataclass(frozen=True)
class Vote:
    """Member `voter`'s verdict on the change of `member` at `step`: None, or the first own row the candidate
    misses."""

    step: int
    member: int
    voter: int
    violation: Violation | None = None

    @property
    def accepted(self) -> bool:
        return self.violation is None


def local_vote(system: CoupledLinearSystem, states: np.ndarray, inputs: np.ndarray, collision, change: TeamChange,
               roster: Roster, voter: int, tolerance: float = FEASIBILITY_TOLERANCE) -> Vote:
    """`voter`'s vote (a persistent id of the re-formed `roster`) from its own rows of the candidate."""
    own = roster.index(voter)
    return Vote(change.step, change.member, voter,
                earliest(violations(system, states, inputs, collision, tolerance, agents=(own,))))


class ChangeTally:
    """Collects the votes of the re-formed team on one change and decides: applied when all are yes, refused at
    the first no or at the deadline with a member silent. `before`/`after`: the team without / with the change;
    `graph`: (edges, predecessors) of each, announced with the verdict."""

    def __init__(self, change: TeamChange, before: Roster, after: Roster, graphs: dict[bool, tuple],
                 deadline: float = float("inf"), noun: str = "member") -> None:
        self.change, self.before, self.after, self.graphs = change, before, after, graphs
        self.deadline, self.noun = deadline, noun
        self.votes: dict[int, Vote] = {}
        self.announcement: Announcement | None = None

    def receive(self, vote: Vote) -> Announcement | None:
        """A vote in (of this change, by a member of the re-formed team; others are ignored): the announcement once
        decided, else None."""
        if self.announcement is not None or (vote.step, vote.member) != (self.change.step, self.change.member) or \
                vote.voter not in self.after.members:
            return None
        self.votes.setdefault(vote.voter, vote)
        refusals = [v.violation for v in self.votes.values() if not v.accepted]
        if refusals:
            return self._announce(refusal(self.change, earliest(refusals), self.after, self.noun))
        if len(self.votes) == len(self.after.members):
            return self._announce("")
        return None

    def settle_in_order(self, votes: dict[int, Vote], now: float | None = None) -> Announcement | None:
        """The verdict from `votes` (voter → vote) taken in the re-formed team's order, as far as every member up to
        there has voted, whatever order they arrived in: the verdict and the reason are then those of the in-process
        driver, which votes in that order. Undecided: None before the deadline, a refusal at it (`now` given)."""
        for voter in self.after.members:
            if voter not in votes:
                break
            if self.receive(votes[voter]) is not None:
                return self.announcement
        return None if now is None else self.tick(now)

    def tick(self, now: float) -> Announcement | None:
        """At the deadline a missing vote refuses the change."""
        if self.announcement is not None or now < self.deadline:
            return None
        silent = [m for m in self.after.members if m not in self.votes]
        return self._announce(f"{self.noun} {self.change.member} {self.change.kind} at step {self.change.step}: no "
                              f"vote from {self.noun} {', '.join(map(str, silent))} by the deadline")

    def _announce(self, reason: str) -> Announcement:
        accepted = not reason
        team = self.after if accepted else self.before
        edges, predecessors = self.graphs[accepted]
        self.announcement = Announcement(self.change.step, self.change.kind, self.change.member, accepted, reason,
                                         team.members, edges, predecessors)
        return self.announcement
