"""Never unsafe, never silent: whatever a solver returns, an applied input is finite and inside U_i, and every
failure is counted. A scenario without a solution ends a strict run with exit code 3."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import clarabel
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import dmpc_ros as dmpc
from scenario_edit import edited
from dmpc_ros.api import simulate
from dmpc_ros.coordination.safe_input import InputGuard
from dmpc_ros.models.linear import MixedConstraint, PolytopicConstraint
from dmpc_ros.mpc.qp import DenseQP, QPSolution
from dmpc_ros.mpc.qp_backends import QPResult
from dmpc_ros.mpc.qp_backends import daqp as daqp_backend
from dmpc_ros.scenarios import load_scenario

GARBAGE = (np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0, 1e6)


def inside(u: np.ndarray, constraint: PolytopicConstraint) -> bool:
    return bool(np.all(constraint.H @ u <= constraint.h + 1e-9 * (1.0 + np.abs(constraint.h))))


def vectors(size: int):
    """Finite values, huge values, NaN and inf: what a broken solver may hand over."""
    entry = st.one_of(st.floats(-10, 10), st.sampled_from(GARBAGE))
    return st.one_of(st.none(), st.lists(entry, min_size=size, max_size=size).map(np.array))


@st.composite
def input_sets(draw):
    """A random bounded polytope in 1–3 dimensions (a box or general rows around a centre), optional mixed rows."""
    size = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    centre = rng.uniform(-2, 2, size)
    if draw(st.booleans()):
        low, high = centre - rng.uniform(0.01, 3, size), centre + rng.uniform(0.01, 3, size)
        constraint = PolytopicConstraint.box(low, high)
    else:
        H = np.vstack([rng.normal(size=(draw(st.integers(size + 1, 8)), size)), np.eye(size), -np.eye(size)])
        constraint = PolytopicConstraint(H, H @ centre + rng.uniform(0.01, 2, H.shape[0]))
    mixed = None
    if draw(st.booleans()):
        rows = draw(st.integers(1, 3))
        mixed = MixedConstraint(rng.normal(size=(rows, 2)), rng.normal(size=(rows, size)), rng.uniform(-1, 2, rows))
    return constraint, mixed, draw(vectors(size)), draw(vectors(size)), rng.normal(size=2) * 3


@settings(max_examples=300, deadline=None)
@given(input_sets())
def test_the_guard_returns_a_finite_input_inside_the_set_whatever_it_is_given(case) -> None:
    constraint, mixed, planned, candidate, state = case
    guard = InputGuard(constraint, mixed)
    u, rule = guard.apply(planned, candidate, state)
    assert u.shape == (constraint.H.shape[1],) and np.all(np.isfinite(u))
    assert inside(u, constraint), (u, rule)
    if mixed is not None:
        H, h = guard.rows(state)
        nonempty = linprog(np.zeros(u.size), A_ub=H, b_ub=h, bounds=[(None, None)] * u.size).status == 0
        if nonempty:   # the mixed rows at the measured state hold too whenever they can
            assert np.all(H @ u <= h + 1e-9 * (1.0 + np.abs(h))), (u, rule)
    if planned is not None and np.all(np.isfinite(planned)) and inside(planned, constraint) and mixed is None:
        assert rule == "plan" and np.array_equal(u, planned)   # a good plan is applied unchanged


def random_chain(seed: int, agents: int) -> dmpc.LinearNetwork:
    """Masses on springs with random stiffness, damping, mass and force limits (continuous time)."""
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(agents)]

    def cart(i: int) -> dmpc.LinearAgent:
        k, c, m, limit = rng.uniform(0.2, 3), rng.uniform(0.0, 1), rng.uniform(0.5, 3), rng.uniform(0.1, 2)
        couplings = {names[j]: dmpc.Coupling(A=[[0.0, 0.0], [rng.uniform(0.1, 1) / m, 0.0]])
                     for j in (i - 1, i + 1) if 0 <= j < agents}
        return dmpc.LinearAgent(names[i], A=[[0.0, 1.0], [-k / m, -c / m]], B=[[0.0], [1.0 / m]], couplings=couplings,
                                Q=np.diag([10.0, 1.0]), R=[[0.1]],
                                input_constraint=PolytopicConstraint.box(np.array([-limit]), np.array([limit])),
                                state_constraint=PolytopicConstraint.box(np.array([-3.0, -3.0]), np.array([3.0, 3.0])),
                                state_names=(f"p{i}", f"v{i}"))
    return dmpc.LinearNetwork([cart(i) for i in range(agents)], sample_time=0.1, time="continuous")


class BrokenSolver:
    """Replaces the QP back ends' answers by garbage (NaN, inf, huge, random; claimed solved or not) at a rate."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rng, self.rate = np.random.default_rng(seed), rate

    def claimed(self, original):
        """DenseQP.solve itself broken (its own checks bypassed): garbage claimed as solved."""
        def solve(qp, *args, **kwargs):
            solution = original(qp, *args, **kwargs)
            if self.rng.random() < self.rate:
                z = self.rng.choice(np.array(GARBAGE + (3.0, -3.0)), size=qp.num_variables)
                return QPSolution(z, True, "solved", solution.solve_time, solution.iterations)
            return solution
        return solve

    def wrap(self, original):
        """A back end's dense model broken (DenseQP's checks in place)."""
        def solve(model, *args):
            result = original(model, *args)
            if self.rng.random() < self.rate:
                z = self.rng.choice(np.array(GARBAGE + (3.0, -3.0)), size=model.num_variables) \
                    * self.rng.uniform(0.5, 2, model.num_variables)
                ok = bool(self.rng.random() < 0.5)
                status = str(self.rng.choice(["solved", "primal infeasible", "iteration limit"]))
                return QPResult(z, ok, status, result.iterations, infeasible="primal infeasible" in status)
            return result
        return solve

    def clarabel(self, original):
        broken = self

        class Solver:   # Clarabel's solver class cannot be subclassed: wrap it
            def __init__(self, *args) -> None:
                self.inner = original(*args)

            def update(self, **changes) -> None:
                self.inner.update(**changes)

            def solve(self):
                result = self.inner.solve()
                if broken.rng.random() >= broken.rate:
                    return result
                return SimpleNamespace(status=str(broken.rng.choice(["Solved", "InsufficientProgress",
                                                                     "PrimalInfeasible"])),
                                       x=broken.rng.choice(np.array(GARBAGE), size=len(result.x)))
        return Solver


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")   # costs of 1e300 inputs claimed as solved
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), agents=st.integers(2, 3), rate=st.sampled_from([0.3, 1.0]),
       algorithm=st.sampled_from(["jacobi", "gauss_seidel", "noncooperative", "admm", "centralized"]),
       claimed=st.booleans())
def test_random_plants_with_garbage_solvers_never_apply_an_input_outside_the_set(monkeypatch, seed, agents, rate,
                                                                                 algorithm, claimed) -> None:
    """The QP back ends (or DenseQP itself, `claimed`) and Clarabel return garbage at a rate: the applied inputs
    stay finite and inside every U_i, and with every solve broken the failures are counted."""
    network = random_chain(seed, agents)
    x0 = np.random.default_rng(seed).uniform(-1, 1, 2 * agents)
    scenario = dmpc.scenario(network, name="random", controller={"algorithm": algorithm, "horizon": 8,
                                                                 "max_iterations": 4},
                             simulation={"steps": 6, "initial_state": x0})
    broken = BrokenSolver(seed, rate)
    with monkeypatch.context() as patch:   # per example (the fixture lives for the whole test)
        if claimed:
            patch.setattr(DenseQP, "solve", broken.claimed(DenseQP.solve))
        else:
            model = daqp_backend.ParametricModel
            patch.setattr(model, "solve", broken.wrap(model.solve))
        patch.setattr(clarabel, "DefaultSolver", broken.clarabel(clarabel.DefaultSolver))
        result = simulate(scenario)
    plant = scenario.plant()
    assert np.all(np.isfinite(result.u)) and np.all(np.isfinite(result.x))
    for k in range(result.steps):
        for i, sub in enumerate(plant.subsystems):
            assert inside(result.u[k, plant.input_slice(i)], sub.input_constraint), (k, i, result.u[k])
    assert np.all(np.isfinite(result.plan_inputs))   # no plan ever carried a NaN either
    failures = result.failures()
    if rate == 1.0 and not claimed:   # every solve broken: every failure counted, nothing silent
        assert failures["infeasible_problems"] + failures["solver_failures"] > 0
        assert failures["steps_on_fallback_input"] > 0


def infeasible_chain(tmp_path, **simulation):
    """mass_spring with a 0.1 N force limit and mass 0 at 0.9 m moving out at 0.7 m/s: it cannot stop before the
    1 m position limit, so no controller has a solution for the first 17 steps."""
    data = edited("mass_spring", **{"model.masses.force_limit": 0.1, "simulation.steps": 20,
                                    "simulation.initial_state": [[0.9, 0.7], [-0.5, 0.0], [0.4, 0.0], [-0.6, 0.0]]},
                  **{f"simulation.{key}": value for key, value in simulation.items()})
    path = tmp_path / "infeasible.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("algorithm", ["centralized", "jacobi", "gauss_seidel", "admm"])
def test_a_scenario_without_solution_is_reported_and_never_breaks_an_input_limit(tmp_path, algorithm) -> None:
    scenario = load_scenario(str(infeasible_chain(tmp_path))).with_overrides(algorithm=algorithm)
    result = simulate(scenario, compare_centralized=algorithm != "centralized")
    assert np.max(np.abs(result.u)) <= 0.1 + 1e-12   # the old centralized applied 0, the schemes the reference
    failures = result.failures()
    # the first steps have no solution (the safety filter's braking shortens that run: ADMM 9 steps, the others ≥ 10)
    assert failures["failed_steps"] >= 5 and failures["first_failed_step"] is not None
    assert result.warning() is not None
    summary = result.summary("infeasible", simulate(scenario.with_overrides(algorithm="centralized")))
    assert summary["closed_loop_cost_gap"] is None and summary["cost_gap_note"].startswith("not computed")


def test_strict_mode_ends_the_run_at_the_first_step_without_solution(tmp_path) -> None:
    path = infeasible_chain(tmp_path)
    run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(path), "--strict", "--output",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stderr
    assert "strict: step 0 applied a fallback input" in run.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["complete"] is False and summary["failures"]["failed_steps"] == 1
    scenario = load_scenario(str(infeasible_chain(tmp_path, strict=True)))   # the scenario field does the same
    assert scenario.strict and simulate(scenario).steps == 1
    assert simulate(load_scenario("mass_spring").with_overrides(strict=True, steps=20)).steps == 20   # solvable
