"""An agent node's part in plug and play over ROS: it follows the team's course (scenarios/team_course.py) from the
team topics, votes on its own rows, and rebuilds its controller at every change step.

The node (ros/agent_node.py) owns one `TeamMember` when its scenario has `team_changes:`. Every node of the run,
members, joiners not yet in and members that left alike, follows the same course: for each scheduled change in
order it takes the head's proposal (the first of a change step opens the step from the state and shifted plans the
proposal carries), re-forms the team (`Boundary.propose`), votes if it is a member of the re-formed team, and takes
the announcement (`Boundary.settle`); after a step's last change it closes the step (`TeamCourse.close`) and, if it
is in the team, builds the next stretch's controller (`AgentNode._build` with the stretch scenario, its agent index
and the stretch's first step) seeded with the candidate, as `dmpc sim` does. Messages of that step or later (the
plant's state, faster neighbours' plans) are held until then and replayed. Proposals and announcements are
transient-local: a node that starts later replays the course.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from dmpc_ros_msgs.msg import TeamAnnouncement, TeamProposal, TeamVote

from ..coordination.team_change import Announcement
from ..scenarios.schema import Scenario
from ..scenarios.team_course import Boundary, Proposed, TeamCourse
from .team_topics import (ANNOUNCEMENT_TOPIC, PROPOSAL_TOPIC, TEAM_QOS, VOTE_TOPIC, announcement_of, proposal_basis,
                          vote_message)


@dataclass(frozen=True)
class Wire:
    """How a node's agent (agent indices, steps of its stretch) meets the messages (persistent ids, steps of the
    run): `members[i]` is agent i's id (None: ids are indices), `offset` the stretch's first step."""

    offset: int = 0
    members: tuple[int, ...] | None = None

    def id_of(self, index: int) -> int:
        return index if self.members is None else self.members[index]

    def index_of(self, member: int) -> int | None:
        if self.members is None:
            return member
        return self.members.index(member) if member in self.members else None

    def inward(self, plan):
        """A received plan in the agent's numbering (None: a plan of an earlier stretch or of a non-member)."""
        if self.members is None and not self.offset:
            return plan
        index = self.index_of(plan.agent)
        if index is None or plan.step < self.offset:
            return None
        return replace(plan, agent=index, step=plan.step - self.offset)

    def outward(self, plan):
        """The agent's plan in the messages' numbering."""
        if self.members is None and not self.offset:
            return plan
        return replace(plan, agent=self.id_of(plan.agent), step=plan.step + self.offset)


class TeamMember:
    """The team course of one agent node (its `_build(scenario, index)` and `_retire()` make and drop the
    controller)."""

    def __init__(self, node, scenario: Scenario, member: int) -> None:
        self.node, self.member = node, member
        self.course = TeamCourse(scenario)
        self.schedule = list(scenario.team_changes)
        self.next = 0   # index into the schedule of the change not yet settled
        self.piece = self.course.piece()
        self.boundary: Boundary | None = None
        self.proposed: Proposed | None = None
        self.proposals: dict[tuple[int, int], TeamProposal] = {}
        self.announcements: dict[tuple[int, int], Announcement] = {}
        self.held: list[tuple[Callable, object]] = []
        self.votes = node.create_publisher(TeamVote, VOTE_TOPIC, TEAM_QOS)
        self.inputs = [node.create_subscription(TeamProposal, PROPOSAL_TOPIC, self._on_proposal, TEAM_QOS),
                       node.create_subscription(TeamAnnouncement, ANNOUNCEMENT_TOPIC, self._on_announcement, TEAM_QOS)]
        self.log = node.get_logger()

    def start(self) -> None:
        """At configure: the controller of the first stretch if this node is in the initial team."""
        self._enter()

    def holds(self, step: int, deliver: Callable, message) -> bool:
        """Whether a message of `step` waits for the change step to be settled (then it is replayed to `deliver`)."""
        if step < self.course.end or self.course.end >= self.course.total:
            return False
        self.held.append((deliver, message))
        return True

    def release(self) -> None:
        for handle in self.inputs:
            self.node.destroy_subscription(handle)
        self.node.destroy_publisher(self.votes)
        self.inputs = []

    def _on_proposal(self, message: TeamProposal) -> None:
        self.proposals.setdefault((int(message.step), int(message.member)), message)
        self._advance()

    def _on_announcement(self, message: TeamAnnouncement) -> None:
        self.announcements.setdefault((int(message.step), int(message.member)), announcement_of(message))
        self._advance()

    def _advance(self) -> None:
        """Every change whose proposal or announcement is in, in the schedule's order."""
        while self.next < len(self.schedule):
            change = self.schedule[self.next]
            key = (change.step, change.member)
            if self.proposed is None:
                if key not in self.proposals:
                    return
                if self.boundary is None:
                    _, x, fixed = proposal_basis(self.proposals[key])
                    self.boundary = self.course.open(self.piece, x, fixed)
                self.proposed = self.boundary.propose(change)
                team = self.proposed.team
                if team is not None and self.member in team.roster.members:
                    self.votes.publish(vote_message(self.boundary.vote(self.proposed, self.member)))
            if key not in self.announcements:
                return
            announcement = self.announcements[key]
            self.boundary.settle(self.proposed, announcement)
            self.log.info(announcement.line(self.course.scenario.family.member_noun))
            self.proposed, self.next = None, self.next + 1
            if self.next == len(self.schedule) or self.schedule[self.next].step != self.boundary.step:
                self.course.close(self.boundary)
                self.boundary, self.piece = None, self.course.piece()
                self._enter()

    def _enter(self) -> None:
        """The stretch that starts at course.start: this member's controller, or none if it is not in the team;
        then the held messages of the stretch."""
        roster, course, node = self.course.roster, self.course, self.node
        node._retire()
        if self.member in roster.members:
            node.wire = Wire(course.start, roster.members)
            node._build(self.piece, roster.index(self.member))
            if course.warm is not None:   # seeded with the candidate as `dmpc sim` seeds its agents
                system, x0 = node.design.system, course.x
                agents = range(system.num_agents)
                if not node.agent.seed({i: course.warm[:, system.input_slice(i)] for i in agents},
                                       {i: x0[system.state_slice(i)] for i in agents}):
                    raise ValueError(f"parameter algorithm: {node.algorithm} is not allowed with team_changes: its "
                                     "agents cannot start from a candidate")
            if node._activated:   # active at once if the node is (else at its activation)
                node._act(node.negotiator.activate(node._now()))
        held, self.held = self.held, []
        for deliver, message in held:
            deliver(message)
