"""Stress system: three exothermic CSTRs in series with a recycle from the last to the first, after the
reactor cascades of Stewart, Venkat, Rawlings, Wright & Pannocchia (2010), "Cooperative distributed model
predictive control", Systems & Control Letters 59(8), and of Liu, Chen, Muñoz de la Peña & Christofides (2010),
"Sequential and iterative architectures for distributed model predictive control of nonlinear process systems",
AIChE J. 56(8); each reactor is the dimensionless first-order exothermic CSTR of Uppal, Ray & Poore (1974)
(Chem. Eng. Sci. 29), Da = 0.072, γ = 20, B = 8, β = 0.3.

Units: dimensionless (conversion x1 ∈ [0, 1], temperature x2 = γ (T − T_f)/T_f, jacket temperature u, time in
residence times V/F of the fresh feed). Reactor i (one agent, jacket temperature u_i), throughput (1 + r) F, recycle
ratio r = 0.5 from reactor 3 to reactor 1:
    ẋ1_i = (1 + r)(x1_in − x1_i) + Da (1 − x1_i) e(x2_i),     e(x2) = exp(x2 / (1 + x2/γ))
    ẋ2_i = (1 + r)(x2_in − x2_i) + B Da (1 − x1_i) e(x2_i) − β (x2_i − u_i)
inlets: reactor i − 1 for i = 2, 3; reactor 1: (fresh feed (0, 0) + r · reactor 3) / (1 + r).
Limits: x2_i ≤ 4.5 (thermal runaway), u_i ∈ [−2, 2].
Large setpoint move: from the low-conversion steady state (x2 = 0.3, 0.5, 0.7) to the high-conversion one
(x2 = 2.5, 3.5, 4.0; conversions and jacket temperatures from the steady state), across the ignition point of the
Arrhenius term; the last reactor's target is 0.5 below the runaway limit.
What makes it hard: stiff exponential kinetics (the Jacobian grows 30-fold along the move), open-loop unstable
target steady states, a recycle that closes the chain into a loop (reactor 1 depends on reactor 3), jackets at
their limits during ignition, a temperature limit close to the target.
"""
from __future__ import annotations

import casadi as ca
import numpy as np
from scipy.optimize import fsolve

import dmpc_ros as dmpc

DAMKOHLER, GAMMA, HEAT, COOLING, RECYCLE = 0.072, 20.0, 8.0, 0.3, 0.5
RUNAWAY, JACKET = 4.5, 2.0
START, TARGET = (0.3, 0.5, 0.7), (2.5, 3.5, 4.0)       # x2 of each reactor


def _rate(x):
    return DAMKOHLER * (1 - x[0]) * ca.exp(x[1] / (1 + x[1] / GAMMA))


def _reactor(x, u):
    through = 1 + RECYCLE
    return ca.vertcat(-through * x[0] + _rate(x), -through * x[1] + HEAT * _rate(x) - COOLING * (x[1] - u[0]))


def _series_inlet(x, u, x_j, u_j):
    return (1 + RECYCLE) * ca.vertcat(x_j[0], x_j[1])


def _recycle_inlet(x, u, x_j, u_j):
    return RECYCLE * ca.vertcat(x_j[0], x_j[1])


def steady_state(temperatures: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Conversions and jacket temperatures that hold the reactors at the given x2 (stacked x, u)."""
    def residual(z):
        x1, u = z[:3], z[3:]
        x = np.column_stack([x1, temperatures])
        inlet = [RECYCLE * x[2], (1 + RECYCLE) * x[0], (1 + RECYCLE) * x[1]]
        return np.concatenate([np.ravel(np.array(_reactor(x[i], [u[i]]), float)) + inlet[i] for i in range(3)])
    z = fsolve(residual, np.concatenate([np.full(3, 0.5), np.array(temperatures)]), xtol=1e-10)
    return np.column_stack([z[:3], temperatures]).ravel(), z[3:]


def scenario() -> dmpc.Scenario:
    agents = tuple(dmpc.NonlinearSubsystem(f"reactor_{i + 1}", (f"x1_{i + 1}", f"x2_{i + 1}"), (f"u_{i + 1}",),
                                           _reactor, [0.0, -2.0], [1.0, RUNAWAY], [-JACKET], [JACKET],
                                           state_units=("1", "1"), input_units=("1",))
                   for i in range(3))
    couplings = (dmpc.NeighbourCoupling(1, 0, dynamics=_series_inlet),
                 dmpc.NeighbourCoupling(2, 1, dynamics=_series_inlet),
                 dmpc.NeighbourCoupling(0, 2, dynamics=_recycle_inlet))
    x_target, u_target = steady_state(TARGET)
    x_start, _ = steady_state(START)
    network = dmpc.NonlinearNetwork(agents, couplings, sample_time=0.1,
                                    state_weights=(np.diag([10.0, 1.0]),) * 3, input_weights=(0.1 * np.eye(1),) * 3,
                                    setpoints=(dmpc.NonlinearSetpoint(0.0, x_target, u_target),), substeps=4)
    return dmpc.scenario(network, name="stress_cstr_cascade",
                         description="3 exothermic CSTRs with recycle, ignition to high conversion near runaway",
                         controller={"algorithm": "sensitivity", "horizon": 15, "max_iterations": 15,
                                     "tolerance": 1e-6, "nonlinear": {"method": "sqp"}, "admm": {"penalty": 10.0}},
                         simulation={"steps": 30, "initial_state": x_start.reshape(3, 2).tolist()})
