"""Tube-based robust DMPC: set computations checked independently, bad configurations refused, and a Monte
Carlo over worst-case (vertex) disturbances and random link outages (≤ D steps) in which tube DMPC never
violates a constraint while nominal DMPC does, with the state inside the tube around the nominal trajectory at
every step; compatibility constraints and the plan mismatch bound checked along closed-loop runs."""
from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from dmpc_ros.coordination import build_agents
from dmpc_ros.models import mass_spring_chain
from dmpc_ros.mpc.tubes import TubeError, Zonotope, coupled_tubes, outer_mrpi, tighten
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario
from hypothesis import given, settings, strategies as st

from dmpc_ros.sim import InMemoryNetwork
from dmpc_ros.sim.closed_loop import SimulatedTeam
from dmpc_ros.sim.monte_carlo import closed_loop_run
from scenario_edit import edited, scenario_with

RUNS = 200          # tube DMPC runs (the issue: ≥ 200)
NOMINAL_RUNS = 25   # the first of the same seeds with nominal DMPC (enough to show it violates)


def facets_2d(Z: Zonotope) -> tuple[np.ndarray, np.ndarray]:
    """Exact H-representation of a planar zonotope: one facet pair per generator direction."""
    normals = np.array([[-g[1], g[0]] / np.linalg.norm(g) for g in Z.G.T if np.linalg.norm(g) > 1e-12])
    normals = np.vstack([normals, -normals])
    return normals, Z.support(normals)


def test_coupled_tubes_are_robust_positively_invariant() -> None:
    """A_K,i Z_i ⊕ W_i ⊕ ⨁_j M_ij Z_j ⊆ Z_i for every agent, checked exactly on Z_i's facets with support
    functions (independent of how Z_i was built), and by sampling points of the left-hand side."""
    scenario = load_scenario("mass_spring_robust")
    system, family = scenario.plant(), scenario.tubes
    rng = np.random.default_rng(0)
    for i in range(system.num_agents):
        xs = system.state_slice(i)
        K = family.gains
        A_K = system.A[i][i] + system.B[i][i] @ K[i]
        image = family.tubes[i].map(A_K).plus(Zonotope.box(scenario.disturbance_bound[xs]))
        for j in system.dynamic_neighbours(i):
            image = image.plus(family.tubes[j].map(system.A[i][j] + system.B[i][j] @ K[j]))
        H, h = facets_2d(family.tubes[i])
        assert np.all(image.support(H) <= h + 1e-12), i
        samples = image.G @ rng.uniform(-1, 1, (image.G.shape[1], 2000))
        assert np.all(H @ samples <= h[:, None] + 1e-12)


def test_outer_mrpi_against_the_minimal_set() -> None:
    """Raković's outer approximation contains F_s for every s (the minimal RPI set is their limit) and is
    within ε of it."""
    A = np.array([[0.9, 0.2], [-0.1, 0.8]])
    w = np.array([0.1, 0.05])
    Z, s, alpha = outer_mrpi(A, w, epsilon=1e-4)
    directions = np.array([[np.cos(t), np.sin(t)] for t in np.linspace(0, 2 * np.pi, 64)])
    F = Zonotope.box(w)
    power = np.eye(2)
    for _ in range(400):   # F_400 ≈ minimal RPI set
        power = A @ power
        F = F.plus(Zonotope.box(w).map(power))
    assert np.all(F.support(directions) <= Z.support(directions) + 1e-12)
    assert np.max(Z.support(directions) - F.support(directions)) <= 1e-4 * 1.01 + 1e-12
    assert 0 <= alpha < 1 and s >= 1


def test_pontryagin_difference_by_sampling() -> None:
    """x ∈ X ⊖ Z and z ∈ Z give x + z ∈ X; u ∈ U ⊖ K Z gives u + K z ∈ U; and the tightening is exact:
    pushing a tightened bound's maximizer by Z's support point reaches the original bound."""
    scenario = load_scenario("mass_spring_robust")
    system, family = scenario.plant(), scenario.tubes
    rng = np.random.default_rng(1)
    for i, sub in enumerate(system.subsystems):
        tight = tighten(sub, family.tubes[i], family.gains[i], i)
        Z, K = family.tubes[i], family.gains[i]
        upper = tight.state_constraint.h[:2]
        lower = -tight.state_constraint.h[2:]
        x = rng.uniform(lower, upper, (500, 2))
        z = (Z.G @ rng.choice([-1.0, 1.0], (Z.G.shape[1], 500))).T   # vertices of Z
        assert np.all(sub.state_constraint.H @ (x + z).T <= sub.state_constraint.h[:, None] + 1e-12)
        u = rng.uniform(-tight.input_constraint.h[1], tight.input_constraint.h[0], (500, 1))
        assert np.all(sub.input_constraint.H @ (u + z @ K.T).T <= sub.input_constraint.h[:, None] + 1e-12)
        row = sub.state_constraint.H[0]
        assert tight.state_constraint.h[0] + Z.support(row)[0] == pytest.approx(sub.state_constraint.h[0])


def test_too_large_disturbance_is_refused_with_agent_set_and_amount() -> None:
    with pytest.raises(ScenarioError, match=r"controller\.robust: tube is not possible here: agent \d: the tightened "
                                            r"state set X_\d ⊖ Z_\d is empty — the tube needs [0-9.]+ more room"):
        scenario_with("mass_spring_robust", **{"simulation.disturbance_bound": [0.05, 0.4]})


def test_destabilizing_gain_and_coupling_tolerance_are_refused() -> None:
    chain = mass_spring_chain(2, force_limit=1.0, position_limit=1.0)
    system = chain.discrete(0.1, coupling_tolerance=0.0)
    with pytest.raises(TubeError, match=r"agent 1: the ancillary feedback K_1 does not stabilize .*spectral radius"):
        coupled_tubes(system, [np.array([[-5.0, -3.0]]), np.array([[50.0, 0.0]])], [np.array([0.0, 0.01])] * 2)
    with pytest.raises(ScenarioError, match=r"model\.coupling_tolerance: 1e-06 is not allowed with controller\.robust"):
        scenario_with("mass_spring_robust", **{"model.coupling_tolerance": 1e-6})


@functools.lru_cache(maxsize=1)
def robust_scenario():
    return load_scenario("mass_spring_robust")


OUTAGE_PROBABILITY = 0.3   # per link and step, runs of at most D = controller.tube.missed_steps steps


def outage_network(scenario, seed: int) -> InMemoryNetwork:
    return InMemoryNetwork(seed=seed, outage_probability=OUTAGE_PROBABILITY,
                           max_outage_steps=scenario.tubes.compatibility.missed_steps)


def closed_loop(seed: int, tube: bool) -> tuple[float, int, float]:
    """(max violation, failed solves, max e/tube radius) of one run with vertex disturbances and link outages."""
    scenario = robust_scenario()
    run = closed_loop_run(scenario, seed, tube, outage_network(scenario, seed))
    return run.violation, run.failed, run.fill


@pytest.mark.slow
def test_monte_carlo_tube_never_violates_and_nominal_does() -> None:
    """200 seeded runs, every disturbance on a vertex of W, every link down for whole steps at random (30 %, at
    most D = 2 steps in a row, so neighbours use shifted plans): tube DMPC — zero violations, zero failed
    solves, the state inside its tube around the nominal trajectory at every step; the first 25 of the same
    runs with nominal DMPC violate the position limit (in most of them: the tube is what prevents it)."""
    seeds = list(range(RUNS))
    with ProcessPoolExecutor(max_workers=2) as pool:
        tube = list(pool.map(closed_loop, seeds, [True] * RUNS))
        nominal = list(pool.map(closed_loop, seeds[:NOMINAL_RUNS], [False] * NOMINAL_RUNS))
    assert max(v for v, _, _ in tube) <= 1e-9
    assert sum(f for _, f, _ in tube) == 0
    assert max(e for _, _, e in tube) <= 1.0 + 1e-9
    violating = sum(v > 1e-6 for v, _, _ in nominal)
    assert violating >= NOMINAL_RUNS // 2, violating


@pytest.mark.slow
def test_robust_platoon_stays_in_its_tubes() -> None:
    """platoon_robust (disturbances on every vehicle's speed and acceleration, on the vertices of W): the
    gap-coupled tubes grow down the platoon, and tube DMPC keeps every vehicle inside its tube with no
    violation. (Nominal DMPC does not violate here either: no constraint is active in this profile, so this
    run shows the tubes hold, not that they are needed — mass_spring_robust does that.)"""
    base = load_scenario("platoon_robust").with_overrides(steps=40)
    radii = [z.radii() for z in base.tubes.tubes]
    assert all(radii[i + 1][0] > radii[i][0] for i in range(1, len(radii) - 1))   # gap tubes grow along
    for seed in range(2):
        scenario = dataclasses.replace(base, disturbance_seed=seed)
        design, plant = scenario.design(), scenario.plant()
        problem = design.condensed()
        agents = build_agents(design, scenario.controller.algorithm, scenario.controller.stopping)
        x, W, network = scenario.initial_state.copy(), scenario.disturbance(), InMemoryNetwork()
        stacked = np.concatenate(radii)
        team = SimulatedTeam(agents, problem, network)
        for k in range(scenario.steps):
            team.step(k, x)
            u = np.concatenate([a.control() for a in agents])
            assert plant.constraint_violation(x, u) <= 1e-9
            assert np.all(np.abs(x - np.concatenate([a.nominal for a in agents])) <= stacked + 1e-9)
            x = plant.step(x, u, W[k])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), probability=st.floats(0.0, 1.0), bound=st.integers(1, 4))
def test_link_outages_never_last_longer_than_the_bound(seed: int, probability: float, bound: int) -> None:
    network = InMemoryNetwork(seed=seed, outage_probability=probability, max_outage_steps=bound)
    down = [network.link_down(0, 1, k) for k in range(60)]
    longest = run = 0
    for flag in down:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    assert longest <= bound
    assert not down[0]       # the start-up exchange
    if probability == 1.0:   # always down when allowed: D down, one up, …
        assert down[1: bound + 2] == [True] * bound + [False]
    assert down == [network.link_down(0, 1, k) for k in range(60)]   # decided once


def faulty_run(seed: int, network: InMemoryNetwork, steps: int, initial_state: np.ndarray | None = None):
    """A tube run of mass_spring_robust recording per step: states, nominals, each agent's final plan and
    fallbacks."""
    scenario = dataclasses.replace(robust_scenario(), disturbance_seed=seed)
    design, plant = scenario.design(), scenario.plant()
    problem = design.condensed()
    agents = build_agents(design, scenario.controller.algorithm, scenario.controller.stopping)
    x = scenario.initial_state.copy() if initial_state is None else initial_state.copy()
    W = scenario.disturbance()
    xs, nominals, plans, fallbacks, controls = [x.copy()], [], [], [], []
    team = SimulatedTeam(agents, problem, network)
    for k in range(steps):
        team.step(k, x)
        u = np.concatenate([a.control() for a in agents])
        nominals.append(np.concatenate([a.nominal for a in agents]))
        plans.append([a.last_plan for a in agents])
        fallbacks.append([a.statistics.fallbacks for a in agents])
        controls.append(u)
        x = plant.step(x, u, W[k])
        xs.append(x.copy())
    return scenario, np.array(xs), np.array(nominals), plans, np.array(fallbacks), np.array(controls)


def test_compatibility_constraints_bound_the_mismatch_lost_plans_cause() -> None:
    """Along a run with link outages of up to D steps: every final plan stays within δ of the previous one,
    shifted (the compatibility rows), and the error dynamics' extra term — e_i⁺ − A_K,i e_i − Σ M_ij e_j − w_i,
    what using a shifted plan costs — stays inside the mismatch box the tubes were built with."""
    scenario = robust_scenario()
    network = outage_network(scenario, 3)
    scenario, x, nominal, plans, _, _ = faulty_run(3, network, 25)
    compatibility, system, K = scenario.tubes.compatibility, scenario.plant(), scenario.tubes.gains
    bound = compatibility.mismatch(system)
    assert network.dropped > 0
    W = scenario.disturbance()
    e = x[:-1] - nominal
    seen = 0.0
    for k in range(1, len(plans)):
        for i in range(system.num_agents):
            new, old = plans[k][i], plans[k - 1][i]
            for t in compatibility.state_steps():
                assert np.all(np.abs(new.states[t] - old.states[t + 1]) <= compatibility.state_change[i] + 1e-9)
            for t in compatibility.input_steps():
                assert np.all(np.abs(new.inputs[t] - old.inputs[t + 1]) <= compatibility.input_change[i] + 1e-9)
    for k in range(len(plans) - 1):
        for i in range(system.num_agents):
            s = system.state_slice(i)
            A_K = system.A[i][i] + system.B[i][i] @ K[i]
            extra = e[k + 1, s] - A_K @ e[k, s] - W[k, s]
            for j in system.dynamic_neighbours(i):
                extra -= (system.A[i][j] + system.B[i][j] @ K[j]) @ e[k, system.state_slice(j)]
            assert np.all(np.abs(extra) <= bound[i] + 1e-9), (k, i, extra, bound[i])
            seen = max(seen, float(np.max(np.abs(extra) / bound[i])))
    assert seen > 0.01   # the faults did cause a mismatch (the check is not vacuous)


class SilentLink(InMemoryNetwork):
    """Agent 0's plans never reach agent 1 during steps 2..5 (4 steps: more than D = 2)."""

    def link_down(self, sender: int, receiver: int, step: int) -> bool:
        return (sender, receiver) == (0, 1) and 2 <= step <= 5


def test_beyond_the_fault_bound_the_agent_applies_its_shifted_plan_and_flags_it() -> None:
    scenario, _, _, plans, fallbacks, _ = faulty_run(0, SilentLink(), 8)
    D = scenario.tubes.compatibility.missed_steps
    # last heard in step 1: at step 1 + D its plan is D steps old (still covered), from 2 + D on it is not
    for k in range(2 + D, 6):   # the shifted own plan, flagged
        assert fallbacks[k][1] >= 1
        np.testing.assert_array_equal(plans[k][1].inputs[:-1], plans[k - 1][1].inputs[1:])
    assert plans[1 + D][1].inputs[0] != pytest.approx(plans[D][1].inputs[1], abs=1e-9)   # within D: negotiated


def test_a_step_cut_short_beyond_the_fault_bound_applies_the_shifted_plan_too() -> None:
    """Real time: when agent 1's step is cut short after an iterate (its step budget spent or the next measurement
    in, coordination/negotiator.py) while agent 0 has been silent for more than D steps, the plan announced as final
    and applied is the shifted own plan (what the neighbours' tubes assume), not the unfinished iterate; within the
    bound it is the iterate."""
    scenario = robust_scenario()
    D = scenario.tubes.compatibility.missed_steps
    design, plant = scenario.design(), scenario.plant()
    for silent_steps, beyond in ((D + 1, True), (1, False)):
        agents = build_agents(design, scenario.controller.algorithm, scenario.controller.stopping)
        team = SimulatedTeam(agents, design.condensed(), SilentLink())
        x = scenario.initial_state.copy()
        k = 1 + silent_steps   # agent 0 last heard at step 1
        for step in range(k):
            team.step(step, x)
            x = plant.step(x, np.concatenate([a.control() for a in agents]))
        me = agents[1]
        previous = me.last_plan
        others = {j: agents[j].last_plan for j in me.required_plans if j != 0}
        me.begin_step(k, x[design.system.state_slice(1)], others)
        iterate = me.iterate(others)
        assert not iterate.final and not np.array_equal(iterate.inputs[:-1], previous.inputs[1:])
        iteration = iterate.iteration
        final = me.cut_short()
        assert final.final and me.last_plan is final or not beyond
        assert np.array_equal(final.inputs[:-1], previous.inputs[1:]) == beyond, (silent_steps, D)
        assert np.array_equal(final.inputs, iterate.inputs) != beyond
        assert final.iteration == iteration + beyond   # a new key: neighbours never see two plans under one
        u = me.control()
        np.testing.assert_allclose(u, me.planned_input())


def test_initial_nominal_state_is_a_decision_variable() -> None:
    """Mass 0 starts at 0.99 m: inside X (|p| ≤ 1) but outside the tightened X ⊖ Z. x̄(0) is chosen in
    (x(0) ⊕ −Z) ∩ (X ⊖ Z), the nominal problem is feasible from the first step and the run is safe."""
    scenario = robust_scenario()
    x0 = scenario.initial_state.copy()
    x0[0] = 0.99
    tight = scenario.design().system.subsystems[0].state_constraint
    assert np.any(tight.H @ x0[:2] > tight.h)
    scenario, x, nominal, plans, _, _ = faulty_run(0, InMemoryNetwork(), 10, initial_state=x0)
    assert np.all(tight.H @ nominal[0, :2] <= tight.h + 1e-9)
    H, h = facets_2d(scenario.tubes.tubes[0])
    assert np.all(H @ (x0[:2] - nominal[0, :2]) <= h + 1e-9)
    assert all(p.feasible for step in plans for p in step)
    plant = scenario.plant()
    assert max(plant.constraint_violation(state) for state in x) <= 1e-9


def test_fault_settings_are_validated() -> None:
    with pytest.raises(ScenarioError,
                       match=r"controller\.algorithm: admm is not allowed here: with controller\.tube\.missed_steps 1"):
        scenario_with("mass_spring_robust", **{"controller.algorithm": "admm", "controller.tube.missed_steps": 1})
    with pytest.raises(ScenarioError, match=r"controller\.algorithm: admm is not allowed here: with controller\.tube"):
        load_scenario("mass_spring_robust").with_overrides(algorithm="admm")
    with pytest.raises(ScenarioError,
                       match=r"controller\.tube\.plan_change\.q: unknown state or input; allowed: F, p, v"):
        scenario_with("mass_spring_robust", **{"controller.tube.plan_change.q": 0.1})
    with pytest.raises(ScenarioError, match=r"controller\.tube\.missed_steps: 15 is not allowed"):
        scenario_with("mass_spring_robust", **{"controller.tube.missed_steps": 15})
    with pytest.raises(ScenarioError, match=r"controller\.tube: only allowed with controller\.robust: tube"):
        scenario_with("mass_spring_robust", **{"controller.robust": "nominal"})
    unbounded = edited("mass_spring_robust", **{"controller.tube.plan_change": {"F": 0.25}})
    del unbounded["model"]["masses"]["velocity_limit"]
    with pytest.raises(ScenarioError, match=r"agent \d is coupled to agent \d's states, which are unbounded: "
                                            r"agent \d's state plan changes need a bound "
                                            r"\(controller\.tube\.plan_change\)"):
        parse_scenario(unbounded)


FORMATION_RUNS = 6   # the 200-run figures come from bench/robust_monte_carlo.py (a run takes ~3 s)


@functools.lru_cache(maxsize=1)
def formation_scenario():
    """formation_robust for 6 s: the swap and its closest approaches happen between 2 and 4.5 s."""
    return load_scenario("formation_robust").with_overrides(steps=30)


def formation_run(seed: int, tube: bool) -> tuple[float, float, int, float]:
    """(min distance [m], max violation, failed solves, max e/tube radius) of one formation_robust run."""
    run = closed_loop_run(formation_scenario(), seed, tube)
    return run.min_distance, run.violation, run.failed, run.fill


@pytest.mark.slow
def test_robust_formation_keeps_the_distance_nominal_does_not() -> None:
    """formation_robust (robots 0 and 2 swap sides head-on, vertex disturbances on every velocity): with the
    half-planes tightened by the tubes, no pair comes closer than 0.6 m, no speed/acceleration limit is
    violated, no solve fails and every robot stays in its tube; nominal DMPC, planning right up to 0.6 m,
    lets the disturbances push pairs closer in most of the same runs."""
    seeds = list(range(FORMATION_RUNS))
    with ProcessPoolExecutor(max_workers=2) as pool:
        tube = list(pool.map(formation_run, seeds, [True] * len(seeds)))
        nominal = list(pool.map(formation_run, seeds[:4], [False] * 4))
    assert min(d for d, _, _, _ in tube) >= 0.6
    assert max(v for _, v, _, _ in tube) <= 1e-9
    assert sum(f for _, _, f, _ in tube) == 0
    assert max(e for _, _, _, e in tube) <= 1.0 + 1e-9
    assert sum(d < 0.6 - 1e-6 for d, _, _, _ in nominal) >= 2


def test_tube_admm_without_fault_settings_matches_its_bound() -> None:
    """ADMM in tube mode (no fault settings): its input copies stay in the owners' input sets, so the
    mismatch its unconverged copies cause is within the width bound the tubes include; the run is safe and
    inside the tubes."""
    data = edited("mass_spring_robust", **{"controller.algorithm": "admm"})
    del data["controller"]["tube"]
    scenario = parse_scenario(data).with_overrides(steps=15)
    run = closed_loop_run(scenario, 0, True)
    assert run.violation <= 1e-9 and run.failed == 0 and run.fill <= 1.0 + 1e-9
