"""Stress system: a reach of a hydro-power valley, three dams in cascade, after the HD-MPC hydro power valley
benchmark (Savorgnan & Diehl (2011), "Control benchmark of a hydro-power plant", HD-MPC project deliverable;
Savorgnan, Romani, Kozma & Diehl (2011), "Multiple shooting for distributed systems with applications in hydro
electricity production", J. Process Control 21(5)), its river reaches reduced to first-order transport lags.

Units: levels m (deviation from the nominal operating level), flows m³/s, time s. Dam i (one agent, turbine flow
u_i) owns its reservoir and the reach that feeds it from dam i − 1:
    τ_i ṙ_i = u_{i−1} − r_i    (the upstream turbine's release arriving through the reach, i ≥ 2)
    S_i ḣ_i = r_i − u_i        (dam 1: S_1 ḣ_1 = −u_1, its inflow is the river's)
τ = 900, 1200 s; reservoir surfaces S = 2·10⁵, 1.2·10⁵, 0.8·10⁵ m² (the last one small: it fills fastest).
Load step: a spring flood raised the river's inflow by 30 m³/s and the operator passes that much more through
every turbine. As in examples/power_system_api.py the step is modelled as the initial offset from the new
equilibrium: flows are deviations from it, the flood wave is still in the reaches (r_2 = r_3 = +25 m³/s above the new
flow at t = 0) and the levels, at 0.30, 0.35, 0.42 m, are to be drawn down to −0.2 m to make room.
Limits: turbine flows u_i ∈ [−90, +10] m³/s around the new flow (the turbines run near full gate: +10 is all the
spare), levels |h_i| ≤ 0.5 m. Dam 3 cannot pass the wave arriving in its reach with 10 m³/s of spare: its level,
filled by its neighbour's turbine, reaches its upper limit unless dam 2 holds water back (its own level rising).
What makes it hard: integrating reservoirs, a neighbour-driven state limit (agent i's level is driven by agent
i−1's input through the reach), actuators at their limits, transport lags longer than the sample time.
"""
from __future__ import annotations

import numpy as np

import dmpc_ros as dmpc

LAGS = (0.0, 900.0, 1200.0)            # reach time constants τ_i [s] (dam 1 has no reach)
SURFACES = (2.0e5, 1.2e5, 0.8e5)        # reservoir surfaces S_i [m²]
FLOW = (-90.0, 10.0)                    # turbine flow limits around the new equilibrium flow [m³/s]
LEVEL = 0.5                             # |h_i| [m]
TARGET_LEVEL = -0.2                     # the level to hold after the flood [m]
START_LEVELS = (0.30, 0.35, 0.42)       # [m]
WAVE = 25.0                             # flood wave in the reaches above the new flow at t = 0 [m³/s]


def _dam(i: int) -> dmpc.LinearAgent:
    surface, level = SURFACES[i], dmpc.PolytopicConstraint.box(np.array([-LEVEL]), np.array([LEVEL]))
    if i == 0:                                   # (h_1)
        A, B, couplings, names, units = np.zeros((1, 1)), np.array([[-1.0 / surface]]), {}, ["h"], ["m"]
        setpoint, limits = [TARGET_LEVEL], level
    else:                                        # (r_i, h_i): the reach is driven by the upstream turbine
        tau = LAGS[i]
        A = np.array([[-1.0 / tau, 0.0], [1.0 / surface, 0.0]])
        B = np.array([[0.0], [-1.0 / surface]])
        couplings = {f"dam_{i}": dmpc.Coupling(B=np.array([[1.0 / tau], [0.0]]))}
        names, units, setpoint = ["r", "h"], ["m³/s", "m"], [0.0, TARGET_LEVEL]
        limits = dmpc.PolytopicConstraint.box(np.array([-np.inf, -LEVEL]), np.array([np.inf, LEVEL]))
    Q = np.diag([0.0] * (len(names) - 1) + [1000.0])
    return dmpc.LinearAgent(
        name=f"dam_{i + 1}", A=A, B=B, couplings=couplings, Q=Q, R=0.01 * np.eye(1), state_constraint=limits,
        input_constraint=dmpc.PolytopicConstraint.box(np.array([FLOW[0]]), np.array([FLOW[1]])),
        state_names=tuple(f"{n}_{i + 1}" for n in names), input_names=(f"q_{i + 1}",), state_units=tuple(units),
        input_units=("m³/s",), setpoints=(dmpc.Setpoint(0.0, np.array(setpoint), np.zeros(1)),))


def scenario() -> dmpc.Scenario:
    x0 = [[START_LEVELS[0]], [WAVE, START_LEVELS[1]], [WAVE, START_LEVELS[2]]]
    network = dmpc.LinearNetwork([_dam(i) for i in range(len(LAGS))], sample_time=120.0, time="continuous")
    return dmpc.scenario(network, name="stress_hydro_valley",
                         description="3 dams in cascade, flood and production step, levels against their limits",
                         controller={"algorithm": "jacobi", "horizon": 25, "max_iterations": 20, "tolerance": 1e-6,
                                     "admm": {"penalty": 3.0}},
                         simulation={"steps": 90, "initial_state": x0})
