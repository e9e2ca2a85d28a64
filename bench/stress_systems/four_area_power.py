"""Stress system: four-area automatic generation control after Venkat, Hiskens, Rawlings & Wright (2008),
"Distributed MPC strategies with application to power system automatic generation control", IEEE TCST 16(6),
Section VI (the four-area example): areas in a line (ties 1–2, 2–3, 3–4), here with stiffer ties and tighter limits.

Units: per unit on a common power base, frequency deviations in pu of nominal frequency, time in s.
Area i (non-reheat turbine, governor with droop R_i, u_i its secondary-control set point, ΔP_L,i its load):
    M_i dΔf_i/dt = ΔP_m,i − D_i Δf_i − Σ_j ΔP_ij − ΔP_L,i,   T_ch,i dΔP_m,i/dt = ΔP_v,i − ΔP_m,i,
    T_g,i dΔP_v,i/dt = u_i − ΔP_v,i − Δf_i / R_i,              dΔP_ij/dt = T_ij (Δf_i − Δf_j)
Tie ij is a state of the lower-numbered area; the other area feels it with the opposite sign.
Load steps ΔP_L = (0, +0.25, −0.10, +0.15) pu hit at t = 0. As in examples/power_system_api.py they are modelled as
the initial offset from the new equilibrium (each area's governor and turbine short of its new load, every tie and
frequency at zero), so the controller regulates to the origin.
Limits: |u_i − ū_i| ≤ 0.10 pu (less than the largest load step: area 2's input saturates for seconds and its
neighbours must export through the ties), |Δf_i| ≤ 0.0053 pu (area 2 dips to 0.0054 pu unconstrained, the first-sample
dip to 0.0051 pu is unavoidable: the limit binds with little room).
What makes it hard: strong coupling (T_ij = 4–5 pu/s, much stiffer than the areas' own damping: the four frequencies
move almost together), inputs at their limits, tight frequency limits that a
neighbour's input moves as much as the own one.
"""
from __future__ import annotations

import numpy as np

import dmpc_ros as dmpc

# (M [pu s], D [pu/pu], T_ch [s], T_g [s], R [pu/pu])
AREAS = ((12.0, 1.0, 0.35, 0.10, 0.05), (10.0, 0.9, 0.30, 0.12, 0.05),
         (11.0, 1.1, 0.40, 0.08, 0.06), (9.0, 0.8, 0.30, 0.10, 0.05))
TIES = {(0, 1): 4.0, (1, 2): 5.0, (2, 3): 4.5}                # T_ij [pu/s]
LOAD_STEP = (0.0, 0.25, -0.10, 0.15)                          # ΔP_L,i [pu]
INPUT_RANGE = 0.10                                            # [pu]
FREQUENCY_RANGE = 0.0053                                       # [pu]


def _owned(i: int) -> list[tuple[int, int]]:
    return [tie for tie in TIES if tie[0] == i]


def _layout(i: int) -> dict[str, int]:
    """State index by name: Δf, ΔP_m, ΔP_v, then the ties area i owns."""
    names = ["df", "Pm", "Pv"] + [f"P{a + 1}{b + 1}" for a, b in _owned(i)]
    return {name: k for k, name in enumerate(names)}


def _area(i: int) -> dmpc.LinearAgent:
    M, D, Tch, Tg, R = AREAS[i]
    layout = _layout(i)
    n = len(layout)
    A, B = np.zeros((n, n)), np.zeros((n, 1))
    A[0, 0], A[0, 1] = -D / M, 1.0 / M
    A[1, 1], A[1, 2] = -1.0 / Tch, 1.0 / Tch
    A[2, 0], A[2, 2], B[2, 0] = -1.0 / (R * Tg), -1.0 / Tg, 1.0 / Tg
    couplings: dict[str, dmpc.Coupling] = {}

    def add(j: int, row: int, column: int, value: float) -> None:
        name = f"area_{j + 1}"
        previous = couplings[name].A if name in couplings else np.zeros((n, len(_layout(j))))
        previous = previous.copy()
        previous[row, column] += value
        couplings[name] = dmpc.Coupling(A=previous)

    for (a, b), stiffness in TIES.items():
        if a == i:                                  # own tie: exported power, follows Δf_i − Δf_b
            k = layout[f"P{a + 1}{b + 1}"]
            A[0, k] -= 1.0 / M
            A[k, 0] += stiffness
            add(b, k, 0, -stiffness)
        elif b == i:                                # the neighbour's tie: imported power
            add(a, 0, _layout(a)[f"P{a + 1}{b + 1}"], 1.0 / M)
    upper = np.full(n, np.inf)
    upper[0] = FREQUENCY_RANGE
    Q = np.diag([500.0, 1.0, 1.0] + [5.0] * (n - 3))
    return dmpc.LinearAgent(
        name=f"area_{i + 1}", A=A, B=B, couplings=couplings, Q=Q, R=np.eye(1),
        state_constraint=dmpc.PolytopicConstraint.box(-upper, upper),
        input_constraint=dmpc.PolytopicConstraint.box(np.array([-INPUT_RANGE]), np.array([INPUT_RANGE])),
        state_names=tuple(f"{name}_{i + 1}" for name in layout), input_names=(f"u_{i + 1}",),
        state_units=("pu",) * n, input_units=("pu",))


def scenario() -> dmpc.Scenario:
    areas = [_area(i) for i in range(len(AREAS))]
    x0 = []
    for i, load in enumerate(LOAD_STEP):
        x = np.zeros(len(_layout(i)))
        x[1] = x[2] = -load                         # governor and turbine short of the new load
        x0.append(x.tolist())
    network = dmpc.LinearNetwork(areas, sample_time=0.1, time="continuous")
    return dmpc.scenario(network, name="stress_four_area_power",
                         description="4-area AGC, stiff ties, load steps beyond the input range",
                         controller={"algorithm": "jacobi", "horizon": 25, "max_iterations": 20, "tolerance": 1e-6,
                                     "admm": {"penalty": 3.0}},
                         simulation={"steps": 60, "initial_state": x0})
