"""Stress system: four building zones sharing one air-handling unit, after Ma, Anderson & Borrelli (2011),
"A distributed predictive control approach to building temperature regulation", American Control Conference
(RC zone models coupled through walls, a supply capacity shared by the zones), with a morning warm-up.

Units: temperatures K (deviation from the night set-back equilibrium, 17 °C), heat flows kW, time s. Zone i (one
agent, heating power u_i from the shared supply), air and wall temperatures (T_i, W_i):
    C_i Ṫ_i = (W_i − T_i)/R_w + Σ_j (T_j − T_i)/R_ij − T_i/R_o + u_i,     C_w Ẇ_i = (T_i − W_i)/R_w
Zones 1–2–3–4 in a ring (each shares a wall with two others); C_i = 2000, 1500, 2500, 1800 kJ/K, C_w = 8000 kJ/K,
R_w = 2 K/kW, R_ij = 0.5 K/kW (thin partitions: strong coupling), R_o = 4 K/kW.
Limits: 0 ≤ u_i ≤ 8 kW above the night load (the zone's damper wide open), the shared supply Σ_i u_i ≤ 16 kW
(less than the 4 × 8 the zones could take: at warm-up the capacity binds), T_i ≤ 5.5 K (22.5 °C, overheating).
Large setpoint move: at t = 0 every zone must go from the set-back 17 °C to 21 °C (T_i = W_i = 4 K; the steady
heating, 1 kW per zone, is far below the limits, but getting there takes the full supply for the first hour).
What makes it hard: a shared input constraint (admm, noncooperative and decentralized refuse it at load), slow
wall states (time constants of
hours next to the air's minutes), strong coupling through the partitions, the supply at its limit.
"""
from __future__ import annotations

import numpy as np

import dmpc_ros as dmpc

AIR = (2000.0, 1500.0, 2500.0, 1800.0)        # C_i [kJ/K]
WALL, R_WALL, R_PARTITION, R_OUT = 8000.0, 2.0, 0.5, 4.0   # [kJ/K], [K/kW], [K/kW], [K/kW]
HEAT, SUPPLY, OVERHEAT, TARGET = 8.0, 16.0, 5.5, 4.0       # [kW], [kW], [K], [K]


def _zone(i: int) -> dmpc.LinearAgent:
    c = AIR[i]
    neighbours = [(i - 1) % len(AIR), (i + 1) % len(AIR)]
    A = np.array([[-(1.0 / R_WALL + len(neighbours) / R_PARTITION + 1.0 / R_OUT) / c, 1.0 / (R_WALL * c)],
                  [1.0 / (R_WALL * WALL), -1.0 / (R_WALL * WALL)]])
    B = np.array([[1.0 / c], [0.0]])
    partition = dmpc.Coupling(A=np.array([[1.0 / (R_PARTITION * c), 0.0], [0.0, 0.0]]))
    return dmpc.LinearAgent(
        name=f"zone_{i + 1}", A=A, B=B, couplings={f"zone_{j + 1}": partition for j in neighbours},
        Q=np.diag([10.0, 0.0]), R=0.05 * np.eye(1),
        state_constraint=dmpc.PolytopicConstraint.box(np.array([-np.inf, -np.inf]), np.array([OVERHEAT, np.inf])),
        input_constraint=dmpc.PolytopicConstraint.box(np.zeros(1), np.array([HEAT])),
        state_names=(f"T_{i + 1}", f"W_{i + 1}"), input_names=(f"q_{i + 1}",), state_units=("K", "K"),
        input_units=("kW",), setpoints=(dmpc.Setpoint(0.0, np.array([TARGET, TARGET])),))


def scenario() -> dmpc.Scenario:
    M = len(AIR)
    network = dmpc.LinearNetwork([_zone(i) for i in range(M)], sample_time=300.0, time="continuous",
                                 shared_input_constraint=dmpc.PolytopicConstraint(np.ones((1, M)), np.array([SUPPLY])))
    return dmpc.scenario(network, name="stress_hvac_zones",
                         description="4 zones in a ring, shared supply at its limit during a morning warm-up",
                         controller={"algorithm": "jacobi", "horizon": 24, "max_iterations": 20, "tolerance": 1e-6,
                                     "admm": {"penalty": 3.0}},
                         simulation={"steps": 96, "initial_state": [[0.0, 0.0]] * M})
