"""Models: exact ZOH against closed forms, the mass-spring chain's structure, coupling graph."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dmpc_ros.models import PolytopicConstraint, discretize_zoh, mass_spring_chain
from dmpc_ros.models.mass_spring import MassSpringChain


def test_zoh_of_double_integrator_matches_closed_form() -> None:
    T, mass = 0.25, 2.0
    A, B = discretize_zoh(np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.0], [1.0 / mass]]), T)
    np.testing.assert_allclose(A, [[1.0, T], [0.0, 1.0]], atol=1e-14)
    np.testing.assert_allclose(B, [[T**2 / (2 * mass)], [T / mass]], atol=1e-14)


def test_zoh_of_chain_matches_ode_integration() -> None:
    """One sample of the discrete chain equals integrating the ODE with the input held constant."""
    chain = mass_spring_chain(3, mass=1.3, spring=2.0, damper=0.3)
    Ac, Bc = chain.continuous()
    system = chain.discrete(0.1, coupling_tolerance=0.0)
    x0, u = np.array([0.3, -0.1, -0.2, 0.4, 0.1, 0.0]), np.array([0.5, -1.0, 0.25])
    exact = solve_ivp(lambda t, x: Ac @ x + Bc @ u, (0.0, 0.1), x0, rtol=1e-12, atol=1e-14).y[:, -1]
    np.testing.assert_allclose(system.step(x0, u), exact, atol=1e-10)


def test_chain_forces_balance() -> None:
    """Springs and dampers only exchange forces: with no wall springs the total momentum rate is Σ u."""
    chain = MassSpringChain(mass=(1.0, 2.0, 3.0), spring_to_next=(1.0, 4.0, 0.0), damper_to_next=(0.5, 0.2, 0.0),
                            spring_to_wall=(0.0,) * 3, damper_to_wall=(0.0,) * 3, force_limit=(1.0,) * 3,
                            position_limit=(1.0,) * 3, velocity_limit=(1.0,) * 3)
    Ac, Bc = chain.continuous()
    momentum = np.array([0.0, 1.0, 0.0, 2.0, 0.0, 3.0])  # p = Σ m_i v_i
    np.testing.assert_allclose(momentum @ Ac, 0.0, atol=1e-12)
    np.testing.assert_allclose(momentum @ Bc, [1.0, 1.0, 1.0], atol=1e-12)


def test_coupling_graph_follows_tolerance() -> None:
    chain = mass_spring_chain(6)
    physical = chain.discrete(0.1, coupling_tolerance=1e-3)
    assert [physical.dynamic_neighbours(i) for i in (0, 3, 5)] == [(1,), (2, 4), (4,)]
    exact = chain.discrete(0.1, coupling_tolerance=0.0)
    assert exact.dynamic_neighbours(0) == (1, 2, 3, 4, 5)  # exact ZOH couples everyone (weakly)


def test_box_constraint_rows_and_violation() -> None:
    box = PolytopicConstraint.box(np.array([-1.0, -np.inf]), np.array([2.0, 3.0]))
    assert box.H.shape == (3, 2)
    assert box.violation(np.array([0.0, 0.0])) == 0.0
    assert box.violation(np.array([2.5, -100.0])) == pytest.approx(0.5)
