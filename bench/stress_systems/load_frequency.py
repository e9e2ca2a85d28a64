"""Stress system: three-area load-frequency control after Venkat, Hiskens, Rawlings & Wright (2008), "Distributed
MPC strategies with application to power system automatic generation control" (IEEE TCST 16(6)): areas in a line
with governor, turbine and tie lines, a large load step in area 1 and tight secondary-control limits, so the inputs
saturate for several seconds and the tie lines carry the load. The model is that of examples/power_system_api.py
(per-unit, time in s) with the tie flows written through the rotor angles as in the paper; the load step and the
input range are parameters, the frequency limit is wide. What makes it hard: saturated inputs for several seconds,
and coupling through the rotor angles that makes every area's problem depend on its neighbours' whole trajectories.

Area i (states: rotor angle Δδ_i [rad], frequency Δω_i, mechanical and valve power ΔP_m,i, ΔP_v,i [pu]):
  dΔδ_i/dt = Δω_i,   dΔω_i/dt = (ΔP_m,i − D_i Δω_i − Σ_j T_ij (Δδ_i − Δδ_j)) / M_i,
  dΔP_m,i/dt = (ΔP_v,i − ΔP_m,i)/T_ch,i,   dΔP_v,i/dt = (u_i − ΔP_v,i − Δω_i/R_i)/T_g,i.
Usage: `from stress_systems.load_frequency import scenario` (bench/ on the path), or
       `dmpc sim bench/stress_systems/load_frequency.py:scenario --algorithm admm`.
"""
from __future__ import annotations

import numpy as np

import dmpc_ros as dmpc

AREAS = (  # (M_i [pu s], D_i [pu/pu], T_ch,i [s], T_g,i [s], R_i [pu/pu])
    (10.0, 0.8, 0.3, 0.1, 0.05),
    (8.0, 0.9, 0.35, 0.12, 0.05),
    (12.0, 1.0, 0.3, 0.1, 0.05),
)
TIES = (2.0, 1.5)   # synchronizing coefficients T_12, T_23 [pu/rad]: tie flow T_ij (Δδ_i − Δδ_j)
STATES = ("delta", "omega", "Pm", "Pv")   # rotor angle [rad], frequency, mechanical and valve power [pu]


def _area(i: int, input_range: float, frequency_range: float) -> dmpc.LinearAgent:
    """Area i in Venkat et al.'s form: the tie flows follow the angle differences, so every area's frequency
    equation holds its neighbours' angles (two-way coupling through A)."""
    inertia, damping, turbine, governor, droop = AREAS[i]
    neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(AREAS)]
    synchronizing = {j: TIES[min(i, j)] for j in neighbours}
    A = np.zeros((4, 4))
    A[0, 1] = 1.0
    A[1, :3] = (-sum(synchronizing.values()) / inertia, -damping / inertia, 1.0 / inertia)
    A[2, 2:] = (-1.0 / turbine, 1.0 / turbine)
    A[3, [1, 3]] = (-1.0 / (droop * governor), -1.0 / governor)
    B = np.zeros((4, 1))
    B[3, 0] = 1.0 / governor
    couplings = {}
    for j, coefficient in synchronizing.items():
        angle = np.zeros((4, 4))
        angle[1, 0] = coefficient / inertia
        couplings[f"area_{j + 1}"] = dmpc.Coupling(A=angle)
    upper = np.array([np.inf, frequency_range, np.inf, np.inf])
    return dmpc.LinearAgent(
        name=f"area_{i + 1}", A=A, B=B, couplings=couplings, Q=np.diag([10.0, 1000.0, 1.0, 1.0]), R=np.eye(1),
        state_constraint=dmpc.PolytopicConstraint.box(-upper, upper),
        input_constraint=dmpc.PolytopicConstraint.box(np.array([-input_range]), np.array([input_range])),
        state_names=tuple(f"{s}_{i + 1}" for s in STATES), input_names=(f"u_{i + 1}",))


def scenario(load_step: float = 0.25, input_range: float = 0.1, frequency_range: float = 1.0,
             steps: int = 60, max_iterations: int = 30) -> dmpc.Scenario:
    """The LFC stress case as a dmpc_ros Scenario: `load_step` [pu] in area 1 at t = 0 (states are deviations
    from the equilibrium in which area 1 covers its load), inputs within ±`input_range` [pu] of it (saturated
    while the step is picked up), ADMM with its default settings (the scenario gives no controller.admm)."""
    network = dmpc.LinearNetwork([_area(i, input_range, frequency_range) for i in range(len(AREAS))],
                                 sample_time=0.1, time="continuous",
                                 graph=(("area_1", "area_2"), ("area_2", "area_3")))
    x0 = [[0.0, 0.0, -load_step, -load_step], [0.0] * 4, [0.0] * 4]
    return dmpc.scenario(network, name="lfc_stress", description=f"3-area LFC, {load_step} pu load step",
                         controller={"algorithm": "admm", "horizon": 30, "max_iterations": max_iterations,
                                     "tolerance": 1e-6},
                         simulation={"steps": steps, "initial_state": x0})
