"""Fallbacks that do no harm (issue 26): a fallback input whose predicted x_i(k+1) leaves X_i is replaced by the
nearest input that keeps it inside, whenever one exists (checked against an independent LP), else by the least
violating one; on a tank with √h outflow, holding the inflow overfills and the safety input does not."""
from __future__ import annotations

import numpy as np
import pytest
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
    record_safety(stats, [replaced])
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


@pytest.mark.slow   # two closed loops of local NLPs (~40 s on a loaded machine)
def test_a_sensitivity_agent_whose_solves_fail_and_whose_fallback_holds_the_pump_open_keeps_its_tank_below_the_limit(
        monkeypatch) -> None:
    """Closed loop (issue 26's report in small): tank 1's NLPs all fail and its fallback holds the full inflow. With
    the guard's one-step model from the agent (Φ_1, tank 0 at its latest plan) the level stays under 0.6 m; without
    it (no model) the tank overfills."""
    from dmpc_ros.api import simulate
    from dmpc_ros.coordination import sensitivity

    data = {"name": "tanks", "model": {"type": "nonlinear", "example": "water_tanks", "sample_time": 2.0,
                                       "parameters": {"tanks": 2, "levels": [0.3, 0.4], "max_level": 0.6}},
            "controller": {"algorithm": "sensitivity", "horizon": 6, "max_iterations": 2},
            "simulation": {"steps": 12, "initial_state": [0.3, 0.55]}}
    scenario = parse_scenario(data)
    original = sensitivity.SensitivityAgent.iterate

    def failing(self, inbox):
        if self.agent_id != 1:
            return original(self, inbox)
        solve = self.ocp.solve
        self.ocp.solve = lambda *args, **kwargs: _failed(solve(*args, **kwargs))
        try:
            return original(self, inbox)
        finally:
            self.ocp.solve = solve

    monkeypatch.setattr(sensitivity.SensitivityAgent, "iterate", failing)
    for hook in ("planned_input", "candidate_input"):   # the failed agent's kept plan and candidate: pump full open
        kept = getattr(sensitivity.SensitivityAgent, hook)
        monkeypatch.setattr(sensitivity.SensitivityAgent, hook,
                            lambda self, kept=kept: np.array([4e-4]) if self.agent_id == 1 else kept(self))
    guarded = simulate(scenario, compare_centralized=False)
    assert guarded.fallback_input[:, 1].all() and guarded.failures()["safety_inputs"] > 0
    assert np.max(guarded.x[:, 1]) <= 0.6 + 1e-5 and guarded.failures()["worst_fallback_state_margin"] > -1e-5
    monkeypatch.setattr(sensitivity.SensitivityAgent, "one_step_model", lambda self, own_state=None: None)
    held = simulate(scenario, compare_centralized=False)
    assert np.max(held.x[:, 1]) > 0.6 + 1e-2 and held.failures()["safety_inputs"] == 0


def _failed(solution):
    import dataclasses

    return dataclasses.replace(solution, w=np.full_like(solution.w, np.nan), ok=False, status="injected")


@pytest.mark.parametrize("algorithm", ["jacobi", "gauss_seidel", "noncooperative", "admm"])
def test_the_linear_agents_one_step_model_is_the_prediction_of_their_own_plan(algorithm) -> None:
    """What the guard keeps inside X_i is what the agent announced: x_i(1) of its plan at the planned input."""
    from dmpc_ros.coordination.base import StoppingRule
    from dmpc_ros.scenarios import load_scenario

    scenario = load_scenario("mass_spring").with_overrides(algorithm=algorithm)
    design, x = scenario.design(), np.asarray(scenario.initial_state, float)
    system = design.system
    agents = design.agents(algorithm, StoppingRule(max_iterations=3))
    plans = {a.agent_id: a.begin_step(0, x[system.state_slice(a.agent_id)], {}) for a in agents}
    for _ in range(3):
        plans = {a.agent_id: a.iterate(plans) for a in agents}
    for a in agents:
        model = a.one_step_model()
        assert np.allclose(model.predict(a.planned_input()), plans[a.agent_id].states[1], atol=1e-9)
        assert np.allclose(model.jacobian(a.planned_input()), system.B[a.agent_id][a.agent_id])


def test_the_status_message_carries_the_safety_source_and_the_margin() -> None:
    """AgentStatus.input_source 4 (INPUT_SAFETY) and the safety counters by name, as every scheme's counters."""
    from types import SimpleNamespace

    from builtin_interfaces.msg import Time

    from dmpc_ros.ros.conversions import status_message

    stats = StepStatistics(input_source="safety")
    record_safety(stats, [InputGuard(PolytopicConstraint.box(np.array([-1.0]), np.array([1.0])), None,
                                     PolytopicConstraint.box(np.array([-1.0]), np.array([1.0])))
                          .decide(np.array([0.5]), None, None, AffineStep(np.eye(1), np.array([0.9])))])
    message = status_message(0, 3, stats, SimpleNamespace(cost=1.0), 0.0, Time(sec=1), messages_missing=0)
    assert message.input_source == INPUT_SOURCES.index("safety") == 4
    values = dict(zip(message.counter_names, message.counter_values))
    assert values["safety_inputs"] == 1 and values["checked_fallbacks"] == 1 and values["fallback_state_margin"] > 0
