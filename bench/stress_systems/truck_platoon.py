"""Stress system: a heavy-duty truck platoon braking hard, after Alam, Besselink, Turri, Mårtensson & Johansson
(2015), "Heavy-duty vehicle platooning for sustainable freight transportation", IEEE Control Systems Magazine 35(6),
and Turri, Besselink & Johansson (2017), "Cooperative look-ahead control for fuel-efficient and safe heavy-duty
vehicle platooning", IEEE TCST 25(1): trucks of different mass have different acceleration and braking limits, and
the platoon must follow the weakest.

Units: gaps m, speeds m/s, accelerations m/s², time s. Truck i (one agent; the leader has no gap):
    ḋ_i = v_{i−1} − v_i (the gap to the truck ahead),  v̇_i = a_i,  τ_i ȧ_i = u_i − a_i (powertrain/brake lag)
Four trucks, τ = 0.5, 0.6, 0.7, 0.8 s; acceleration limits u_i ∈ [−1.2, 0.5], [−0.9, 0.4], [−1.0, 0.35], [−0.8, 0.3]
m/s²
(loaded trucks brake less); gaps d_i ≥ 6 m; speeds ∈ [0, 27] m/s.
Setpoints (constant time gap, d̄ = 4 m + 0.5 s · v̄): cruising at 25 m/s (gaps 16.5 m), a speed drop to 15 m/s
(gaps 11.5 m) at t = 0 — a large move that takes every truck's brake to its limit for seconds — and back to 22 m/s
at t = 20 s (the accelerators at their limits).
What makes it hard: actuators at saturation for long stretches, limits that differ from truck to truck, and a
minimum gap (a state of truck i) that the truck ahead drives with its speed: a leader that brakes harder than its
follower can empties the gap.
"""
from __future__ import annotations

import numpy as np

import dmpc_ros as dmpc

LAGS = (0.5, 0.6, 0.7, 0.8)                                          # τ_i [s]
ACCELERATION = ((-1.2, 0.5), (-0.9, 0.4), (-1.0, 0.35), (-0.8, 0.3))  # u_i limits [m/s²]
STANDSTILL, HEADWAY, MIN_GAP, MAX_SPEED = 4.0, 0.5, 6.0, 27.0        # [m], [s], [m], [m/s]
SPEEDS = ((0.0, 15.0), (20.0, 22.0))                                 # setpoint (time [s], speed [m/s])
START_SPEED = 25.0


def _gap(speed: float) -> float:
    return STANDSTILL + HEADWAY * speed


def _truck(i: int) -> dmpc.LinearAgent:
    lag, (low, high) = LAGS[i], ACCELERATION[i]
    own = np.array([[0.0, 1.0], [0.0, -1.0 / lag]])             # (v, a)
    B = np.array([[0.0], [1.0 / lag]])
    lower, upper = np.array([0.0, -np.inf]), np.array([MAX_SPEED, np.inf])
    names, units = ["v", "a"], ["m/s", "m/s²"]
    couplings = {}
    setpoint_of = lambda v: [v, 0.0]                             # noqa: E731
    if i > 0:                                                    # the gap comes first
        A = np.zeros((3, 3))
        A[0, 1] = -1.0
        A[1:, 1:] = own
        B = np.vstack([[0.0], B])
        ahead = np.zeros((3, 2 if i == 1 else 3))
        ahead[0, 0 if i == 1 else 1] = 1.0                       # ḋ_i gets v_{i−1}
        couplings[f"truck_{i}"] = dmpc.Coupling(A=ahead)
        lower, upper = np.concatenate([[MIN_GAP], lower]), np.concatenate([[np.inf], upper])
        names, units = ["d"] + names, ["m"] + units
        setpoint_of = lambda v: [_gap(v), v, 0.0]                # noqa: E731
    else:
        A = own
    Q = np.diag(([1.0] if i > 0 else []) + [10.0, 0.1])
    return dmpc.LinearAgent(
        name=f"truck_{i + 1}", A=A, B=B, couplings=couplings, Q=Q, R=np.eye(1),
        state_constraint=dmpc.PolytopicConstraint.box(lower, upper),
        input_constraint=dmpc.PolytopicConstraint.box(np.array([low]), np.array([high])),
        state_names=tuple(f"{n}_{i + 1}" for n in names), input_names=(f"u_{i + 1}",), state_units=tuple(units),
        input_units=("m/s²",), setpoints=tuple(dmpc.Setpoint(t, np.array(setpoint_of(v)), np.zeros(1))
                                              for t, v in SPEEDS))


def scenario() -> dmpc.Scenario:
    trucks = [_truck(i) for i in range(len(LAGS))]
    x0 = [[START_SPEED, 0.0]] + [[_gap(START_SPEED), START_SPEED, 0.0]] * (len(LAGS) - 1)
    network = dmpc.LinearNetwork(trucks, sample_time=0.25, time="continuous")
    return dmpc.scenario(network, name="stress_truck_platoon",
                         description="4 heterogeneous trucks, 25 → 15 → 22 m/s at their acceleration limits",
                         controller={"algorithm": "gauss_seidel", "horizon": 24, "max_iterations": 20,
                                     "tolerance": 1e-6, "admm": {"penalty": 3.0}},
                         simulation={"steps": 160, "initial_state": x0})
