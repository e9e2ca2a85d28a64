"""Stress system: a drinking-water transport network of four tanks, after the Barcelona drinking water network
benchmark (Ocampo-Martinez, Puig, Cembrano & Quevedo (2013), "Application of predictive control strategies to the
management of complex networks in the urban water cycle", IEEE Control Systems Magazine 33(1); Grosso,
Ocampo-Martinez, Puig & Joseph (2014), "Chance-constrained model predictive control for drinking water networks",
J. Process Control 24(5)): mass balances of tanks, pumped and valved flows between them, consumer demands.

Units: volumes 10³ m³ (deviation from the operating volume), flows 10³ m³/h, time h. Tank i (one agent) controls
the flow u_i that leaves it towards tank i + 1 (tank 4 feeds the consumers' main); tank 1 is fed by the treatment
plant through its own second input s:
    V̇_1 = s − u_1 − d_1,   V̇_i = u_{i−1} − u_i − d_i (i = 2, 3),   V̇_4 = u_3 − u_4 − d_4
Demand step: at t = 0 the demands rise to d = (0.4, 0.6, 0.5, 0.8) and stay there. As in
examples/power_system_api.py the step is modelled as the initial offset from the new equilibrium: flows are
deviations from the new steady flows (s = 2.3, u = 1.9, 1.3, 0.8, 0.0 above the main's base draw), whose pump
limits leave little spare (u_i ≤ +0.3, s ≤ +0.4 around them, down to −1.5), and the tanks start from where the
demand step caught them: tanks 2 and 3 nearly empty (−1.5 and −1.7 of −1.8), tank 4 high (+1.4 of +1.5).
Limits: volumes V_i ∈ [−1.8, 1.5] (safety volume, overflow).
What makes it hard: integrating dynamics (tanks, no self-regulation), pumps near their limits, and neighbour-driven
state limits: tank i + 1's volume is moved by tank i's input as much as by its own, so tank 3 is refilled only as
fast as tank 2, 0.3 above its safety volume, is refilled from tank 1, and tank 4, 0.1 below overflowing, must not be
filled by tank 3's pump.
"""
from __future__ import annotations

import numpy as np

import dmpc_ros as dmpc

SPARE, DOWN = 0.3, -1.5          # pump/valve flow range around the new steady flow [10³ m³/h]
SOURCE_SPARE = 0.4               # the treatment plant's spare [10³ m³/h]
VOLUME = (-1.8, 1.5)             # [10³ m³]
START = (0.0, -1.5, -1.7, 1.4)   # volumes when the demand step hit [10³ m³]


def _tank(i: int, count: int) -> dmpc.LinearAgent:
    first = i == 0
    B = np.array([[1.0, -1.0]]) if first else np.array([[-1.0]])
    low = np.array([DOWN, DOWN]) if first else np.array([DOWN])
    high = np.array([SOURCE_SPARE, SPARE]) if first else np.array([SPARE])
    couplings = {}
    if i > 0:                                       # the upstream tank's outflow is this tank's inflow
        upstream = np.zeros((1, 2 if i == 1 else 1))
        upstream[0, -1] = 1.0
        couplings[f"tank_{i}"] = dmpc.Coupling(B=upstream)
    inputs = (("s", f"u_{i + 1}") if first else (f"u_{i + 1}",))
    return dmpc.LinearAgent(
        name=f"tank_{i + 1}", A=np.zeros((1, 1)), B=B, couplings=couplings, Q=np.array([[10.0]]),
        R=np.eye(B.shape[1]) * (1.0 if i < count - 1 else 5.0),
        state_constraint=dmpc.PolytopicConstraint.box(np.array([VOLUME[0]]), np.array([VOLUME[1]])),
        input_constraint=dmpc.PolytopicConstraint.box(low, high),
        state_names=(f"V_{i + 1}",), input_names=inputs, state_units=("10³ m³",),
        input_units=("10³ m³/h",) * len(inputs))


def scenario() -> dmpc.Scenario:
    count = len(START)
    network = dmpc.LinearNetwork([_tank(i, count) for i in range(count)], sample_time=0.25, time="continuous")
    return dmpc.scenario(network, name="stress_water_network",
                         description="4 tanks in a transport line after a demand step, pumps near their limits",
                         controller={"algorithm": "jacobi", "horizon": 24, "max_iterations": 20, "tolerance": 1e-6,
                                     "admm": {"penalty": 3.0}},
                         simulation={"steps": 96, "initial_state": [[v] for v in START]})
