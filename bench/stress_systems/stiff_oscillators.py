"""Stress system: a chain of four masses on soft ground springs joined by stiff springs, a two-timescale oscillator
chain after the mass–spring–damper benchmark of Conte, Jones, Morari & Zeilinger (2016), "Distributed synthesis and
stability of cooperative distributed model predictive control for linear systems", Automatica 69, with the ratio of
coupling to ground stiffness raised to 400.

Units: positions m, velocities m/s, forces N, time s. Mass i (one agent, force u_i):
    m_i p̈_i = −k_g p_i − c_g ṗ_i + Σ_j [k_c (p_j − p_i) + c_c (ṗ_j − ṗ_i)] + u_i,   j ∈ {i − 1, i + 1}
m_i = 1, 1.5, 0.8, 1.2 kg; k_g = 1 N/m, c_g = 0.1 N s/m; k_c = 400 N/m, c_c = 0.2 N s/m.
The fast (relative) modes have periods down to 0.16 s, the slow (common) mode about 6 s: sampled at 0.05 s with exact
ZOH, the prediction matrices span three decades.
Limits: |u_i| ≤ 1.5 N, |p_i| ≤ 1.1 m, |ṗ_i| ≤ 0.6 m/s.
Large setpoint move: every mass from rest at 0 to rest at 1 m (steady force k_g = 1 N each, two thirds of the limit),
then back to 0.2 m at t = 5 s; the velocity limit binds during both moves.
What makes it hard: stiff dynamics and very strong coupling (each mass's motion is set by its neighbours' forces
as much as by its own), little spare force, a velocity limit that every agent's input moves.
"""
from __future__ import annotations

import numpy as np

import dmpc_ros as dmpc

MASSES = (1.0, 1.5, 0.8, 1.2)          # [kg]
GROUND = (1.0, 0.1)                    # k_g [N/m], c_g [N s/m]
LINK = (400.0, 0.2)                    # k_c [N/m], c_c [N s/m]
FORCE, POSITION, SPEED = 1.5, 1.1, 0.6  # limits [N], [m], [m/s]
MOVES = ((0.0, 1.0), (5.0, 0.2))       # (time [s], position of every mass [m])


def _mass(i: int) -> dmpc.LinearAgent:
    m, (kg, cg), (kc, cc) = MASSES[i], GROUND, LINK
    neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(MASSES)]
    links = len(neighbours)
    A = np.array([[0.0, 1.0], [-(kg + links * kc) / m, -(cg + links * cc) / m]])
    B = np.array([[0.0], [1.0 / m]])
    pull = dmpc.Coupling(A=np.array([[0.0, 0.0], [kc / m, cc / m]]))
    setpoints = tuple(dmpc.Setpoint(t, np.array([p, 0.0]), np.array([kg * p])) for t, p in MOVES)
    return dmpc.LinearAgent(
        name=f"mass_{i + 1}", A=A, B=B, couplings={f"mass_{j + 1}": pull for j in neighbours},
        Q=np.diag([50.0, 1.0]), R=0.1 * np.eye(1),
        state_constraint=dmpc.PolytopicConstraint.box(np.array([-POSITION, -SPEED]), np.array([POSITION, SPEED])),
        input_constraint=dmpc.PolytopicConstraint.box(np.array([-FORCE]), np.array([FORCE])),
        state_names=(f"p_{i + 1}", f"v_{i + 1}"), input_names=(f"F_{i + 1}",), state_units=("m", "m/s"),
        input_units=("N",), setpoints=setpoints)


def scenario() -> dmpc.Scenario:
    network = dmpc.LinearNetwork([_mass(i) for i in range(len(MASSES))], sample_time=0.05, time="continuous")
    return dmpc.scenario(network, name="stress_stiff_oscillators",
                         description="stiff two-timescale mass chain, 1 m moves against a velocity limit",
                         controller={"algorithm": "jacobi", "horizon": 30, "max_iterations": 20, "tolerance": 1e-6,
                                     "admm": {"penalty": 3.0}},
                         simulation={"steps": 200, "initial_state": [[0.0, 0.0]] * len(MASSES)})
