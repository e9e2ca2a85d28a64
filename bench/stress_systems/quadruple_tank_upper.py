"""Stress system: the quadruple tank pushed to its upper limits, after Johansson (2000), "The quadruple-tank
process: a multivariable laboratory process with an adjustable zero", IEEE TCST 8(3), Tables I–II: its areas,
orifices and pump gains, the non-minimum-phase operating point P− (γ1 = 0.43, γ2 = 0.34), tanks 1.30 m tall.

Units: levels m, pump voltages V, time s. Agent left (h1, h3; pump v1), agent right (h2, h4; pump v2):
    A1 ḣ1 = −a1 √(2 g h1) + a3 √(2 g h3) + γ1 k1 v1      A3 ḣ3 = −a3 √(2 g h3) + (1 − γ2) k2 v2
    A2 ḣ2 = −a2 √(2 g h2) + a4 √(2 g h4) + γ2 k2 v2      A4 ḣ4 = −a4 √(2 g h4) + (1 − γ1) k1 v1
A1 = A3 = 28 cm², A2 = A4 = 32 cm², a1 = a3 = 0.071 cm², a2 = a4 = 0.057 cm², k1 = 3.33, k2 = 3.35 cm³/(V s).
Limits: every level in [0.02, 1.30] m, pumps in [0, 20] V (twice the lab's range, so that the pumps can overfill
the tanks: at 20 V an upper tank would settle at 1.97 m).
Large setpoint move: from rest with the lower tanks at 0.40 m to the lower tanks at 1.25 and 1.22 m, 5 and 8 cm
below their limit (h3, h4 and the voltages at the steady state). In P− most of each pump's flow goes to the
*other* agent's upper tank, which drains into that agent's lower tank: to fill the lower tanks fast the pumps run
at full voltage, and the upper tanks, filled by the neighbour's pump, run into their 1.30 m limit — a state of one
agent that only the other agent's input drives (the user's case that issue 26 reports).
What makes it hard: the √h nonlinearity far from any linearization, a non-minimum-phase multivariable zero,
neighbour-driven state limits, pumps at their limits and setpoints near the level limits.
"""
from __future__ import annotations

import casadi as ca
import numpy as np

import dmpc_ros as dmpc

G = 9.81                                                   # [m/s²]
AREA = (28e-4, 32e-4, 28e-4, 32e-4)                        # A1..A4 [m²]
ORIFICE = (0.071e-4, 0.057e-4, 0.071e-4, 0.057e-4)         # a1..a4 [m²]
GAIN = (3.33e-6, 3.35e-6)                                  # k1, k2 [m³/(V s)]
SPLIT = (0.43, 0.34)                                       # γ1, γ2 (P−)
LEVEL, VOLTAGE = (0.02, 1.30), (0.0, 20.0)                 # [m], [V]
START, TARGET = (0.40, 0.40), (1.25, 1.22)                 # lower-tank levels (h1, h2) [m]
FLOOR = 1e-4                                               # √h evaluated at max(h, floor) [m]


def _outflow(i: int, h):
    return ORIFICE[i] * ca.sqrt(2 * G * ca.fmax(h, FLOOR))


def _left(x, u):
    return ca.vertcat((-_outflow(0, x[0]) + _outflow(2, x[1]) + SPLIT[0] * GAIN[0] * u[0]) / AREA[0],
                      -_outflow(2, x[1]) / AREA[2])


def _right(x, u):
    return ca.vertcat((-_outflow(1, x[0]) + _outflow(3, x[1]) + SPLIT[1] * GAIN[1] * u[0]) / AREA[1],
                      -_outflow(3, x[1]) / AREA[3])


def _pump_2_fills_tank_3(x, u, x_j, u_j):
    return ca.vertcat(0, (1 - SPLIT[1]) * GAIN[1] * u_j[0] / AREA[2])


def _pump_1_fills_tank_4(x, u, x_j, u_j):
    return ca.vertcat(0, (1 - SPLIT[0]) * GAIN[0] * u_j[0] / AREA[3])


def steady_state(h1: float, h2: float) -> tuple[np.ndarray, np.ndarray]:
    """(h1, h3, h2, h4) and (v1, v2) at rest with the given lower levels."""
    flow = [ORIFICE[i] * np.sqrt(2 * G * h) for i, h in ((0, h1), (1, h2))]
    split = [[SPLIT[0] * GAIN[0], (1 - SPLIT[1]) * GAIN[1]], [(1 - SPLIT[0]) * GAIN[0], SPLIT[1] * GAIN[1]]]
    v = np.linalg.solve(split, flow)
    h3 = ((1 - SPLIT[1]) * GAIN[1] * v[1] / ORIFICE[2]) ** 2 / (2 * G)
    h4 = ((1 - SPLIT[0]) * GAIN[0] * v[0] / ORIFICE[3]) ** 2 / (2 * G)
    return np.array([h1, h3, h2, h4]), v


def scenario() -> dmpc.Scenario:
    levels = (np.full(2, LEVEL[0]), np.full(2, LEVEL[1]))
    pump = ([VOLTAGE[0]], [VOLTAGE[1]])
    agents = (dmpc.NonlinearSubsystem("left", ("h1", "h3"), ("v1",), _left, *levels, *pump,
                                      state_units=("m", "m"), input_units=("V",)),
              dmpc.NonlinearSubsystem("right", ("h2", "h4"), ("v2",), _right, *levels, *pump,
                                      state_units=("m", "m"), input_units=("V",)))
    x_target, v_target = steady_state(*TARGET)
    x_start, _ = steady_state(*START)
    Q = np.diag([100.0, 1.0])
    network = dmpc.NonlinearNetwork(
        agents, (dmpc.NeighbourCoupling(0, 1, dynamics=_pump_2_fills_tank_3),
                 dmpc.NeighbourCoupling(1, 0, dynamics=_pump_1_fills_tank_4)),
        sample_time=15.0, state_weights=(Q, Q), input_weights=(0.01 * np.eye(1),) * 2,
        setpoints=(dmpc.NonlinearSetpoint(0.0, x_target, v_target),), substeps=4)
    return dmpc.scenario(network, name="stress_quadruple_tank_upper",
                         description="quadruple tank (P−), lower tanks to 1.25/1.22 m, upper tanks hit 1.30 m",
                         controller={"algorithm": "sensitivity", "horizon": 15, "max_iterations": 15,
                                     "tolerance": 1e-6, "nonlinear": {"method": "sqp"}, "admm": {"penalty": 100.0}},
                         simulation={"steps": 30, "initial_state": [x_start[:2].tolist(), x_start[2:].tolist()]})
