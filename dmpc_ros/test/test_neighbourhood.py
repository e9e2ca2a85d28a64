"""Agents that stay local: the neighbourhood block equals the plant-wide block, its size does not grow with the plant,
and the plant-wide helpers the drivers use (sparse prediction, doubling DARE) match their dense references."""
from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import solve_discrete_are

from dmpc_ros.coordination import ControllerDesign
from dmpc_ros.coordination.plan import Plan
from dmpc_ros.models import mass_spring_chain
from dmpc_ros.mpc.neighbourhood import reached_states
from dmpc_ros.mpc.reference import ReferenceTrajectory
from dmpc_ros.mpc.terminal import doubling_dare


@cache
def chain_design(M: int, horizon: int) -> ControllerDesign:
    chain = mass_spring_chain(M, damper=0.2, force_limit=1.0, position_limit=1.0, velocity_limit=0.8)
    return ControllerDesign(chain.discrete(0.1, coupling_tolerance=1e-6), np.eye(2 * M), 0.1 * np.eye(M), horizon,
                            ReferenceTrajectory.constant(np.zeros(2 * M), np.zeros(M)))


@cache
def condensed(M: int, horizon: int):
    return chain_design(M, horizon).condensed()


@settings(max_examples=10, deadline=None)
@given(agent=st.integers(0, 79), seed=st.integers(0, 2 ** 31))
def test_local_block_equals_the_plant_wide_block(agent: int, seed: int) -> None:
    """On an 80-mass chain (N = 6, so the view is a neighbourhood, not the plant) the local block's Hessian, linear
    term and constraint bounds at a random view equal the plant-wide condensed block's to 1e-9 (relative)."""
    design = chain_design(80, 6)
    problem = condensed(80, 6)
    block = design.block(agent, "plant", "affected", "daqp")
    assert len(block.network.members) < 80
    own = problem.input_indices(agent)
    np.testing.assert_allclose(block.H_ii, problem.H[np.ix_(own, own)], rtol=1e-9, atol=1e-9 * np.abs(problem.H).max())
    rng = np.random.default_rng(seed)
    x0, U = rng.uniform(-0.5, 0.5, problem.system.n_x), rng.uniform(-1, 1, problem.H.shape[0])
    local_x0 = x0[block.network.state_index]
    local_U = U.reshape(6, -1)[:, block.network.input_index].ravel()
    others = np.setdiff1d(np.arange(U.size), own)
    q_plant = problem.F[own] @ x0 + problem.reference_offset(0)[own] + problem.H[np.ix_(own, others)] @ U[others]
    captured = {}
    block.qp.solve = lambda q, lower, upper, warm_start=None: captured.update(q=q, upper=upper)
    block.solve(local_x0, local_U)
    np.testing.assert_allclose(captured["q"], q_plant, rtol=1e-9, atol=1e-9 * (1 + np.abs(q_plant).max()))
    # every plant-wide row the own inputs affect appears with the same bound
    C_own = problem.C[:, own]
    rows = np.flatnonzero(np.max(np.abs(C_own), axis=1) > 1e-9)
    upper_plant = problem.d0[rows] + problem.D[rows] @ x0 - problem.C[rows][:, others] @ U[others]
    for row, bound in zip(C_own[rows], upper_plant):
        match = np.flatnonzero(np.all(np.abs(block._C - row) <= 1e-9 * (1 + np.abs(row).max()), axis=1))
        assert match.size and np.min(np.abs(captured["upper"][match] - bound)) <= 1e-8 * (1 + abs(bound))


def test_the_view_does_not_grow_with_the_plant() -> None:
    """The middle agent's view and rows are the same on a 60- and a 240-mass chain (N = 10)."""
    sizes = []
    for M in (60, 240):
        block = chain_design(M, 10).block(M // 2, "plant", "affected", "daqp")
        sizes.append((len(block.network.members), block._h.size, block.G.shape))
    assert sizes[0] == sizes[1] and sizes[0][0] < 60


def test_reach_grows_with_the_horizon_not_the_plant() -> None:
    system = chain_design(200, 4).system
    reach = [reached_states(system, 100, N).size for N in (2, 4, 8)]
    assert reach[0] < reach[1] < reach[2] < 200


@pytest.mark.parametrize("seed", [0, 1])
def test_doubling_dare_matches_the_qz_solution(seed: int) -> None:
    """The doubling algorithm (used above 300 states) gives scipy's stabilizing solution, also for unstable A."""
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(30, 30)) / 3.0, rng.normal(size=(30, 4))
    Q, R = np.eye(30), np.diag(rng.uniform(0.5, 2.0, 4))
    assert np.max(np.abs(np.linalg.eigvals(A))) > 1.0
    reference = solve_discrete_are(A, B, Q, R)
    np.testing.assert_allclose(doubling_dare(A, B, Q, R), reference, rtol=1e-9, atol=1e-9 * np.abs(reference).max())


def test_plant_prediction_equals_the_condensed_one() -> None:
    design = chain_design(12, 8)
    rng = np.random.default_rng(3)
    x0, U = rng.normal(size=24), rng.normal(size=8 * 12)
    np.testing.assert_allclose(design.prediction.predict(x0, U), design.condensed().predict(x0, U), atol=1e-12)
    assert design.prediction.cost_value(x0, U) == pytest.approx(design.condensed().cost_value(x0, U), rel=1e-12)


def test_a_plan_with_nan_or_inf_is_not_finite() -> None:
    plan = Plan(0, 0, 0, np.zeros((3, 2)), np.zeros((2, 1)), 0.0, True, False, False)
    assert plan.finite
    for bad in (np.nan, np.inf):
        states = np.zeros((3, 2))
        states[1, 1] = bad
        assert not Plan(0, 0, 0, states, np.zeros((2, 1)), 0.0, True, False, False).finite
    assert not Plan(0, 0, 0, np.zeros((3, 2)), np.zeros((2, 1)), 0.0, True, False, False,
                    data={"z": np.array([np.nan])}).finite
