"""The matrix-free Jacobi step bound (mpc/parallel_step_sparse.py) against the dense one on random chains and
platoons (hypothesis): the same curvature within its margin, structure counts never smaller, so a step never
larger; the Hessian operator and blocks against the dense condensed H; large plants use it and keep the
guarantees."""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from test_cooperative import chains, check_guarantees, design_for, platoons

from dmpc_ros.models import mass_spring_chain
from dmpc_ros.mpc.parallel_step_sparse import (CURVATURE_MARGIN, HessianOperator, block_hessian, dense_step_bound,
                                               matrix_free_bounds)
from dmpc_ros.mpc.neighbourhood import reached_states


def sparse_and_dense(design):
    cost = design.shared_cost
    return (matrix_free_bounds(design.system, design.horizon, cost.Q, cost.R, cost.P, design.terminal_set),
            design.condensed().parallel_step)


def check_against_dense(design) -> None:
    free, dense = sparse_and_dense(design)
    assert dense.curvature <= free.curvature <= dense.curvature * (1 + 2 * CURVATURE_MARGIN) + 1e-9
    assert free.widest_row >= dense.widest_row and free.widest_state >= dense.widest_state
    for per_step in (False, True):
        assert free.weight(per_step) <= dense.weight(per_step) * (1 + 1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chains())
def test_chains_get_the_dense_curvature_and_no_larger_step(case) -> None:
    chain, _ = case
    check_against_dense(design_for(chain))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=platoons())
def test_platoons_get_the_dense_curvature_and_no_larger_step(case) -> None:
    design, _ = case
    check_against_dense(design)


def test_operator_and_blocks_equal_the_dense_hessian() -> None:
    """H v by simulation and adjoint, and each agent's H_ii from its reached states, equal the condensed H."""
    chain = mass_spring_chain(6, mass=1.0, spring=1.0, damper=0.2, force_limit=1.0, position_limit=1.0,
                              velocity_limit=0.8)
    design = design_for(chain, horizon=8)
    problem, cost = design.condensed(), design.shared_cost
    rng = np.random.default_rng(0)
    v = rng.normal(size=problem.H.shape[0])
    operator = HessianOperator(design.system, design.horizon, cost.Q, cost.R, cost.P)
    np.testing.assert_allclose(operator.apply(v), problem.H @ v, rtol=1e-10, atol=1e-10)
    for i in range(design.system.num_agents):
        block = problem.input_indices(i)
        H_ii = block_hessian(design.system, design.horizon, cost.Q, cost.R, cost.P, i,
                             reached_states(design.system, i, design.horizon))
        np.testing.assert_allclose(H_ii, problem.H[np.ix_(block, block)], rtol=1e-9, atol=1e-9)


def test_large_plants_take_the_matrix_free_path_and_keep_the_guarantees(monkeypatch) -> None:
    """Above DENSE_STEP_INPUTS the design's bound is matrix-free (forced here on a small chain, where the dense one
    is there to compare): Jacobi with it keeps every iterate feasible and the cost non-increasing."""
    from dmpc_ros.mpc import parallel_step_sparse

    chain = mass_spring_chain(8, mass=1.0, spring=1.0, damper=0.2, force_limit=0.3, position_limit=1.0,
                              velocity_limit=0.8)
    design = design_for(chain)
    monkeypatch.setattr(parallel_step_sparse, "DENSE_STEP_INPUTS", 0)
    assert not dense_step_bound(design.system, design.horizon)
    fresh = dataclasses.replace(design)   # a new design object: its cached bound is computed again
    free, dense = fresh.parallel_step, design.condensed().parallel_step
    assert abs(free.curvature / dense.curvature - 1) < 2 * CURVATURE_MARGIN
    x0 = np.tile([0.6, 0.0], 8) * np.resize([1, -1], 16)
    check_guarantees(fresh, x0, "jacobi")
