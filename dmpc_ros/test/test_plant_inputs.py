"""The plant's own guard (sim/plant_inputs.py): whatever arrives on the control topics, what the plant applies is
finite, inside every U_i and within the rate limit; an input outside is refused, counted per agent and reason and
never applied; a stale input is replaced by the safe input (zero, hold or the terminal law, clamped) and counted;
the heartbeat watch says when the team is gone."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PACKAGE_DIR, REPO_DIR
from dmpc_ros.models.linear import PolytopicConstraint, Subsystem
from dmpc_ros.scenarios import load_scenario
from dmpc_ros.sim.plant_inputs import REFUSALS, Heartbeat, InputRules, PlantInputs, TerminalLaw

PLANTS = {name: load_scenario(name).plant() for name in ("mass_spring", "formation", "water_tanks")}

REASON = {"outside": "outside", "nan": "not_finite", "size": "size"}
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.floats(-2.0, 2.0), st.floats(-1e-3, 1e-3))


def inside(guard, u: np.ndarray, tolerance: float = 1e-9) -> bool:
    H, h = guard.rows(None)
    return bool(np.all(np.isfinite(u)) and np.all(H @ u <= h + tolerance * (1 + np.max(np.abs(h)))))


def box_subsystem(lower: np.ndarray, upper: np.ndarray) -> Subsystem:
    m = lower.size
    H = np.vstack([np.eye(m), -np.eye(m)])
    return Subsystem("box", 1, m, PolytopicConstraint(np.zeros((0, 1)), np.zeros(0)),
                     PolytopicConstraint(H, np.concatenate([upper, -lower])))


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(sorted(PLANTS)), offers=st.lists(
    st.tuples(st.integers(0, 3), st.lists(values, min_size=0, max_size=3)), max_size=30))
def test_whatever_is_offered_the_applied_input_is_finite_and_inside_every_input_set(name, offers) -> None:
    plant = PLANTS[name]
    inputs = PlantInputs(plant.subsystems)
    refused = 0
    for agent, raw in offers:
        agent %= plant.num_agents
        before = None if inputs.held[agent] is None else inputs.held[agent].copy()
        reason = inputs.offer(agent, raw)
        if reason is None:
            np.testing.assert_array_equal(inputs.held[agent], np.asarray(raw, float))   # taken as sent …
        else:
            refused += 1
            assert (inputs.held[agent] is None and before is None) or np.array_equal(inputs.held[agent], before)
            assert f"of agent {agent} refused" in reason
        u = inputs.apply()                                                               # … applied inside U_i
        assert all(inside(g, u[plant.input_slice(i)], 0.0) for i, g in enumerate(inputs.guards))
    assert inputs.refused == refused == inputs.refusals.sum()


@settings(max_examples=150, deadline=None)
@given(data=st.data(), m=st.integers(1, 3), rate=st.sampled_from([0.0, 0.01, 0.3, 2.0]),
       stale=st.sampled_from([0.0, 1.0, 2.5]), safe=st.sampled_from(["zero", "hold"]))
def test_random_limits_inputs_and_rates_applied_input_inside_the_box_and_the_rate_limit(data, m, rate, stale,
                                                                                        safe) -> None:
    """For random box limits (zero not always inside), offers (in, out, malformed) and rate limits: the applied
    input is inside U and moves at most `rate` per step; what is out of U is refused and counted; a subsystem
    silent for more than `stale` steps (from its last input or the start) gets its safe input (rate-limited towards
    it)."""
    lower = np.array(data.draw(st.lists(st.floats(-5, 1), min_size=m, max_size=m)))
    upper = lower + np.array(data.draw(st.lists(st.floats(0.0, 5), min_size=m, max_size=m)))
    inputs = PlantInputs([box_subsystem(lower, upper)], InputRules(rate, stale, safe))
    expected_refusals = np.zeros(len(REFUSALS), int)
    previous = inputs.inputs()
    last_accepted, accepted = 0, None
    for k in range(data.draw(st.integers(1, 25))):
        kind = data.draw(st.sampled_from(["inside", "outside", "nan", "size", "silent"]))
        if kind == "inside":
            u = lower + (upper - lower) * np.array(data.draw(st.lists(st.floats(0, 1), min_size=m, max_size=m)))
        elif kind == "outside":
            u = upper.copy()
            u[data.draw(st.integers(0, m - 1))] += data.draw(st.floats(1e-3, 1e6))
        elif kind == "nan":
            u = np.full(m, np.nan)
        else:
            u = np.zeros(m + 1)
        if kind != "silent":
            reason = inputs.offer(0, u, now=k)
            assert (reason is None) == (kind == "inside"), (kind, reason)
            if kind == "inside":
                last_accepted, accepted = k, u
            else:
                expected_refusals[REFUSALS.index(REASON[kind])] += 1
        applied = inputs.apply(now=k)
        assert np.all(applied >= lower) and np.all(applied <= upper)
        if rate > 0:
            assert np.max(np.abs(applied - previous)) <= rate * (1 + 1e-12)
        is_stale = stale > 0 and k - last_accepted > stale
        assert inputs.stale[0] == is_stale
        if not is_stale and accepted is not None and rate == 0:
            np.testing.assert_array_equal(applied, accepted)   # a fresh valid input is applied exactly
        if is_stale and rate == 0:
            target = np.clip(np.zeros(m), lower, upper) if safe == "zero" or accepted is None else accepted
            np.testing.assert_allclose(applied, target)
        previous = applied
    np.testing.assert_array_equal(inputs.refusals[0], expected_refusals)


def test_a_forged_50_newton_input_is_refused_and_counted_by_reason() -> None:
    inputs = PlantInputs(PLANTS["mass_spring"].subsystems)
    assert inputs.offer(1, [0.5]) is None
    reason = inputs.offer(1, [50.0])
    assert reason == "input [50.] of agent 1 refused: outside its input set by 49"
    assert inputs.offer(2, [1.0 + 1e-9]) is None             # within the agents' own clean-up tolerance …
    np.testing.assert_array_equal(inputs.apply(), [0.0, 0.5, 1.0, 0.0])   # … and clamped onto U
    assert inputs.refused == 1 and inputs.counts()["refused"]["outside"] == [0, 1, 0, 0]
    assert inputs.counts()["clamped_steps"] == [0, 0, 1, 0]


@pytest.mark.parametrize("raw, why, reason", [([0.1, 0.2], "2 values (expected 1)", "size"),
                                              ([float("nan")], "not finite", "not_finite")])
def test_malformed_inputs_name_what_is_wrong(raw, why, reason) -> None:
    inputs = PlantInputs(PLANTS["mass_spring"].subsystems)
    assert inputs.offer(0, raw).endswith(why)
    assert inputs.counts()["refused"][reason] == [1, 0, 0, 0]


def test_a_killed_agent_s_input_gives_way_to_the_terminal_law_after_the_timeout() -> None:
    """The agent's last input is held for `stale_periods` steps, then the terminal law ū + K (x − x̄) (clamped)
    is applied and the steps are counted; the warning notes come once per episode."""
    scenario = load_scenario("mass_spring")
    plant, design = scenario.plant(), scenario.design()
    law = TerminalLaw.of(design, scenario.controller.Q, scenario.controller.R)
    np.testing.assert_allclose(law.gain, design.terminal_gain())   # the gain the agents' plans end with
    inputs = PlantInputs(plant.subsystems, InputRules(stale_periods=3, safe_input="terminal_law"), law)
    x, disturbance = scenario.initial_state.copy(), scenario.plant_disturbance()
    for k in range(8):
        for i in range(plant.num_agents):
            if i != 1 or k < 2:   # agent 1 dies after step 1
                assert inputs.offer(i, [0.9], now=k) is None
        u = inputs.apply(x, now=k, step=k)
        if k <= 4:
            assert u[1] == 0.9 and not inputs.stale[1]
        else:
            expected = np.clip(law.input(x, k)[1], -1, 1)
            assert inputs.stale[1] and u[1] == pytest.approx(expected)
        if k == 5:
            assert inputs.notes == [(1, "agent 1's input is 4.0 sample periods old (limit 3): its safe input "
                                        "(terminal_law) is applied")]
        elif k > 5:
            assert inputs.notes == []
        x = disturbance.step(plant, x, u, k)
    assert inputs.counts()["safe_input_steps"] == [0, 3, 0, 0]


SHIPPED = sorted(path.stem for path in (PACKAGE_DIR / "config").glob("*.yaml")) + \
    sorted(str(path) for path in (REPO_DIR / "examples").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_the_default_safe_input_the_terminal_law_builds_for_every_shipped_scenario(name) -> None:
    """The plant builds it at configure (safe_input's default): linear, robust (tightened), nonlinear, explicit."""
    scenario = load_scenario(name)
    law = TerminalLaw.of(scenario.design(with_laws=False), scenario.controller.Q, scenario.controller.R)
    assert law.input(scenario.initial_state, 0).shape == (scenario.plant().n_u,)


def test_rules_are_checked_with_one_line_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^rate_limit: -1 is not allowed: must be a finite number ≥ 0"):
        InputRules(rate_limit=-1)
    with pytest.raises(ValueError, match=r"^safe_input: 'brake' is not allowed: must be one of zero, hold"):
        InputRules(safe_input="brake")
    with pytest.raises(ValueError, match="needs the design's terminal law"):
        PlantInputs(PLANTS["mass_spring"].subsystems, InputRules(safe_input="terminal_law"))


def test_the_heartbeat_watch_is_armed_by_the_first_beat_and_forgives_its_own_stalls() -> None:
    watch = Heartbeat(3.0)
    assert watch.silence(100.0) is None          # no beat yet (a plant run by hand): never expires
    watch.beat(100.0)
    assert watch.silence(102.0) is None and watch.silence(103.1) == pytest.approx(3.1)
    stalled = Heartbeat(3.0)
    stalled.beat(0.0)
    stalled.silence(0.1)
    assert stalled.silence(10.0) is None         # the watcher itself was stalled 9.9 s: measure again
    assert stalled.silence(11.0) is None and stalled.silence(11.6) == pytest.approx(3.1)
    assert Heartbeat(0.0).silence(1e9) is None   # 0: off


def test_a_subsystem_that_never_sent_an_input_gets_its_safe_input_after_the_timeout_from_the_start() -> None:
    inputs = PlantInputs(PLANTS["mass_spring"].subsystems, InputRules(stale_periods=2, safe_input="zero"))
    inputs.start(100.0)   # the plant's activation [sample periods]
    for now in (100.0, 101.0, 102.0):
        inputs.apply(now=now)
        assert not inputs.stale.any()
    inputs.offer(3, [0.5], now=102.2)
    inputs.apply(now=102.5)
    assert inputs.stale.tolist() == [True, True, True, False]
    assert inputs.notes[0] == (0, "agent 0 has sent no input for 2.5 sample periods (limit 2): its safe input (zero) "
                                  "is applied")


def test_a_rate_limit_ramps_the_input_and_says_so_once_per_episode() -> None:
    inputs = PlantInputs(PLANTS["mass_spring"].subsystems, InputRules(rate_limit=0.2))
    inputs.offer(0, [0.5])
    ramp = [inputs.apply()[0] for _ in range(4)]
    np.testing.assert_allclose(ramp, [0.2, 0.4, 0.5, 0.5])
    assert inputs.rate_limited.tolist() == [2, 0, 0, 0] and inputs.notes == []
    inputs.offer(0, [-0.5])
    inputs.apply()
    assert inputs.notes == [(0, "agent 0's input is rate-limited (|Δu| ≤ 0.2 per step)")]


@settings(max_examples=120, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(PLANTS)))
def test_a_late_input_is_replaced_by_the_agents_shifted_plan_once_clamped_and_counted(data, name) -> None:
    """Real time: an input that names its step may bring the agent's fallback for the next step (NextStepLaw). When
    that next input has not come by the step, the fallback's u = v + K (x − z) is applied instead of the held input,
    projected into U_i; when it has come, or the fallback is for another step, the held input stands. A fallback of
    the wrong size or not finite is dropped and counted, never applied."""
    from dmpc_ros.sim.plant_inputs import NextStepLaw

    plant = PLANTS[name]
    inputs = PlantInputs(plant.subsystems)
    i = data.draw(st.integers(0, plant.num_agents - 1))
    n_u, n_x = inputs.guards[i].size, plant.subsystems[i].n_x
    floats = st.floats(-3.0, 3.0)
    arrays = {key: np.array(data.draw(st.lists(floats, min_size=size, max_size=size)))
              for key, size in (("u", n_u), ("v", n_u), ("z", n_x), ("x", plant.n_x), ("K", n_u * n_x))}
    u_held = inputs.guards[i].nearest(arrays["u"])
    law_step, late = data.draw(st.sampled_from([(1, True), (1, False), (2, True)]))
    law = NextStepLaw(law_step, arrays["v"], arrays["z"], arrays["K"].reshape(n_u, n_x))
    assert inputs.offer(i, u_held, None, 0.0, step=0, law=law) is None
    if not late:
        assert inputs.offer(i, u_held, None, 0.5, step=1) is None                    # step 1's input came
    u = inputs.apply(arrays["x"], 1.0, step=1)[plant.input_slice(i)]
    used = late and law_step == 1
    x_i = arrays["x"][inputs.state_slices[i]]
    wanted = arrays["v"] + law.gain @ (x_i - arrays["z"]) if used else u_held
    H, h = inputs.guards[i].rows(x_i)
    expected = wanted if np.max(H @ wanted - h, initial=0.0) <= 0 else inputs.guards[i].project(wanted, H, h)
    np.testing.assert_allclose(u, expected, atol=1e-9)
    assert inside(inputs.guards[i], u) and inputs.plan_fallback_steps[i] == int(used)
    bad = NextStepLaw(2, arrays["v"][:-1] if n_u > 1 else np.array([np.nan]), arrays["z"], law.gain)
    assert inputs.offer(i, u_held, None, 1.5, step=1, law=bad) is None                  # the input stands …
    inputs.apply(arrays["x"], 2.0, step=2)
    assert inputs.bad_fallbacks[i] == 1 and inputs.plan_fallback_steps[i] == int(used)   # … its fallback does not
    assert any("dropped" in note for _, note in inputs.notes)
