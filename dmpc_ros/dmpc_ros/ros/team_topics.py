"""The team topics of plug and play over ROS: proposals and announcements from the head (the plant node), votes
from the members (agent nodes), and their conversion to and from the sans-IO objects (coordination/team_change.py,
team_protocol.py).

QoS: RELIABLE + TRANSIENT_LOCAL, keep-last 100 (scenarios/team_changes.MAX_CHANGES) on all three topics: every
vote and verdict must arrive, and a node that starts later (a joiner) replays the run's proposals and
announcements to follow the course of the team up to its own change (team_course.py).
"""
from __future__ import annotations

import numpy as np
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from dmpc_ros_msgs.msg import TeamAnnouncement, TeamProposal, TeamVote

from ..coordination.team_change import Announcement, Roster, TeamChange, Violation
from ..coordination.team_protocol import Vote
from ..scenarios.team_changes import MAX_CHANGES

PROPOSAL_TOPIC, VOTE_TOPIC, ANNOUNCEMENT_TOPIC = "team/proposal", "team/vote", "team/announcement"
TEAM_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=MAX_CHANGES, reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def proposal_message(change: TeamChange, roster: Roster, x: np.ndarray, fixed: np.ndarray) -> TeamProposal:
    """The head's proposal of `change` on the team `roster` in state x with the shifted final plans `fixed`."""
    return TeamProposal(step=change.step, kind=change.kind, member=change.member, members=list(roster.members),
                        state=[float(v) for v in x], inputs=[float(v) for v in np.ravel(fixed)],
                        input_dim=int(fixed.shape[1]))


def proposal_basis(message: TeamProposal) -> tuple[Roster, np.ndarray, np.ndarray]:
    """(roster, x, shifted final plans N−1 × m) of a proposal."""
    fixed = np.asarray(message.inputs, float)
    return (Roster(tuple(int(m) for m in message.members)), np.asarray(message.state, float),
            fixed.reshape(-1, max(int(message.input_dim), 1)))


def vote_message(vote: Vote) -> TeamVote:
    message = TeamVote(step=vote.step, member=vote.member, voter=vote.voter, accepted=vote.accepted,
                       violation_partner=-1)
    v = vote.violation
    if v is not None:
        message.violation_agent, message.violation_step = v.agent, v.step
        message.violation_row, message.violation_amount = v.constraint, float(v.amount)
        message.violation_partner = -1 if v.partner is None else v.partner
    return message


def vote_of(message: TeamVote) -> Vote:
    violation = None if message.accepted else Violation(
        int(message.violation_agent), int(message.violation_step), message.violation_row,
        float(message.violation_amount), None if message.violation_partner < 0 else int(message.violation_partner))
    return Vote(int(message.step), int(message.member), int(message.voter), violation)


def announcement_message(a: Announcement) -> TeamAnnouncement:
    order = list(a.members)
    return TeamAnnouncement(step=a.step, kind=a.kind, member=a.member, accepted=a.accepted, reason=a.reason,
                            members=order, edges=[int(v) for edge in a.edges for v in edge],
                            predecessor_counts=[len(a.predecessors.get(m, ())) for m in order],
                            predecessors=[int(p) for m in order for p in a.predecessors.get(m, ())])


def announcement_of(message: TeamAnnouncement) -> Announcement:
    members = tuple(int(m) for m in message.members)
    flat, edges = list(message.edges), []
    for e in range(0, len(flat) - 1, 2):
        edges.append((int(flat[e]), int(flat[e + 1])))
    predecessors, at = {}, 0
    for member, count in zip(members, message.predecessor_counts):
        predecessors[member] = tuple(int(p) for p in message.predecessors[at:at + count])
        at += count
    return Announcement(int(message.step), message.kind, int(message.member), bool(message.accepted), message.reason,
                        members, tuple(edges), predecessors)
