"""Plug and play over ROS (issue 28.5): the team topics' messages round-trip the sans-IO objects, the head's tally
gives the in-process verdict whatever order the votes come in, the agent's numbering maps to the messages', and
`dmpc run` of a scenario with team_changes in lock-step (real processes: plant as the head, one agent node per
member and per joiner) announces the same changes and follows the same trajectory as `dmpc sim`, bit for bit."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmpc_ros.api import simulate_team
from dmpc_ros.coordination.plan import Plan
from dmpc_ros.coordination.team_change import JOIN, Announcement, Roster, TeamChange, Violation
from dmpc_ros.coordination.team_protocol import ChangeTally, Vote
from dmpc_ros.ros.team_member import Wire
from dmpc_ros.ros.team_topics import (announcement_message, announcement_of, proposal_basis, proposal_message,
                                      vote_message, vote_of)
from dmpc_ros.scenarios.node_specs import JOINER_LEAD, joiner_starts, node_specs
from dmpc_ros.scenarios.source import load_source

SCENARIO = Path(__file__).parent / "data" / "platoon_plug_short.yaml"
DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


def test_team_messages_round_trip() -> None:
    announcement = Announcement(10, "leave", 2, True, "", (0, 1, 3, 4), ((0, 1), (1, 3), (3, 4)),
                                {0: (), 1: (0,), 3: (1,), 4: (3,)})
    assert announcement_of(announcement_message(announcement)) == announcement
    for violation in (None, Violation(4, 1, "e ≥ 2 (0.77)", 1.23), Violation(2, 3, "≥ 1 m (0.5 m)", 0.5, 1)):
        vote = Vote(16, 5, 4, violation)
        assert vote_of(vote_message(vote)) == vote
    fixed = np.arange(12.0).reshape(4, 3)
    roster, x, back = proposal_basis(proposal_message(TeamChange(4, JOIN, 3), Roster((0, 1, 2)), np.ones(7), fixed))
    assert roster == Roster((0, 1, 2)) and np.array_equal(x, np.ones(7)) and np.array_equal(back, fixed)


def test_the_verdict_does_not_depend_on_the_order_the_votes_arrive_in() -> None:
    change, before, after = TeamChange(5, JOIN, 3), Roster((0, 1, 2)), Roster((0, 1, 2, 3))
    votes = {0: Vote(5, 3, 0), 1: Vote(5, 3, 1, Violation(1, 4, "late row", 0.1)), 2: Vote(5, 3, 2),
             3: Vote(5, 3, 3, Violation(3, 2, "early row", 0.2))}
    verdicts = set()
    for order in itertools.permutations(votes):
        tally = ChangeTally(change, before, after, {True: ((), {}), False: ((), {})})
        for at in range(len(order)):   # the head settles after each arrival: decided once members 0 and 1 voted
            verdict = tally.settle_in_order({v: votes[v] for v in order[:at + 1]})
            assert (verdict is not None) == ({0, 1} <= set(order[:at + 1]) and {0, 1} - set(order[:at]) != set())
        verdicts.add(tally.announcement.reason)
    assert len(verdicts) == 1 and "late row" in verdicts.pop()   # the first no in the team's order, as `dmpc sim`
    silent = ChangeTally(change, before, after, {True: ((), {}), False: ((), {})}, deadline=1.0)
    assert silent.settle_in_order({0: votes[0]}) is None
    assert "no vote from member 1, 2, 3" in silent.settle_in_order({0: votes[0]}, now=2.0).reason


def test_the_wire_maps_indices_and_stretch_steps_to_ids_and_run_steps() -> None:
    plan = Plan(agent=1, step=2, iteration=0, states=np.zeros((3, 1)), inputs=np.zeros((2, 1)), cost=0.0,
                feasible=True, converged=False, final=False)
    wire = Wire(10, (0, 1, 3, 4))
    out = wire.outward(plan)
    assert (out.agent, out.step) == (1, 12) and (wire.outward(Plan(**{**plan.__dict__, "agent": 2})).agent == 3)
    assert wire.inward(out) == plan
    assert wire.inward(Plan(**{**plan.__dict__, "agent": 2})) is None   # left the team
    assert wire.inward(Plan(**{**plan.__dict__, "step": 9})) is None    # an earlier stretch's plan
    assert Wire().inward(plan) is plan and Wire().outward(plan) is plan


def test_every_member_has_a_node_and_the_joiners_start_later() -> None:
    scenario = load_source(str(SCENARIO))
    specs = node_specs(scenario, SCENARIO)
    assert [s.name for s in specs if s.executable == "agent"] == [f"agent_{i}" for i in range(6)]
    manager = next(s for s in specs if s.executable == "lifecycle_manager")
    assert manager.parameters["late_nodes"] == ["/dmpc/agent_4", "/dmpc/agent_5"]
    assert len(manager.parameters["heartbeat_topics"]) == 4   # a joiner's heartbeat is watched once it is up
    assert joiner_starts(scenario) == {"agent_4": 4 - JOINER_LEAD, "agent_5": 16 - JOINER_LEAD}


@pytest.mark.parametrize("flags, expected", [
    (["--mode", "real_time"], "--mode real_time is not allowed with team_changes: must be lock_step"),
    (["--respawn", "agents"], "--respawn agents is not allowed with team_changes: must be none"),
])
def test_what_team_changes_over_ros_do_not_support_is_one_line(flags: list[str], expected: str) -> None:
    run = subprocess.run(DMPC + ["run", str(SCENARIO), *flags], capture_output=True, text=True, timeout=120)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert run.returncode == 2 and len(lines) == 1 and expected in lines[0], lines


@pytest.mark.ros
@pytest.mark.slow
def test_lock_step_team_changes_over_ros_equal_dmpc_sim(tmp_path: Path) -> None:
    # a generous per-iteration deadline: every node re-forms the team at a change step (a second or so of set-up);
    # a neighbour substituted meanwhile would make the run differ from the in-process one
    run = subprocess.run(DMPC + ["run", str(SCENARIO), "--iteration-timeout", "30", "--output", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    simulated = simulate_team(load_source(str(SCENARIO)))
    pieces = [piece for stretch in simulated.stretches for piece in stretch.pieces]
    ros = np.load(tmp_path / "team_trajectory.npz")
    assert len(ros.files) == 3 * len(pieces) == 12   # split at each change step: joined, left, refused
    for p, piece in enumerate(pieces):
        np.testing.assert_allclose(ros[f"x_{p}"], piece.x, atol=1e-6, rtol=0)
        np.testing.assert_allclose(ros[f"u_{p}"], piece.u, atol=1e-6, rtol=0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    team, expected = summary["team_changes"], simulated.summary()
    assert summary["complete"] and team["announcements"] == expected["announcements"]
    assert [a["accepted"] for a in team["announcements"]] == [True, True, False]
    assert team["overall"] == pytest.approx(expected["overall"], abs=1e-9)
    counts = {"infeasible_problems", "fallbacks", "failed_steps", "first_step_fallbacks"}   # from best-effort statuses
    for ours, theirs in zip(team["stretches"], expected["stretches"], strict=True):
        assert {k: v for k, v in ours.items() if k not in counts} == \
            {k: v for k, v in theirs.items() if k not in counts}
        assert all(0 <= ours[k] <= theirs[k] for k in counts)
    assert "refused: vehicle 5 join at step 16: the shifted candidate violates e ≥ 2" in run.stdout
    for member in (0, 4, 5):   # every node, the joiners too, heard the verdicts on the team topic
        assert f"[agent_{member}]" in run.stdout
    assert run.stdout.count("step 10: vehicle 2 leaves — applied") >= 1 + 6   # the plant's and every agent's log
    # the joiners' processes start during the run; the leaver's node, and the refused joiner's, are taken down
    assert "all 5 nodes active; 2 start later" in run.stdout
    assert "dmpc run: starting agent_4 (joins at step 4)" in run.stdout
    assert "dmpc run: starting agent_5 (joins at step 16)" in run.stdout
    for member in (2, 5):
        assert f"/dmpc/agent_{member}: shutdown ok → finalized" in run.stdout


@pytest.mark.ros
@pytest.mark.slow
def test_team_changes_across_three_hosts_equal_dmpc_sim(tmp_path: Path) -> None:
    """The same run split over three network hosts (hosts/: namespaces on a bridge, static peers, multicast
    dropped): the joiners' nodes on a member host start with it and are brought up when they appear."""
    from dmpc_ros.hosts.loss import block_multicast, ensure_iptables
    from dmpc_ros.hosts.sandbox import HostSandbox, unavailable
    from dmpc_ros.hosts.team import split_run
    from dmpc_ros.ros.environment import reserve_domain_id

    reason = unavailable() or ensure_iptables()
    if reason:
        pytest.skip(reason)
    placement = {"h1": "plant,lifecycle_manager,agent_0,agent_1", "h2": "agent_2,agent_3", "h3": "agent_4,agent_5"}
    reservation = reserve_domain_id()
    try:
        with HostSandbox(3) as sandbox:
            block_multicast(sandbox)
            runs = split_run(sandbox, str(SCENARIO), placement, tmp_path / "ros", reservation.domain_id,
                             flags=("--iteration-timeout", "30"), timeout=200)
    finally:
        reservation.release()
    assert all(run.returncode == 0 for run in runs.values()), "\n".join(
        f"== {run.host} exit {run.returncode}\n{run.output[-2500:]}" for run in runs.values())
    simulated = simulate_team(load_source(str(SCENARIO)))
    ros = np.load(tmp_path / "ros" / "team_trajectory.npz")
    for p, piece in enumerate(piece for stretch in simulated.stretches for piece in stretch.pieces):
        np.testing.assert_allclose(ros[f"x_{p}"], piece.x, atol=1e-6, rtol=0)
    team = json.loads((tmp_path / "ros" / "summary.json").read_text())["team_changes"]
    assert team["announcements"] == simulated.summary()["announcements"]
