"""The negotiation rules (coordination/negotiator.py) in milliseconds, without DDS: a real mass_spring agent in a
Negotiator, fed its neighbours' real plans (recorded from a simulated team) in random orders, with losses,
duplicates, delays, overtaking measurements and clock jumps. Checked on every run: no applied input is outside U_i or
NaN; a negotiator never waits forever; no missing or late plan is counted twice; no step is applied twice."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmpc_ros.coordination import StoppingRule
from dmpc_ros.coordination.negotiator import (ApplyInput, DriveRobot, Negotiator, PublishPlan, RobotTiming, StepDone,
                                              StopRobot, Warn, WakeAt)
from dmpc_ros.scenarios import load_scenario
from dmpc_ros.sim.closed_loop import SimulatedTeam

ME, STEPS, TIMEOUT = 1, 3, 0.05


@pytest.fixture(scope="module")
def world():
    """The mass_spring design, a recorded 3-step closed loop (states, every agent's plans) and a factory of fresh
    agents for agent ME."""
    scenario = dataclasses.replace(load_scenario("mass_spring"), steps=STEPS)
    design, plant = scenario.design(), scenario.plant()
    stopping = StoppingRule(scenario.controller.max_iterations, scenario.controller.tolerance)
    agents = design.agents("jacobi", stopping, scenario.controller.solver)
    team = SimulatedTeam(agents, design.condensed(), max_iteration=stopping.max_iterations, steps=STEPS)
    published: list = []
    original = team._handle

    def spy(i, actions):
        actions = list(actions)
        published.extend(a.plan for a in actions if isinstance(a, PublishPlan))
        original(i, actions)

    team._handle = spy
    x, states = scenario.initial_state.copy(), []
    for k in range(STEPS):
        states.append(x.copy())
        team.step(k, x)
        x = plant.step(x, np.concatenate([team.applied[a.agent_id] for a in agents]))

    def fresh():
        return design.agent("jacobi", ME, stopping, scenario.controller.solver)

    return dict(design=design, states=states, plans=published, fresh=fresh, max_iteration=stopping.max_iterations)


def inside_input_set(agent, u: np.ndarray) -> bool:
    H, h = agent.guard.rows(agent.measured_state())
    return bool(np.all(np.isfinite(u)) and np.all(H @ u <= h + 1e-6 * (1 + np.max(np.abs(h)))))


class Driver:
    """Feeds events to one negotiator and checks every action against the rules."""

    def __init__(self, world, step_budget: float | None = None) -> None:
        self.agent = world["fresh"]()
        self.world = world
        n_x = world["design"].system.subsystems[ME].n_x
        self.negotiator = Negotiator(self.agent, world["max_iteration"], STEPS, TIMEOUT, state_dim=n_x,
                                     step_budget=step_budget)
        self.applied: list[int] = []
        self.applied_at: dict[int, float] = {}
        self.measured_at: dict[int, float] = {}
        self.wakes: list[float] = []
        self.counts: dict[str, int] = {}
        self.now = 0.0

    def handle(self, actions) -> None:
        for action in actions:
            if isinstance(action, ApplyInput):
                assert inside_input_set(self.agent, action.input), action
                if action.resent:   # the step's input again, unchanged (the step was measured again)
                    assert self.applied and action.step == self.applied[-1], (self.applied, action.step)
                elif not action.stop:
                    assert not self.applied or action.step > self.applied[-1], (self.applied, action.step)
                    self.applied.append(action.step)
                    self.applied_at[action.step] = self.now
            elif isinstance(action, WakeAt):
                assert math.isfinite(action.time)
                self.wakes.append(action.time)
            elif isinstance(action, StepDone):
                for name, value in action.counts.items():
                    self.counts[name] = self.counts.get(name, 0) + value
            elif isinstance(action, PublishPlan):
                assert action.plan.agent == ME and action.plan.finite

    def measure(self, step: int) -> None:
        x = self.world["states"][step][self.world["design"].system.state_slice(ME)]
        self.measured_at.setdefault(step, self.now)
        self.handle(self.negotiator.measure(step, x, self.now))

    def advance(self, seconds: float) -> None:
        """The clock moves on by `seconds`; the wake-ups the negotiator asked for on the way fire at their times
        (as a driver's timer would)."""
        target = self.now + seconds
        for _ in range(4 * self.world["max_iteration"] + 8):
            wake = self.negotiator.next_wake
            if wake is None or wake > target:
                break
            self.now = max(self.now, wake)
            self.handle(self.negotiator.tick(self.now))
        self.now = target

    def settle(self) -> None:
        """Only the clock from here on (no message comes any more): the started step must be applied within a
        bounded number of wake-ups, each at the time the negotiator asked for."""
        for _ in range(2 * self.world["max_iteration"] + 4):
            if not (self.negotiator.negotiating or self.negotiator._measured is not None):
                return
            wake = self.negotiator.next_wake
            assert wake is not None, "the negotiator waits with nothing armed: it would wait forever"
            self.now = max(self.now, wake)
            self.handle(self.negotiator.tick(self.now))
        pytest.fail("the negotiator did not finish its step on the clock alone")


neighbour_events = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["drop", "deliver", "twice"]),
                                      st.floats(0.0, 3 * TIMEOUT)), min_size=0, max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=neighbour_events, jumps=st.lists(st.floats(-3600.0, 3600.0), max_size=4),
       overtake=st.booleans(), data=st.data(), budget=st.one_of(st.none(), st.floats(0.2 * TIMEOUT, 5 * TIMEOUT)))
def test_random_orders_losses_delays_and_clock_jumps_keep_the_rules(world, events, jumps, overtake, data,
                                                                   budget) -> None:
    driver = Driver(world, budget)
    driver.handle(driver.negotiator.activate(0.0))
    plans = [p for p in world["plans"] if p.agent in driver.agent.required_plans]
    schedule = sorted(((delay + 0.001 * index, plans[index % len(plans)], kind)
                       for index, (_, kind, delay) in enumerate(events)), key=lambda event: event[0]) if plans else []
    jump_at = sorted(data.draw(st.lists(st.integers(0, max(len(schedule), 1)), min_size=len(jumps),
                                        max_size=len(jumps))))
    step, cursor = 0, 0
    driver.measure(0)
    for position, (delay, plan, kind) in enumerate(schedule):
        while cursor < len(jump_at) and jump_at[cursor] == position:   # the clock jumps (NTP, suspend)
            driver.now += jumps[cursor]
            driver.handle(driver.negotiator.tick(driver.now))
            cursor += 1
        driver.advance(delay * 0.1)
        if plan.step > step and step + 1 < STEPS and (overtake or not driver.negotiator.negotiating):
            step += 1   # the next measurement: it overtakes a negotiation still running (real time)
            driver.measure(step)
        if kind != "drop":
            for _ in range(2 if kind == "twice" else 1):
                driver.handle(driver.negotiator.receive(plan, driver.now))
        driver.handle(driver.negotiator.tick(driver.now))
    driver.settle()
    assert driver.applied, "no step was applied"
    assert driver.counts.get("late", 0) <= driver.counts.get("missing", 0)
    if budget is not None and not jumps:   # real time: every step's input is out within its budget
        for step, applied in driver.applied_at.items():
            assert applied - driver.measured_at[step] <= budget + 1e-9, (step, applied, driver.measured_at[step])


def test_a_silent_neighbour_is_replaced_after_the_timeout_and_counted_once_per_iteration(world) -> None:
    driver = Driver(world)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    assert driver.negotiator.negotiating and not driver.applied   # waits for the neighbours' plans 0
    assert driver.wakes == [pytest.approx(TIMEOUT)]
    driver.now = TIMEOUT / 2
    driver.handle(driver.negotiator.tick(driver.now))
    assert driver.negotiator.agent.iteration == 0                  # not before the deadline
    driver.settle()
    iterations = driver.agent.iteration
    neighbours = len(driver.agent.required_plans)
    assert driver.applied == [0]
    assert driver.counts["missing"] == neighbours * iterations     # each needed plan once, at its deadline
    assert driver.now == pytest.approx(iterations * TIMEOUT)       # one timeout per iteration, no more


def test_a_plan_that_comes_after_its_substitute_is_late_once_even_if_delivered_twice(world) -> None:
    driver = Driver(world)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    driver.now = TIMEOUT
    driver.handle(driver.negotiator.tick(driver.now))               # iteration 1 with substitutes
    plan = next(p for p in world["plans"] if p.agent in driver.agent.required_plans and p.step == 0 and
                p.iteration == 0)
    for _ in range(2):
        driver.handle(driver.negotiator.receive(plan, driver.now))
    assert driver.negotiator.counts["late"] == 1


def test_a_new_measurement_overtakes_the_step_and_its_last_plan_goes_out_final(world) -> None:
    driver = Driver(world)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    published = []
    actions = driver.negotiator.measure(1, world["states"][1][world["design"].system.state_slice(ME)], 0.01)
    published = [a.plan for a in actions if isinstance(a, PublishPlan)]
    driver.handle(actions)
    assert published[0].step == 0 and published[0].final                  # tells the neighbours it stopped
    assert driver.applied == [0]                                             # step 0's input went out, once
    done = next(a for a in actions if isinstance(a, StepDone))
    assert done.counts["overtaken"] == 1
    assert driver.negotiator.last_step == 1


def test_a_clock_that_jumps_back_an_hour_does_not_stretch_the_wait(world) -> None:
    driver = Driver(world)
    driver.handle(driver.negotiator.activate(100.0))
    driver.now = 100.0
    driver.measure(0)
    driver.now = 100.0 - 3600.0                                      # the clock is set back
    driver.handle(driver.negotiator.tick(driver.now))
    assert driver.negotiator.next_wake == pytest.approx(driver.now + TIMEOUT)


def test_measurements_that_are_stale_duplicate_or_malformed_start_nothing(world) -> None:
    driver = Driver(world)
    pending = driver.negotiator.measure(0, world["states"][0][world["design"].system.state_slice(ME)], 0.0)
    assert pending == [] and not driver.negotiator.negotiating       # inactive: kept for the activation
    driver.handle(driver.negotiator.activate(0.0))
    assert driver.negotiator.last_step == 0                          # the kept measurement started step 0
    actions = driver.negotiator.measure(0, np.zeros(2), 0.0)          # duplicate
    assert actions == []
    actions = driver.negotiator.measure(1, np.array([np.nan, 0.0]), 0.0)
    assert isinstance(actions[0], Warn) and driver.negotiator.counts["rejected"] == 1
    assert driver.negotiator.measure(STEPS, np.zeros(2), 0.0) == []  # the state after the last step


# -- robot mode ---------------------------------------------------------------------------------------------------
def robot_driver(world, start: float = 1000.0, **timing) -> Driver:
    driver = Driver(world)
    values = dict(sample_time=0.1, start_time=start, state_timeout=0.3, neighbour_timeout=0.3, command_deadline=0.08)
    driver.negotiator.robot = RobotTiming(**{**values, **timing})
    return driver


def test_robot_stale_pose_stops_the_robot_and_skips_the_step(world) -> None:
    driver = robot_driver(world)
    x = world["states"][0][world["design"].system.state_slice(ME)]
    driver.negotiator.pose(x, 999.0)                                  # a second old
    actions = driver.negotiator.activate(1000.0)                      # step 0 is due at once
    assert any(isinstance(a, StopRobot) for a in actions) and driver.negotiator.counts["stale_steps"] == 1
    assert not driver.negotiator.negotiating


def test_robot_with_silent_neighbours_negotiates_but_never_drives(world) -> None:
    driver = robot_driver(world)
    x = world["states"][0][world["design"].system.state_slice(ME)]
    driver.negotiator.pose(x, 1000.0)
    actions = driver.negotiator.activate(1000.0)                       # step 0 starts (no silence check at step 0)
    driver.negotiator.pose(x, 1000.15)
    actions = driver.negotiator.tick(1000.15)                          # step 1: the step-0 negotiation overran
    driver.negotiator.pose(x, 1000.5)
    actions += driver.negotiator.tick(1000.5)                          # step 5: neighbours silent for 0.5 s > 0.3 s
    assert any(isinstance(a, StopRobot) and "silent" in a.reason for a in actions)
    for t in np.arange(1000.5, 1001.0, 0.01):
        driver.negotiator.pose(x, t)
        actions += driver.negotiator.tick(t)
    assert not any(isinstance(a, DriveRobot) for a in actions)


def test_robot_command_deadline_and_the_end_of_the_scenario(world) -> None:
    driver = robot_driver(world)
    x = world["states"][0][world["design"].system.state_slice(ME)]
    driver.negotiator.pose(x, 1000.0)
    driver.negotiator.activate(1000.0)                                # step 0 waits for its neighbours
    actions = driver.negotiator.tick(1000.09)                         # past the 0.08 s command deadline
    misses = sum(a.counts["deadline_misses"] for a in actions if isinstance(a, StepDone))
    assert any(isinstance(a, StopRobot) for a in actions)
    assert misses + driver.negotiator.counts["deadline_misses"] == 1
    assert not any(isinstance(a, DriveRobot) for a in actions)       # the late command never drives
    driver.negotiator.pose(x, 1000.0 + STEPS * 0.1)
    end = driver.negotiator.tick(1000.0 + STEPS * 0.1 + 0.001)
    assert sum(isinstance(a, StopRobot) and "done" in a.reason for a in end) == 1
    assert driver.negotiator.tick(1000.0 + STEPS * 0.1 + 0.5) == []  # once


def test_robot_late_activation_names_the_missed_steps(world) -> None:
    driver = robot_driver(world, start=1000.0)
    actions = driver.negotiator.activate(1000.55)
    assert any(isinstance(a, Warn) and "steps before 5 are missed" in a.text for a in actions)


def test_with_a_step_budget_a_silent_neighbour_costs_one_wait_per_step(world) -> None:
    """Real time: after one timeout the silent neighbours are not waited for again in this step (their last plans,
    shifted, stand in), so the step converges with substitutes at once; the next step's gate waits once more."""
    driver = Driver(world, step_budget=3 * TIMEOUT)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    driver.settle()
    assert driver.applied == [0] and driver.now == pytest.approx(TIMEOUT)          # one wait, then on time
    assert driver.agent.iteration > 1                                               # and it negotiated on
    neighbours = len(driver.agent.required_plans)
    assert driver.counts["missing"] == neighbours * driver.agent.iteration
    driver.now = 1.0
    driver.measure(1)                                                                # the gate: finals of step 0
    driver.settle()
    assert driver.applied == [0, 1] and driver.now == pytest.approx(1.0 + TIMEOUT)


def test_a_step_budget_shorter_than_the_timeout_sends_the_input_at_the_budget(world) -> None:
    driver = Driver(world, step_budget=TIMEOUT / 2)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    assert driver.wakes == [pytest.approx(TIMEOUT / 2)]                             # the wait ends with the budget
    driver.settle()
    assert driver.applied == [0] and driver.now == pytest.approx(TIMEOUT / 2)
    assert driver.counts["overtaken"] == 1 and driver.agent.iteration == 0         # the warm start's input


def test_a_neighbour_heard_from_again_is_waited_for_again(world) -> None:
    """Given up in this step only while silent: a plan of this step from it brings the wait back."""
    driver = Driver(world, step_budget=10 * TIMEOUT)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    driver.now = TIMEOUT
    neighbour = min(driver.agent.required_plans)
    driver.negotiator._given_up = set(driver.agent.required_plans) - {neighbour}   # the others stay silent
    plan = next(p for p in world["plans"] if p.agent == neighbour and p.step == 0 and p.iteration == 0)
    driver.handle(driver.negotiator.receive(plan, driver.now))
    assert neighbour not in driver.negotiator._given_up


def test_a_plan_deadline_event_gives_a_silent_neighbour_up_at_once_in_real_time_only(world) -> None:
    """best_effort_deadline: the middleware's deadline event on every neighbour's plan topic ends the waits of the
    step at once (the step goes on with substitutes, no timeout), counted; in lock-step it is only counted."""
    driver = Driver(world, step_budget=10 * TIMEOUT)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    driver.now = TIMEOUT / 10
    for neighbour in sorted(driver.agent.required_plans):
        driver.handle(driver.negotiator.silent(neighbour, driver.now))
    assert driver.applied == [0] and driver.applied_at[0] == pytest.approx(TIMEOUT / 10)   # not at the timeout
    assert driver.counts["plan_deadlines"] == len(driver.agent.required_plans)
    lock_step = Driver(world)
    lock_step.handle(lock_step.negotiator.activate(0.0))
    lock_step.measure(0)
    lock_step.now = TIMEOUT / 10
    for neighbour in sorted(lock_step.agent.required_plans):
        assert lock_step.negotiator.silent(neighbour, lock_step.now) == []
    assert lock_step.applied == [] and lock_step.negotiator.counts["plan_deadlines"] == len(
        lock_step.agent.required_plans)


def test_without_a_budget_nothing_changes_and_a_bad_budget_is_refused(world) -> None:
    with pytest.raises(ValueError, match="step_budget: 0.0 is not allowed"):
        Driver(world, step_budget=0.0)
    with pytest.raises(ValueError, match="step_budget: inf is not allowed"):
        Driver(world, step_budget=math.inf)


def test_a_key_with_two_different_plans_is_not_waited_for(world) -> None:
    """A spoofer racing neighbour j for (step, iteration): the plan book closes the key, and the iteration needing it
    goes on at once with j's substitute (counted missing), not after the timeout (lock-step would otherwise lose a
    whole iteration timeout per spoofed plan)."""
    driver = Driver(world)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    first = [p for p in world["plans"] if p.step == 0 and p.iteration == 0 and p.agent in driver.agent.required_plans]
    assert first and driver.agent.iteration == 0
    spoofed = dataclasses.replace(first[0], inputs=first[0].inputs + 0.5)
    driver.handle(driver.negotiator.receive(spoofed, 0.0))
    for plan in first:
        driver.handle(driver.negotiator.receive(plan, 0.0))
    assert driver.agent.iteration >= 1, "the iteration waits for a key that can never be filled"
    assert driver.negotiator.counts["missing"] + driver.counts.get("missing", 0) >= 1
    assert driver.negotiator.counts["rejected"] >= 1
