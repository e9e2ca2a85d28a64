"""Two pendulums joined by a torsion spring, written by a user in CasADi and run by sensitivity-based nonlinear DMPC
(the README's "A nonlinear system in Python"). Run: .venv/bin/python examples/pendulum_pair_api.py

    dmpc sim examples/pendulum_pair_api.py:scenario            # the same, from the command line
    dmpc run examples/pendulum_pair_api.py:scenario --steps 10 # over ROS 2, one process per pendulum
"""
from __future__ import annotations

import casadi as ca
import numpy as np

import dmpc_ros as dmpc

GRAVITY_OVER_LENGTH = 9.81 / 0.5   # g / l [1/s²]
DAMPING = 0.3                      # [1/s]
SPRING = 2.0                       # torsion spring between the two arms [1/s²]


def arm(x, u):
    """θ̈ = −(g/l) sin θ − c θ̇ + τ (τ: torque per inertia [1/s²])."""
    return ca.vertcat(x[1], -GRAVITY_OVER_LENGTH * ca.sin(x[0]) - DAMPING * x[1] + u[0])


def torsion(x, u, x_j, u_j):
    """The neighbour's pull through the spring, in the own angular acceleration."""
    return ca.vertcat(0, SPRING * ca.sin(x_j[0] - x[0]))


def scenario() -> dmpc.Scenario:
    arms = tuple(dmpc.NonlinearSubsystem(f"arm_{i}", (f"theta_{i}", f"omega_{i}"), (f"tau_{i}",), arm,
                                         state_lower=[-np.pi, -8.0], state_upper=[np.pi, 8.0],
                                         input_lower=[-6.0], input_upper=[6.0],
                                         state_units=("rad", "rad/s"), input_units=("1/s²",))
                 for i in range(2))
    network = dmpc.NonlinearNetwork(
        arms, (dmpc.NeighbourCoupling(0, 1, dynamics=torsion), dmpc.NeighbourCoupling(1, 0, dynamics=torsion)),
        sample_time=0.05, state_weights=(np.diag([20.0, 0.5]),) * 2, input_weights=(0.05 * np.eye(1),) * 2,
        setpoints=(dmpc.NonlinearSetpoint(0.0, np.zeros(4), np.zeros(2)),))
    return dmpc.scenario(network, name="pendulum_pair",
                         controller={"algorithm": "sensitivity", "horizon": 20, "max_iterations": 20,
                                     "tolerance": 1e-6, "nonlinear": {"method": "sqp"}},
                         simulation={"steps": 60, "initial_state": [[2.0, 0.0], [-1.0, 1.0]]})


if __name__ == "__main__":
    base = scenario()
    result = dmpc.simulate(base)
    centralized = dmpc.reference(base)
    dmpc.save(result, base, "runs/pendulum_pair", centralized)
    print(f"final angles {np.round(result.x[-1, [0, 2]], 4)} rad; largest input {np.abs(result.u).max():.2f}")
