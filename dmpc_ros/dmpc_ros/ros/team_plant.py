"""The head of plug and play over ROS: the plant node proposes each change, tallies the votes and announces.

Why the plant: in lock-step it owns time, so it is the one node that knows the team has finished step k − 1 (every
input is in) and holds the whole state x(k); it must also add or remove the subsystem at step k. So it proposes
the change with x(k) and the members' final plans of step k − 1 (read from their plan topics), collects one vote
per member of the re-formed team, decides with `ChangeTally.settle_in_order` (the verdict and reason `dmpc sim`
gives, whatever order the votes came in; a member silent for `vote_timeout` refuses), announces, and only then
publishes step k's state, from the re-formed plant. The course is scenarios/team_course.py's, as in `dmpc sim`.
It records every stretch's trajectory, the announcements and the members' AgentStatus messages (best effort: the
plant's view of the infeasibility and fallback counts) and writes the same summary (`TeamRun.summary`) to
team_changes.json beside its output file.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from dmpc_ros_msgs.msg import AgentStatus, PredictedTrajectory, TeamAnnouncement, TeamProposal, TeamVote

from ..coordination.team_change import Announcement, Roster
from ..coordination.team_protocol import Vote
from ..report import result_from_records
from ..scenarios.node_specs import agent_topic
from ..scenarios.schema import Scenario
from ..scenarios.team_course import Boundary, Proposed, TeamCourse
from ..scenarios.team_run import Stretch, TeamRun
from .qos import STATUS_QOS, plan_qos
from .team_topics import (ANNOUNCEMENT_TOPIC, PROPOSAL_TOPIC, TEAM_QOS, VOTE_TOPIC, announcement_message,
                          proposal_message, vote_of)

VOTE_TIMEOUT = 60.0   # [s] a member silent this long after a proposal refuses the change (the tally's deadline)
STATUS_WAIT = 1.0     # [s] at most, at the run's end, for the members' statuses of the last step (best effort)


class TeamHead:
    """The team's course at the plant: `piece` is the scenario of the stretch the plant simulates now (its first
    step `course.start`, its team `course.roster`); `reach(x, now)` at the stretch's end starts the change step,
    `poll(now)` drives it and returns True once the next stretch is ready."""

    def __init__(self, node, scenario: Scenario, vote_timeout: float = VOTE_TIMEOUT) -> None:
        self.node, self.vote_timeout = node, vote_timeout
        self.course = TeamCourse(scenario)
        self.piece = self.course.piece()
        self.members = scenario.num_agents + sum(c.kind == "join" for c in scenario.team_changes)
        # member → (step, inputs N × m_i) of its last final plan
        self.finals: dict[int, tuple[int, np.ndarray]] = {}
        self.ballots: dict[tuple[int, int], dict[int, Vote]] = {}
        self.boundary: Boundary | None = None
        self.pending: list = []
        self.proposed: Proposed | None = None
        self.sent, self.x_end = 0.0, None
        self.closing: float | None = None   # when the run's last step was done (the summary not yet written)
        self.run, self.opened, self.source = TeamRun(), True, None
        self.pieces: list[tuple[Stretch, Scenario, np.ndarray, np.ndarray]] = []   # (its stretch, scenario, x, u)
        self.statuses: list = []
        self.proposals = node.create_publisher(TeamProposal, PROPOSAL_TOPIC, TEAM_QOS)
        self.announcements = node.create_publisher(TeamAnnouncement, ANNOUNCEMENT_TOPIC, TEAM_QOS)
        self.inputs = [node.create_subscription(TeamVote, VOTE_TOPIC, self._on_vote, TEAM_QOS)]
        self.inputs += [node.create_subscription(PredictedTrajectory, agent_topic(j, "plan"),
                                                 lambda message, j=j: self._on_plan(j, message), plan_qos("reliable"))
                        for j in range(self.members)]
        self.inputs += [node.create_subscription(AgentStatus, agent_topic(j, "status"), self.statuses.append,
                                                 STATUS_QOS) for j in range(self.members)]

    def closed(self, now: float) -> bool:
        """At the run's end: every member's status of the last step is in, or STATUS_WAIT has passed."""
        last = self.course.total - 1
        if {s.agent_id for s in self.statuses if s.step == last} >= set(self.ids()) or \
                now - self.closing > STATUS_WAIT:
            self.closing = None
            return True
        return False

    @property
    def busy(self) -> bool:
        return self.x_end is not None

    def ids(self) -> tuple[int, ...]:
        return self.course.roster.members

    def _on_plan(self, member: int, message: PredictedTrajectory) -> None:
        if message.final and message.agent_id == member:
            self.finals[member] = (int(message.step), np.asarray(message.inputs, float).reshape(message.horizon, -1))

    def _on_vote(self, message: TeamVote) -> None:
        vote = vote_of(message)
        self.ballots.setdefault((vote.step, vote.member), {}).setdefault(vote.voter, vote)

    def record(self, x: np.ndarray, u: np.ndarray) -> None:
        """The stretch just simulated (x: steps+1 × n, u: steps × m), as `dmpc sim` records it (its statuses are
        added when the summary is written: the last step's may still be on their way)."""
        if self.opened:
            self.run.stretches.append(Stretch(self.course.start, self.course.roster, self.piece, [], self.source))
        self.pieces.append((self.run.stretches[-1], self.piece, x.copy(), u.copy()))

    def reach(self, x: np.ndarray) -> None:
        """The plant is at the change step (state x of the team before it): wait for the final plans, then vote."""
        self.x_end = np.asarray(x, float)

    def poll(self, now: float) -> bool:
        """One look at the change step: True once every change of it is announced and the next stretch is ready."""
        if self.boundary is None:
            step = self.course.end
            plans = [self.finals.get(m) for m in self.ids()]
            if any(p is None or p[0] != step - 1 for p in plans):
                return False   # a final plan of step k − 1 not in yet (another topic than the input)
            fixed = np.hstack([inputs for _, inputs in plans])[1:]
            self.boundary = self.course.open(self.piece, self.x_end, fixed)
            self.pending = self.course.changes_at(step)
        while self.pending:
            change, boundary = self.pending[0], self.boundary
            if self.proposed is None:
                self.proposed, self.sent = boundary.propose(change), now
                self.proposals.publish(proposal_message(change, boundary.roster, boundary.x, boundary.fixed))
            announcement = self.proposed.announcement or self.proposed.tally.settle_in_order(
                self.ballots.get((change.step, change.member), {}),
                now if now - self.sent > self.vote_timeout else None)
            if announcement is None:
                return False
            self._announce(announcement)
        self.opened, self.source = self.boundary.opened, self.boundary.source if self.boundary.opened else self.source
        self.course.close(self.boundary)
        self.boundary, self.x_end, self.piece = None, None, self.course.piece()
        return True

    def _announce(self, announcement: Announcement) -> None:
        self.announcements.publish(announcement_message(announcement))
        self.boundary.settle(self.proposed, announcement)
        self.run.announcements.append(announcement)
        self.node.get_logger().info(announcement.line(self.course.scenario.family.member_noun))
        self.proposed = None
        self.pending.pop(0)

    def _statuses(self, roster: Roster, start: int, steps: int) -> list:
        """The members' statuses of steps start … start+steps−1, as the piece numbers them (agent index, step)."""
        chosen = []
        for status in self.statuses:
            if start <= status.step < start + steps and status.agent_id in roster.members:
                fields = {name: getattr(status, name) for name in status.get_fields_and_field_types()}
                chosen.append(SimpleNamespace(**{**fields, "step": status.step - start,
                                                 "agent_id": roster.index(status.agent_id)}))
        return chosen

    def write(self, output: Path) -> Path:
        """team_changes.json (TeamRun.summary: announcements, per-stretch figures, overall) and team_trajectory.npz
        (x_<p>, u_<p>, team_<p> of every piece p of the run, split at every change step) beside `output`."""
        scenario = self.course.scenario
        start = 0
        for stretch, piece, x, u in self.pieces:
            stretch.pieces.append(result_from_records(piece, x, u, self._statuses(stretch.roster, start, u.shape[0])))
            start += u.shape[0]
        summary = {**self.run.summary(), "scenario": scenario.name, "source": scenario.source}
        path = Path(output).with_name("team_changes.json")
        path.write_text(json.dumps(summary, indent=1))
        pieces = [(stretch, piece) for stretch in self.run.stretches for piece in stretch.pieces]
        np.savez_compressed(path.with_name("team_trajectory.npz"),
                            **{f"{key}_{p}": value for p, (stretch, piece) in enumerate(pieces)
                               for key, value in (("x", piece.x), ("u", piece.u),
                                                  ("team", np.asarray(stretch.roster.members)))})
        return path
