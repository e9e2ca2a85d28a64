"""Crash and rejoin (issue 28, point 4) without DDS, in milliseconds: the respawn policy, what a respawned plant or
agent resumes from, the negotiator's rules for a respawned plant (a re-measured step's input is sent again) and for
a rejoining agent (its neighbours' plans that come before its first measurement are kept, not refused), the block
agent's warm start, and what the lifecycle manager does with a node in each state."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from dmpc_ros.coordination.negotiator import ApplyInput
from dmpc_ros.process_group import ProcessGroup, RespawnPolicy
from dmpc_ros.sim.resume import PlantCheckpoint, load_plan, save_plan
from test_negotiator import ME, Driver, world  # noqa: F401  (world: the recorded 3-step team, a fixture)


# -- respawn policy ---------------------------------------------------------------------------------------------------
def test_the_policy_respawns_what_its_scope_covers_up_to_its_limit() -> None:
    policy = RespawnPolicy("agents", limit=2, delay=0.25, final={"lifecycle_manager": (1,)})
    assert [policy.restart_delay("agent_1", "agent", -9) for _ in range(3)] == [0.25, 0.25, None]   # limit 2
    assert policy.restart_delay("agent_2", "agent", 1) == 0.25          # a count of its own
    assert policy.restart_delay("plant", "plant", -9) is None           # not in scope "agents"
    everything = RespawnPolicy("all", final={"lifecycle_manager": (1,)})
    assert everything.restart_delay("lifecycle_manager", "lifecycle_manager", -9) is not None
    assert everything.restart_delay("lifecycle_manager", "lifecycle_manager", 1) is None   # bring-up failed
    assert everything.restart_delay("agent_0", "agent", 0) is None      # a clean exit
    assert RespawnPolicy().restart_delay("agent_0", "agent", -9) is None   # default: none, as before


@pytest.mark.parametrize("kwargs,message", [
    (dict(scope="some"), "respawn: 'some' is not allowed: must be one of none, agents, all"),
    (dict(limit=-1), "respawn_limit: -1 is not allowed"),
    (dict(delay=float("inf")), "respawn_delay: inf is not allowed")])
def test_a_bad_policy_is_refused_in_one_line(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RespawnPolicy(**kwargs)


def test_a_restarted_process_takes_its_place_in_the_group() -> None:
    with ProcessGroup(echo=False) as group:
        first = group.start("first", [sys.executable, "-c", "print('one')"], {})
        group.start("second", [sys.executable, "-c", "import time; time.sleep(30)"], {})
        group.wait(first, timeout=30)
        assert group.first_exited() is first and group.first_exited(ignore=frozenset({"first"})) is None
        again = group.restart(first)
        group.wait(again, timeout=30)
        assert [p.name for p in group.processes] == ["first", "second"] and group.processes[0] is again
        assert again.popen.pid != first.popen.pid and again.lines == ["one"]


# -- what a respawned node resumes from -----------------------------------------------------------------------------
def test_the_plant_checkpoint_round_trips_and_refuses_another_runs(tmp_path) -> None:
    x, u = np.arange(12.0).reshape(6, 2), np.arange(10.0).reshape(10, 1)   # a run of 10 steps, 5 done
    wall = np.linspace(0.0, 1.0, 6)
    PlantCheckpoint(5, np.vstack([x, np.zeros((5, 2))]), u, np.concatenate([wall, np.full(5, np.nan)]),
                    np.array([1, 0]), np.array([0, 3])).save(tmp_path)
    checkpoint, why = PlantCheckpoint.load(tmp_path, n_x=2, n_u=1, steps=10, agents=2)
    assert why == "" and checkpoint.step == 5
    np.testing.assert_array_equal(checkpoint.x, x)
    np.testing.assert_array_equal(checkpoint.u, u[:5])
    assert checkpoint.late_by_agent.tolist() == [1, 0] and checkpoint.safe_steps.tolist() == [0, 3]
    assert PlantCheckpoint.load(tmp_path, n_x=3, n_u=1, steps=10, agents=2)[0] is None   # another plant
    assert PlantCheckpoint.load(tmp_path, n_x=2, n_u=1, steps=4, agents=2)[0] is None    # a shorter run
    assert PlantCheckpoint.load(tmp_path / "none", 2, 1, 10, 2) == (None, "no checkpoint")


def test_an_agents_last_plan_round_trips_and_a_foreign_one_is_ignored(tmp_path, world) -> None:  # noqa: F811
    plan = next(p for p in world["plans"] if p.agent == ME and p.final and p.step == 1)
    save_plan(tmp_path, plan)
    N, n_x, n_u = plan.horizon, plan.states.shape[1], plan.inputs.shape[1]
    loaded = load_plan(tmp_path, ME, N, n_x, n_u)
    assert (loaded.step, loaded.iteration, loaded.final) == (1, plan.iteration, True)
    np.testing.assert_array_equal(loaded.inputs, plan.inputs)
    assert load_plan(tmp_path, ME, N + 1, n_x, n_u) is None    # another horizon
    assert load_plan(tmp_path, ME + 1, N, n_x, n_u) is None    # nothing kept for that agent


# -- the negotiator ---------------------------------------------------------------------------------------------------
def own_state(world, step: int) -> np.ndarray:  # noqa: F811
    return world["states"][step][world["design"].system.state_slice(ME)]


def test_a_step_measured_again_after_its_input_went_out_sends_the_same_input_again(world) -> None:  # noqa: F811
    driver = Driver(world)
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(0)
    assert driver.negotiator.measure(0, own_state(world, 0), 0.0) == []   # negotiating: nothing yet
    driver.settle()
    sent = driver.applied
    again = driver.negotiator.measure(0, own_state(world, 0), driver.now)   # a respawned plant asks again
    assert sent == [0] and len(again) == 1 and isinstance(again[0], ApplyInput)
    assert again[0].resent and again[0].step == 0
    driver.handle(again)


def test_a_rejoining_agent_keeps_the_plans_that_come_before_its_first_measurement(world) -> None:  # noqa: F811
    """Its neighbours negotiate step 2 already; their plans (TRANSIENT_LOCAL history) reach the new agent before the
    plant's state: kept aside, they let it begin at once and iterate without a single timeout."""
    driver = Driver(world)
    neighbours = driver.agent.required_plans
    for plan in (p for p in world["plans"] if p.agent in neighbours and p.step in (1, 2)):
        assert driver.negotiator.receive(plan, 0.0) == []
    assert driver.negotiator.counts["rejected"] == 0
    driver.handle(driver.negotiator.activate(0.0))
    driver.measure(2)
    assert driver.applied == [2] and driver.now == 0.0      # no wait: every plan it needed was kept
    assert driver.counts["missing"] == 0 and driver.counts["rejected"] == 0


def test_plans_kept_before_the_first_step_stay_bounded(world) -> None:  # noqa: F811
    driver = Driver(world)
    j = min(driver.agent.required_plans)
    plan = next(p for p in world["plans"] if p.agent == j)
    for step in range(50):
        for iteration in range(3):
            driver.negotiator.receive(dataclasses.replace(plan, step=step, iteration=iteration), 0.0)
    kept = driver.negotiator._early[j]
    assert sorted({step for step, _ in kept}) == [48, 49] and len(kept) == 6


# -- the block agent's warm start -----------------------------------------------------------------------------------
def test_a_rejoining_block_agent_starts_from_its_own_last_plan_shifted(world) -> None:  # noqa: F811
    own = next(p for p in world["plans"] if p.agent == ME and p.final and p.step == 0)
    cold, warm = world["fresh"](), world["fresh"]()
    warm.rejoin(own)
    cold_plan = cold.begin_step(1, own_state(world, 1), {})
    warm_plan = warm.begin_step(1, own_state(world, 1), {})
    np.testing.assert_array_equal(warm_plan.inputs[:-1], own.inputs[1:])   # shifted by its age, 1 step
    assert not np.array_equal(cold_plan.inputs[:-1], own.inputs[1:])      # a cold start is the reference
    step_zero = world["fresh"]()
    step_zero.rejoin(None)
    np.testing.assert_array_equal(step_zero.begin_step(0, own_state(world, 0), {}).inputs,
                                  world["fresh"]().begin_step(0, own_state(world, 0), {}).inputs)


# -- the lifecycle manager ------------------------------------------------------------------------------------------
def test_the_manager_brings_each_state_up_with_the_transitions_it_still_needs() -> None:
    from lifecycle_msgs.msg import State, Transition

    from dmpc_ros.ros.lifecycle_manager import transitions_to_active

    configure, activate = Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE
    assert transitions_to_active(State.PRIMARY_STATE_UNCONFIGURED) == (configure, activate)   # respawned
    assert transitions_to_active(State.PRIMARY_STATE_INACTIVE) == (activate,)
    assert transitions_to_active(State.PRIMARY_STATE_ACTIVE) == ()                            # adopted
    with pytest.raises(ValueError, match="lifecycle state 4 is not allowed for bring-up"):
        transitions_to_active(State.PRIMARY_STATE_FINALIZED)


# -- the launch files -----------------------------------------------------------------------------------------------
def test_the_launch_description_respawns_what_the_policy_covers_and_a_respawned_plant_does_not_end_it() -> None:
    from launch.events.process import ProcessExited

    from dmpc_ros.ros.launch_description import EndLaunchOnce, launch_actions, respawn_policy, specs_from_arguments

    base = {"scenario": "mass_spring", "namespace": "/dmpc", "use_sim_time": "true", "mode": "lock_step"}
    policy = respawn_policy({**base, "respawn": "agents", "respawn_limit": "2", "respawn_delay": "0.25"})
    assert (policy.scope, policy.limit, policy.delay) == ("agents", 2, 0.25)
    with pytest.raises(ValueError, match="respawn:=some is not allowed: must be one of none, agents, all"):
        respawn_policy({**base, "respawn": "some"})
    specs = specs_from_arguments({**base, "respawn": "agents"})
    actions = launch_actions(specs, policy)
    nodes = dict(zip((s.name for s in specs), (a for a in actions if hasattr(a, "_ExecuteLocal__respawn"))))
    respawned = {name: action._ExecuteLocal__respawn for name, action in nodes.items()}
    assert respawned["agent_0"] and not respawned["plant"] and not respawned["lifecycle_manager"]
    assert nodes["agent_0"]._ExecuteLocal__respawn_delay == 0.25
    assert nodes["agent_0"]._ExecuteLocal__respawn_max_retries == 2
    manager = next(s for s in specs if s.executable == "lifecycle_manager")
    assert manager.parameters["respawn"] == "agents"   # it brings respawned agents up again

    class Context:
        is_shutdown = False

    def exited(code: int) -> ProcessExited:
        return ProcessExited(action=None, name="plant", cmd=[], cwd=None, env=None, pid=1, returncode=code)

    ending = EndLaunchOnce("plant exited", RespawnPolicy("all", limit=1))
    assert ending(exited(-9), Context()) == []            # killed: launch respawns it
    assert len(ending(exited(-9), Context())) == 1        # its restarts spent: the launch ends
    assert len(EndLaunchOnce("plant exited")(exited(-9), Context())) == 1   # no respawn: as before
