"""Fallbacks that do no harm (issue 26): a fallback input whose predicted x_i(k+1) leaves X_i is replaced by the
nearest input that keeps it inside, whenever one exists (checked against an independent LP), else by the least
violating one; on a tank with √h outflow, holding the inflow overfills and the safety input does not."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from dmpc_ros.coordination.base import StepStatistics, record_safety
from dmpc_ros.coordination.plan import Plan
from dmpc_ros.coordination.safe_input import INPUT_SOURCES, InputGuard
from dmpc_ros.coordination.safety_filter import AffineStep
from dmpc_ros.models.linear import PolytopicConstraint
from dmpc_ros.models.nonlinear import NonlinearPlant
from dmpc_ros.scenarios import parse_scenario

SLACK = 1e-7   # what a QP solver's tolerance may leave [state or input units, the sets here are of order 1–10]


@st.composite
def subsystems(draw):
    """x⁺ = B u + c with box X and U in 1–3 dimensions, and a held input (inside U, outside it, or garbage)."""
    n_x, n_u = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B, c = rng.normal(size=(n_x, n_u)), rng.normal(size=n_x) * draw(st.sampled_from([0.5, 2.0, 6.0]))
    u_low = -rng.uniform(0.05, 2, n_u)
    u_high = u_low + rng.uniform(0.05, 3, n_u)
    x_low = -rng.uniform(0.05, 2, n_x)
    x_high = x_low + rng.uniform(0.05, 3, n_x)
    held = draw(st.one_of(st.lists(st.floats(-5, 5), min_size=n_u, max_size=n_u).map(np.array),
                          st.sampled_from([np.full(n_u, np.nan), np.full(n_u, 1e300)])))
    return (B, c, PolytopicConstraint.box(u_low, u_high), PolytopicConstraint.box(x_low, x_high), held)


def least_violation(B: np.ndarray, c: np.ndarray, U: PolytopicConstraint, X: PolytopicConstraint) -> float:
    """min over u ∈ U of the largest violation of X by B u + c (an LP by scipy's HiGHS, independent of the guard)."""
    n = B.shape[1]
    A_ub = np.block([[U.H, np.zeros((U.h.size, 1))], [X.H @ B, -np.ones((X.h.size, 1))]])
    b_ub = np.r_[U.h, X.h - X.H @ c]
    result = linprog(np.r_[np.zeros(n), 1.0], A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * n + [(0, None)],
                     method="highs")
    assert result.status == 0
    return float(result.fun)


@settings(max_examples=300, deadline=None)
@given(subsystems())
def test_the_fallback_keeps_the_next_state_inside_whenever_some_input_can(case) -> None:
    B, c, U, X, held = case
    guard = InputGuard(U, None, X)
    model = AffineStep(B, c)
    decision = guard.decide(None, held, None, model)
    u = decision.input
    assert np.all(np.isfinite(u)) and np.all(U.H @ u <= U.h + 1e-9 * (1 + np.abs(U.h)))   # inside U, finite
    best = least_violation(B, c, U, X)
    reached = X.violation(model.predict(u))
    if best <= 0.0:   # some input keeps x(k+1) in X: the applied one does
        assert reached <= SLACK, (decision.rule, reached)
    else:             # none does: the applied one violates no more than the least possible
        assert reached <= best + SLACK * (1 + best), (decision.rule, reached, best)
    inside = np.all(np.isfinite(held)) and U.violation(held) == 0.0
    if inside and X.violation(model.predict(held)) == 0.0:   # a safe held input is applied unchanged
        assert decision.rule == "candidate" and np.array_equal(u, held)
    if decision.rule == "safety":
        assert decision.state_margin == -reached or reached == 0.0


def test_a_safe_plan_is_applied_unchanged_and_an_unsafe_one_is_replaced_by_the_nearest_safe_input() -> None:
    """x⁺ = x + u with x = 0.9, X = [−1, 1], U = [−1, 1]: u = 0.05 is kept, u = 0.5 becomes 0.1 ("safety")."""
    guard = InputGuard(PolytopicConstraint.box(np.array([-1.0]), np.array([1.0])), None,
                       PolytopicConstraint.box(np.array([-1.0]), np.array([1.0])))
    model = AffineStep(np.eye(1), np.array([0.9]))
    kept = guard.decide(np.array([0.05]), None, None, model)
    assert kept.rule == "plan" and kept.input[0] == 0.05 and abs(kept.state_margin - 0.05) < 1e-12
    replaced = guard.decide(np.array([0.5]), None, None, model)
    assert replaced.rule == "safety" and abs(replaced.input[0] - 0.1) < 1e-5 and replaced.state_margin > 0.0
    assert guard.decide(np.array([0.5]), None, None).rule == "plan"   # without a model nothing changes
    assert INPUT_SOURCES[-1] == "safety"
    stats = StepStatistics(input_source="safety")
    record_safety(stats, replaced)
    assert stats.counters["safety_inputs"] == 1 and stats.counters["checked_fallbacks"] == 1


def tank_design(level: float):
    """Two water tanks joined by a pipe (√h outflows), limits [0.01, 0.6] m, tank 1 at `level`."""
    data = {"name": "tanks", "model": {"type": "nonlinear", "example": "water_tanks", "sample_time": 2.0,
                                       "parameters": {"tanks": 2, "levels": [0.3, 0.4], "max_level": 0.6}},
            "controller": {"algorithm": "sensitivity", "horizon": 5},
            "simulation": {"steps": 5, "initial_state": [0.3, level]}}
    scenario = parse_scenario(data)
    return scenario.design(), NonlinearPlant(scenario.model, scenario.sample_time)


def test_holding_the_inflow_overfills_a_tank_and_the_safety_input_does_not() -> None:
    """Tank 1 at 0.59 m under its 0.6 m limit, its pump held at the full inflow (a fallback that keeps the old
    input): the true plant overfills within a step; the guard, with Φ_1 and tank 0 at its plan, cuts the inflow just
    enough, and over 40 steps of the held inflow the level never passes the limit."""
    design, plant = tank_design(0.59)
    network, full = design.network, 4e-4
    guard = design.input_guard(1)
    neighbour = np.array([[0.3]] * 6)
    known = {0: Plan(0, 0, 1, neighbour, np.full((5, 1), float(network.setpoints[0].input[0])), 0.0, True, True,
                     True)}
    x = np.array([0.3, 0.59])
    held_only = plant.step(x, np.r_[network.setpoints[0].input[0], full])
    assert held_only[1] > 0.6 + 1e-3   # holding the pump overfills
    worst, safety = -np.inf, 0
    for step in range(40):
        ahead = plant.step(x, np.r_[network.setpoints[0].input[0], full])[0]   # tank 0's own plan, about right
        known[0] = Plan(0, step, 1, np.r_[x[0], np.full(5, ahead)][:, None], known[0].inputs, 0.0, True, True, True)
        decision = guard.decide(None, np.array([full]), x[1:], design.one_step(1, x[1:], known, step))
        assert 0.0 <= decision.input[0] <= full
        safety += decision.rule == "safety"
        x = plant.step(x, np.r_[network.setpoints[0].input[0], decision.input])
        worst = max(worst, x[1])
    assert safety > 0 and worst <= 0.6 + 1e-6, worst   # RK4 prediction against the adaptive plant: 1e-6 m
