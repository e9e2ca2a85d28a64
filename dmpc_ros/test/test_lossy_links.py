"""Lossy links between hosts in the in-memory network (sim/network.py: hosts, link_loss, loss_model) and the
negotiator's injected hold on received plans (plan_delay): seeded and reproducible, lossless within a host, the
loss rate as asked, a reliable link late but never lossy and in order, and a hold of d the same as latency d."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmpc_ros.api import simulation_settings
from dmpc_ros.coordination.negotiator import OUTAGE_COUNTER
from dmpc_ros.coordination.plan import Plan
from dmpc_ros.scenarios import ScenarioError, load_scenario
from dmpc_ros.sim import InMemoryNetwork, simulate
from dmpc_ros.sim.network import host_map


def plan(sender: int, step: int = 1, iteration: int = 0) -> Plan:
    return Plan(sender, step, iteration, np.zeros((2, 1)), np.zeros((1, 1)), 0.0, True, False, False)


def deliveries(network: InMemoryNetwork, sender: int, receivers, count: int, step: int = 1) -> list[tuple]:
    """Send `count` plans from `sender` to `receivers` at t = 0, 1, …; (arrival, receiver, iteration) of each
    delivered one."""
    for t in range(count):
        network.send(plan(sender, step, t), receivers, float(t))
    out = []
    while network.next_delivery() is not None:
        due, receiver, p = network.deliver()
        out.append((due, receiver, p.iteration))
    return out


hosts_strategy = st.integers(2, 6).flatmap(lambda m: st.lists(st.integers(0, 2), min_size=m, max_size=m))


@settings(max_examples=40, deadline=None)
@given(assignment=hosts_strategy, loss=st.floats(0.05, 0.95), seed=st.integers(0, 2**16),
       model=st.sampled_from(["best_effort", "reliable"]))
def test_links_within_a_host_lose_nothing_and_a_seed_fixes_every_loss(assignment, loss, seed, model) -> None:
    hosts = tuple(tuple(a for a, h in enumerate(assignment) if h == host) for host in sorted(set(assignment)))
    agents = range(len(assignment))

    def run() -> list[tuple]:
        network = InMemoryNetwork(hosts=hosts, link_loss=loss, loss_model=model, seed=seed, retransmit_delay=0.25)
        out = [deliveries(network, i, [j for j in agents if j != i], 20) for i in agents]
        return out, network.dropped, network.retransmissions

    first, dropped, retransmitted = run()
    assert run() == (first, dropped, retransmitted)   # reproducible from the seed
    for i, delivered in zip(agents, first):
        for j in agents:
            if j == i:
                continue
            got = [(due, it) for due, r, it in delivered if r == j]
            if assignment[i] == assignment[j]:   # same host: every plan, on time
                assert got == [(float(t), t) for t in range(20)]
            elif model == "reliable":   # retransmitted: every plan, in order, late by whole repair rounds
                assert [it for _, it in got] == list(range(20))
                assert all(due >= t for due, t in got) and all(b[0] >= a[0] for a, b in zip(got, got[1:]))
    if model == "reliable":
        assert dropped == 0
    else:
        assert retransmitted == 0


def test_a_links_losses_do_not_depend_on_other_traffic() -> None:
    """The draws of link 0 → 1 come from its own generator: traffic on 2 → 3 does not move them."""
    hosts = ((0,), (1,), (2,), (3,))
    quiet = InMemoryNetwork(hosts=hosts, link_loss=0.4, seed=3)
    busy = InMemoryNetwork(hosts=hosts, link_loss=0.4, seed=3)
    alone = deliveries(quiet, 0, [1], 50)
    for t in range(50):
        busy.send(plan(2, 1, t), [3], float(t))
        busy.send(plan(0, 1, t), [1], float(t))
    mixed = []
    while busy.next_delivery() is not None:
        due, receiver, p = busy.deliver()
        if p.agent == 0:
            mixed.append((due, receiver, p.iteration))
    assert mixed == alone


@pytest.mark.parametrize("loss", [0.1, 0.3])
def test_the_loss_rate_is_the_one_asked_for(loss: float) -> None:
    """best_effort: the share lost; reliable: none lost, K lost tries per message with E[K] = p / (1 − p)."""
    n = 4000
    lossy = InMemoryNetwork(hosts=((0,), (1,)), link_loss=loss, seed=11)
    delivered = len(deliveries(lossy, 0, [1], n))
    sigma = np.sqrt(n * loss * (1 - loss))
    assert abs((n - delivered) - n * loss) < 5 * sigma and lossy.dropped == n - delivered
    reliable = InMemoryNetwork(hosts=((0,), (1,)), link_loss=loss, seed=11, loss_model="reliable")
    assert len(deliveries(reliable, 0, [1], n)) == n
    mean = loss / (1 - loss)
    assert abs(reliable.retransmissions / n - mean) < 5 * np.sqrt(loss) / (1 - loss) / np.sqrt(n)


def test_network_refuses_what_it_cannot_model() -> None:
    with pytest.raises(ValueError, match=r"^link_loss: 1.0 is not allowed: must be in \[0, 1\)$"):
        InMemoryNetwork(link_loss=1.0)
    with pytest.raises(ValueError, match="^loss_model: 'tcp' is not allowed: must be one of best_effort, reliable$"):
        InMemoryNetwork(loss_model="tcp")
    with pytest.raises(ValueError, match="^hosts: agent 1 on hosts 0 and 1 is not allowed: each agent runs on one"):
        host_map([[0, 1], [1, 2]])


@pytest.mark.parametrize("hosts, message", [
    ([[0, 1], [2]], r"network\.hosts: \[\[0, 1\], \[2\]\] is not allowed: every agent 0 … 3 must be on one host "
                    r"\(missing \[3\]\)"),
    ("0,1/2,x", r"network\.hosts: '0,1/2,x' is not allowed: must be agent ids, hosts split by / and agents by ,"),
    ([[0, 1], [1, 2, 3]], r"network\.hosts: agent 1 on hosts 0 and 1 is not allowed"),
    ([[0, 1, 2, 3, 4]], r"every agent 0 … 3 must be on one host \(no agent \[4\]\)"),
    ([], r"network\.hosts: \[\] is not allowed: must be a non-empty list"),
])
def test_scenario_hosts_are_checked_at_load(hosts, message) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario("mass_spring").with_overrides(hosts=hosts)


def test_scenario_fields_reach_dmpc_sims_network() -> None:
    scenario = load_scenario("mass_spring").with_overrides(hosts="0,1/2,3", link_loss=0.3, loss_model="reliable")
    assert scenario.hosts == ((0, 1), (2, 3))
    network = simulation_settings(scenario, "jacobi", False).network
    assert (network.hosts, network.link_loss, network.loss_model) == (((0, 1), (2, 3)), 0.3, "reliable")
    assert network.lossy(1, 2) and not network.lossy(0, 1)


@pytest.fixture(scope="module")
def short_run():
    scenario = dataclasses.replace(load_scenario("mass_spring"), steps=4)
    return scenario, scenario.design(), scenario.plant()


@pytest.mark.parametrize("delay, timeout", [(0.03, 2.0), (0.03, 0.02), (0.2, 0.15)])
def test_a_hold_of_d_is_latency_d_on_every_link_into_the_agent(short_run, delay: float, timeout: float) -> None:
    """The negotiator's hold (plan_delay) and the network's latency give the same run: the same plans count at the
    same times, so the same substitutions, inputs and counts (timeout < delay: every iteration substitutes)."""
    scenario, design, plant = short_run
    held = simulation_settings(scenario, "jacobi", False, iteration_timeout=timeout, plan_delay=delay)
    late = simulation_settings(scenario, "jacobi", False, iteration_timeout=timeout)
    late.network = InMemoryNetwork(default_latency=delay)
    a = simulate(design, plant, scenario.initial_state, held)
    b = simulate(design, plant, scenario.initial_state, late)
    np.testing.assert_array_equal(a.u, b.u)
    np.testing.assert_array_equal(a.iterations, b.iterations)
    assert (a.messages_missing, a.messages_late) == (b.messages_missing, b.messages_late)
    if timeout < delay:
        assert a.messages_missing > 0


def test_outage_lengths_are_recorded_per_step(short_run) -> None:
    """Every plan across hosts lost: each agent's neighbours across the split are silent from step 1 on, so the
    recorded outage grows by one per step; within a host nothing is lost."""
    scenario, design, plant = short_run
    settings_ = simulation_settings(scenario, "jacobi", False, iteration_timeout=0.01)
    settings_.network = InMemoryNetwork(hosts=((0, 1), (2, 3)), link_loss=0.99, seed=0)
    result = simulate(design, plant, scenario.initial_state, settings_)
    outage = result.counters[OUTAGE_COUNTER]
    assert outage.shape == (4, 4)
    assert outage.max() >= 2 and result.longest_outage() == int(outage.max())
    assert np.all(np.isfinite(result.u))


def test_a_held_plan_counts_only_from_its_due_time(short_run) -> None:
    """plan_delay: receive() only arms a wake-up; the plan is booked (heard from) at tick(due), not before, and a
    clock that jumps back moves the due time with it."""
    from dmpc_ros.coordination import StoppingRule
    from dmpc_ros.coordination.negotiator import Negotiator, WakeAt

    scenario, design, _ = short_run
    stopping = StoppingRule(scenario.controller.max_iterations, scenario.controller.tolerance)
    agents = design.agents("jacobi", stopping, scenario.controller.solver)
    listener = Negotiator(agents[1], stopping.max_iterations, 4, plan_delay=0.5)
    listener.activate(0.0)
    x0 = scenario.initial_state[design.system.state_slice(0)]
    first = agents[0].begin_step(0, x0, {})
    assert listener.receive(first, 1.0) == [WakeAt(1.5)] and listener.next_wake == 1.5
    listener.tick(1.4)
    assert 0 not in listener.heard
    listener.tick(0.9)   # the clock jumped back by 0.5 s: the plan is now due at 1.0
    assert listener.next_wake == pytest.approx(1.0) and 0 not in listener.heard
    listener.tick(1.0)
    assert listener.heard[0] == 1.0 and listener.heard_step[0] == 0 and listener.next_wake is None
    with pytest.raises(ValueError, match="^plan_delay: -1 is not allowed"):
        Negotiator(agents[1], 1, 4, plan_delay=-1)
