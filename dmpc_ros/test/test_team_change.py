"""Plug-and-play (issue 28.5): the team_changes section validated at load, the shared rules of a change
(coordination/team_change.py: roster, coupling graph, candidate, acceptance test) and the in-process driver
(scenarios/team_run.py): a vehicle joins at the tail, another leaves the middle, an infeasible joiner is refused,
a robot joins a formation; a property test over random changes (recursive feasibility through the change)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dmpc_ros.api import simulate_team
from dmpc_ros.coordination.team_change import (JOIN, LEAVE, Roster, TeamChange, Violation, coupling_graph,
                                               first_violation)
from dmpc_ros.coordination.team_protocol import ChangeTally, Vote
from dmpc_ros.scenarios import ScenarioError, parse_scenario

PLATOON = {
    "name": "plug",
    "model": {"type": "platoon", "sample_time": 0.2, "coupling_tolerance": 1e-9,
              "vehicles": {"count": 3, "time_constant": [0.3, 0.5, 0.4], "acceleration_min": -5.0,
                           "acceleration_max": 2.5, "jerk_limit": 4.0, "speed_max": 35.0, "min_gap": 2.0,
                           "standstill_gap": 5.0, "time_headway": 0.6},
              "speed_profile": [[0.0, 20.0], [1.0, 20.0], [2.0, 18.0]]},
    "controller": {"algorithm": "gauss_seidel", "horizon": 6, "max_iterations": 8, "spacing_weight": 20.0,
                   "speed_weight": 1.0, "acceleration_weight": 0.5, "input_weight": 0.5},
    "simulation": {"steps": 8},
}
DESIRED_GAP = 5.0 + 0.6 * 20.0   # r + h v at 20 m/s [m]


def platoon(changes: list, **simulation) -> object:
    data = copy.deepcopy(PLATOON)
    data["simulation"].update(simulation)
    if changes:
        data["team_changes"] = changes
    return parse_scenario(data)


@pytest.mark.parametrize("changes, message", [
    ([{"step": 3, "leave": 0}], "team_changes[0].leave: 0 is not allowed: the leader cannot leave"),
    ([{"step": 3, "leave": 7}], "team_changes[0].leave: 7 is not allowed: must be the id of a member"),
    ([{"step": 8, "leave": 1}], "team_changes[0].step"),
    ([{"step": 3, "leave": 1, "join": {}}], "give exactly one of join, leave"),
    ([{"step": 3, "join": {"initial_state": [1.0, 20.0, 0.0]}}], "team_changes[0].join.initial_state[0]"),
    ([{"step": 3, "join": {"initial_state": [17.0, 20.0]}}], "team_changes[0].join.initial_state: [17.0, 20.0]"),
    ([{"step": 3, "join": {"mass": 2}}], "team_changes[0].join.mass: unknown field"),
    ([{"step": 4, "leave": 1}, {"step": 3, "leave": 2}], "team_changes[1].step"),
    ([{"step": 3, "leave": 1}, {"step": 4, "leave": 2}], "a team keeps at least 2 members"),
    ("later", "team_changes: 'later' is not allowed"),
])
def test_team_changes_are_validated_at_load_in_one_line(changes, message) -> None:
    with pytest.raises(ScenarioError) as error:
        platoon(changes)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_team_changes_rule_out_what_is_built_for_one_team() -> None:
    with pytest.raises(ScenarioError, match="team_changes: not allowed with simulation disturbances"):
        platoon([{"step": 3, "leave": 1}], disturbance_bound={"v": 0.01})
    data = {"name": "f", "model": {"type": "formation", "sample_time": 0.2, "centre": "consensus",
                                   "robots": {"count": 3, "shape": [[1, 0], [0, 1], [-1, 0]], "graph": "complete"}},
            "controller": {"algorithm": "jacobi", "horizon": 5},
            "simulation": {"steps": 6, "initial_state": [[1, 0, 0, 0], [0, 1, 0, 0], [-1, 0, 0, 0]]},
            "team_changes": [{"step": 2, "join": {"shape": [0, -1], "initial_state": [0, -1, 0, 0]}}]}
    with pytest.raises(ScenarioError, match=r"team_changes\[0\].join: not allowed with model.centre consensus"):
        parse_scenario(data)


def test_a_scheme_whose_agents_cannot_start_from_the_candidate_is_named() -> None:
    scenario = platoon([{"step": 2, "leave": 1}], steps=3)
    scenario = scenario.with_overrides(algorithm="admm")
    with pytest.raises(ScenarioError, match=r"^team_changes: controller.algorithm admm: its agents cannot start"):
        simulate_team(scenario)


def test_roster_and_predecessor_links_after_a_leave() -> None:
    scenario = platoon([{"step": 3, "join": {"initial_state": [DESIRED_GAP, 20.0, 0.0]}}, {"step": 5, "leave": 1}])
    join, leave = scenario.team_changes
    assert (join.kind, join.member, leave.kind, leave.member) == (JOIN, 3, LEAVE, 1)
    roster = Roster.initial(3).after(join).after(leave)
    assert roster.members == (0, 2, 3)
    system = scenario.model.discrete(0.2)
    edges, predecessors = coupling_graph(system, Roster((0, 2, 9)))
    assert predecessors == {0: (), 2: (0,), 9: (2,)} and edges == ((0, 2), (2, 9))


def test_a_vehicle_joins_at_the_tail_and_another_leaves_the_middle() -> None:
    """Both applied at their step boundaries, from feasible candidates: no repair at the restarts, no infeasible
    problem, no violation; the leaver's follower closes up to the leaver's predecessor at the sum of both gaps."""
    scenario = platoon([{"step": 2, "join": {"initial_state": [DESIRED_GAP, 20.0, 0.0]}}, {"step": 5, "leave": 1}])
    run = simulate_team(scenario)
    assert [(a.kind, a.member, a.accepted) for a in run.announcements] == [(JOIN, 3, True), (LEAVE, 1, True)]
    assert run.announcements[1].members == (0, 2, 3)
    assert run.announcements[1].predecessors == {0: (), 2: (0,), 3: (2,)}
    before, after = run.stretches[1].trajectory()[0][-1], run.stretches[2].trajectory()[0][0]
    assert after[2] == pytest.approx(before[2] + before[5])   # e_2 ← e_1 + e_2 (vehicles are points)
    summary = run.summary()
    for stretch in summary["stretches"]:
        assert stretch["infeasible_problems"] == 0 and stretch["failed_steps"] == 0
        assert stretch["max_constraint_violation"] < 1e-9
    assert [s["first_step_fallbacks"] for s in summary["stretches"][1:]] == [0, 0]
    assert summary["stretches"][2]["string_stability_from"] == 1
    assert summary["overall"]["min_gap"] >= 2.0


def test_an_infeasible_joiner_is_refused_with_the_reason_and_the_team_runs_on() -> None:
    scenario = platoon([{"step": 3, "join": {"initial_state": [2.1, 26.0, 0.0]}}])
    run = simulate_team(scenario)
    (announcement,) = run.announcements
    assert not announcement.accepted and announcement.members == (0, 1, 2)
    assert announcement.reason.startswith("vehicle 3 join at step 3: the shifted candidate violates e ≥ 2 (")
    assert "of vehicle 3 at prediction step 1" in announcement.reason and "\n" not in announcement.reason
    assert len(run.stretches) == 1 and run.stretches[0].steps == 8   # one team throughout, restarted once
    assert run.summary()["stretches"][0]["first_step_fallbacks"] == 0


def test_the_acceptance_test_names_the_first_violated_row() -> None:
    system = platoon([]).model.discrete(0.2)
    states = np.tile(np.r_[20.0, 0.0, 17.0, 20.0, 0.0, 17.0, 20.0, 0.0], (3, 1))
    inputs = np.zeros((2, 3))
    assert first_violation(system, states, inputs) is None
    states[2, 5] = 1.5   # e_2 below the minimum gap at prediction step 2
    inputs[0, 0] = 3.0   # u_0 above its limit at step 0, and beyond the jerk row u − a ≤ τ j = 1.2
    found = first_violation(system, states, inputs)
    assert (found.agent, found.step, found.constraint) == (0, 0, "−a + u ≤ 1.2 (3)")
    states[0, 1] = 2.0   # a_0 = 2: the jerk row holds, U_0 does not
    found = first_violation(system, states, inputs)
    assert (found.agent, found.step, found.constraint) == (0, 0, "u ≤ 2.5 (3)")
    inputs[0, 0], states[0, 1] = 0.0, 0.0
    found = first_violation(system, states, inputs)
    assert (found.agent, found.step, found.constraint) == (2, 2, "e ≥ 2 (1.5)")


def test_a_robot_joins_a_running_formation() -> None:
    data = {"name": "f", "model": {"type": "formation", "sample_time": 0.2, "centre": "known",
                                   "robots": {"count": 3, "shape": [[1, 0], [-0.5, 0.87], [-0.5, -0.87]],
                                              "graph": "complete", "min_distance": 0.6}},
            "controller": {"algorithm": "jacobi", "horizon": 6, "max_iterations": 8},
            "simulation": {"steps": 8, "initial_state": [[1, 0, 0, 0], [-0.5, 0.87, 0, 0], [-0.5, -0.87, 0, 0]]},
            "team_changes": [{"step": 3, "join": {"shape": [0, 2], "initial_state": [0.2, 2.2, 0, 0]}},
                             {"step": 5, "join": {"shape": [2, 2], "initial_state": [0.8, 2.1, -0.9, 0]}},
                             {"step": 6, "leave": 1},
                             {"step": 7, "join": {"shape": [2, 0], "neighbours": [0, 1],
                                                  "initial_state": [3, 0, 0, 0]}}]}
    run = simulate_team(parse_scenario(data))
    first, second, third, fourth = run.announcements
    assert third.accepted and third.members == (0, 2, 3) and third.edges == ((0, 2), (0, 3), (2, 3))
    assert not fourth.accepted and fourth.reason == ("robot 5 join at step 7: team_changes[3].join.neighbours: [1] "
                                                     "are not in the team [0, 2, 3]")
    assert first.accepted and first.members == (0, 1, 2, 3) and (0, 3) in first.edges
    assert not second.accepted and second.reason.startswith(   # it would run into robot 3
        "robot 4 join at step 5: the shifted candidate violates the distance to robot 4 ≥ 0.6 m (0.516 m) of robot 3 "
        "at prediction step 1"), second.reason
    summary = run.summary()
    assert summary["overall"]["min_distance"] >= 0.6 - 1e-6
    assert summary["stretches"][1]["infeasible_problems"] == 0


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(step=st.integers(2, 4), kind=st.sampled_from([JOIN, LEAVE]), gap=st.floats(2.0, 30.0),
       speed=st.floats(14.0, 26.0), leaver=st.integers(1, 2), drop=st.sampled_from([0.0, 0.2]))
def test_recursive_feasibility_holds_through_random_changes(step, kind, gap, speed, leaver, drop) -> None:
    """Whatever the change, on a lossless or lossy network: applied only from a feasible candidate, after which
    every problem of the re-formed team is feasible and no constraint is violated; refused, the team is unchanged
    and the reason names the member and the step."""
    change = {"step": step, "join": {"initial_state": [gap, speed, 0.0]}} if kind == JOIN else \
        {"step": step, "leave": leaver}
    scenario = platoon([change], steps=step + 3)
    if drop:
        scenario = parse_scenario({**copy.deepcopy(PLATOON), "simulation": {"steps": step + 3},
                                   "network": {"drop_probability": drop, "seed": step}, "team_changes": [change]})
    run = simulate_team(scenario)
    (announcement,) = run.announcements
    event(f"{kind} {'applied' if announcement.accepted else 'refused'}{' on a lossy network' if drop else ''}")
    summary = run.summary()
    if announcement.accepted:
        after = summary["stretches"][-1]
        assert after["infeasible_problems"] == 0 and after["failed_steps"] == 0
        assert after["first_step_fallbacks"] == 0   # the seeded candidate needed no repair
        assert summary["overall"]["max_constraint_violation"] < 1e-8
    else:
        assert kind == JOIN and announcement.members == (0, 1, 2) and len(run.stretches) == 1
        assert announcement.reason.startswith(f"vehicle 3 join at step {step}: ")


def test_team_change_is_a_value() -> None:
    change = TeamChange(3, LEAVE, 1)
    assert Roster((0, 1, 2)).after(change).members == (0, 2)


def test_the_tally_decides_on_every_members_vote_and_a_silent_member_refuses() -> None:
    change = TeamChange(4, JOIN, 3)
    before, after = Roster((0, 1, 2)), Roster((0, 1, 2, 3))
    graphs = {True: ((), {}), False: ((), {})}
    tally = ChangeTally(change, before, after, graphs, deadline=1.0, noun="vehicle")
    assert tally.receive(Vote(4, 3, 0)) is None and tally.receive(Vote(5, 3, 1)) is None   # another step: ignored
    assert tally.receive(Vote(4, 3, 9)) is None   # not in the re-formed team: ignored
    assert tally.tick(0.5) is None
    silent = tally.tick(1.0)
    assert not silent.accepted and silent.members == (0, 1, 2)
    assert silent.reason == "vehicle 3 join at step 4: no vote from vehicle 1, 2, 3 by the deadline"
    tally = ChangeTally(change, before, after, graphs, noun="vehicle")
    for voter in (0, 1, 2):
        assert tally.receive(Vote(4, 3, voter)) is None
    assert tally.receive(Vote(4, 3, 3)).accepted and tally.announcement.members == (0, 1, 2, 3)
    tally = ChangeTally(change, before, after, graphs, noun="vehicle")
    no = tally.receive(Vote(4, 3, 3, Violation(3, 2, "e ≥ 2 (1.5)", 0.5)))
    assert not no.accepted
    assert no.reason == ("vehicle 3 join at step 4: the shifted candidate violates e ≥ 2 (1.5) of "
                         "vehicle 3 at prediction step 2 by 0.5")
    assert tally.receive(Vote(4, 3, 0)) is None   # decided: later votes change nothing


def test_dmpc_sim_reports_the_changes_and_the_figures_through_them(tmp_path, capsys) -> None:
    import json

    import yaml

    from dmpc_ros.cli import main

    data = copy.deepcopy(PLATOON)
    data["simulation"]["steps"] = 6
    data["team_changes"] = [{"step": 2, "join": {"initial_state": [DESIRED_GAP, 20.0, 0.0]}},
                            {"step": 4, "join": {"initial_state": [2.1, 27.0, 0.0]}}]
    path = tmp_path / "plug.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["sim", str(path), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "step 2: vehicle 3 joins — applied; team [0, 1, 2, 3]" in out
    assert ("step 4: vehicle 4 joins — refused: vehicle 4 join at step 4: the shifted candidate violates "
            "e ≥ 2") in out
    summary = json.loads((tmp_path / "out" / "team_changes.json").read_text())
    assert [a["accepted"] for a in summary["announcements"]] == [True, False]
    assert [s["team"] for s in summary["stretches"]] == [[0, 1, 2], [0, 1, 2, 3]]
    assert summary["overall"]["min_gap"] >= 2.0 and "string_stability_ratio" in summary["overall"]


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=6), st.lists(st.floats(-30, 30), max_size=4),
                 st.dictionaries(st.sampled_from(["step", "join", "leave", "shape", "x"]), st.integers(-3, 9),
                                 max_size=2))


@settings(max_examples=40, deadline=None)
@given(family=st.sampled_from(["platoon", "formation"]), entry=st.integers(0, 1),
       key=st.sampled_from(["step", "join", "leave", "initial_state", "time_constant", "shape", "neighbours", "x"]),
       value=JUNK)
def test_junk_in_team_changes_is_one_scenario_error_line(family, entry, key, value) -> None:
    """Any value anywhere in an entry: a valid scenario or one ScenarioError line, never a traceback."""
    if family == "platoon":
        changes = [{"step": 2, "join": {"initial_state": [DESIRED_GAP, 20.0, 0.0]}}, {"step": 4, "leave": 1}]
        data = {**copy.deepcopy(PLATOON), "team_changes": changes}
    else:
        data = {"name": "f", "model": {"type": "formation", "sample_time": 0.2, "centre": "known",
                                       "robots": {"count": 3, "shape": [[1, 0], [0, 1], [-1, 0]], "graph": "complete"}},
                "controller": {"algorithm": "jacobi", "horizon": 5},
                "simulation": {"steps": 6, "initial_state": [[1, 0, 0, 0], [0, 1, 0, 0], [-1, 0, 0, 0]]},
                "team_changes": [{"step": 2, "join": {"shape": [0, -1], "initial_state": [0, -1, 0, 0]}},
                                 {"step": 3, "leave": 0}]}
    target = data["team_changes"][entry]
    if key in ("step", "join", "leave") or "join" not in target:
        target[key] = value
    else:
        target["join"][key] = value
    try:
        parse_scenario(data)
    except ScenarioError as error:
        assert "\n" not in str(error) and str(error).startswith("team_changes")


def test_the_references_run_on_through_a_change_in_a_manoeuvre() -> None:
    """A change while the leader brakes: the re-formed team's reference starts where the old one was (the
    followers' lags keep their state; the joiner's starts at its predecessor's)."""
    scenario = platoon([{"step": 7, "leave": 1}, {"step": 7, "join": {"initial_state": [DESIRED_GAP, 19.0, 0.0]}}],
                       steps=9)
    run = simulate_team(scenario)
    assert [a.accepted for a in run.announcements] == [True, True]
    before, after = (s.scenario.family.reference(s.scenario, s.scenario.prediction_model()).states
                     for s in run.stretches)
    speeds = before[7][[0, 3, 6]]   # v_0, v_1, v_2 of the old team at step 7, mid-braking
    assert speeds[0] < 20.0 and speeds[2] > speeds[0]   # the lags are not at rest
    np.testing.assert_allclose(after[0][[0, 3, 6]], [speeds[0], speeds[2], speeds[2]])   # 0, 2 and the joiner
