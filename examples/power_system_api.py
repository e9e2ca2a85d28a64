"""Three-area load-frequency control, defined in code with the public API (`import dmpc_ros`), simulated under
two schemes against centralized MPC, then run over ROS 2 (one process per area) and checked against `simulate`.

Area i (per-unit on a common base; time in s), its governor, turbine and its frequency:
    dΔf_i/dt  = (ΔP_m,i − D_i Δf_i − ΔP_tie,i) / M_i        (ΔP_tie,i: net power exported over its tie lines)
    dΔP_m,i/dt = (ΔP_v,i − ΔP_m,i) / T_ch,i                   (turbine)
    dΔP_v,i/dt = (u_i − ΔP_v,i − Δf_i / R_i) / T_g,i          (governor with droop R_i; u_i: secondary control)
    dΔP_ij/dt  = T_ij (Δf_i − Δf_j)                           (tie line i–j, a state of area i)
Areas 1–2–3 in a line; area 1 owns the tie 1–2, area 2 the tie 2–3. A load step of 0.15 pu hits area 1 at t = 0;
the states are deviations from the equilibrium after it (area 1's turbine and governor 0.15 pu short at t = 0),
so the controller must bring the frequency back while the inputs stay within ±0.1 pu of the new equilibrium and
each frequency within ±0.3 (pu of the frequency base), sharing the work through the tie lines.

Run:  .venv/bin/python examples/power_system_api.py [output directory]      (tested: test_examples.py)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import dmpc_ros as dmpc

LOAD_STEP = 0.15                      # [pu] in area 1
INERTIA = (10.0, 8.0, 12.0)           # M_i [pu s]
DAMPING = (0.8, 0.9, 1.0)             # D_i [pu/pu]
TURBINE = (0.3, 0.35, 0.3)            # T_ch,i [s]
GOVERNOR = (0.1, 0.12, 0.1)           # T_g,i [s]
DROOP = (0.05, 0.05, 0.05)            # R_i [pu/pu]
TIE = {(0, 1): 2.0, (1, 2): 1.5}      # T_ij [pu/s], owned by the first area
INPUT_RANGE = 0.1                     # |u_i − ū_i| ≤ 0.1 pu
FREQUENCY_RANGE = 0.3                 # |Δf_i| ≤ 0.3


def area(i: int) -> dmpc.LinearAgent:
    """Area i's own dynamics and how its neighbours' states enter them."""
    owns_tie = (i, i + 1) in TIE
    n = 4 if owns_tie else 3                       # (Δf, ΔP_m, ΔP_v[, ΔP_tie to the next area])
    A, B = np.zeros((n, n)), np.zeros((n, 1))
    M, D, Tch, Tg, R = INERTIA[i], DAMPING[i], TURBINE[i], GOVERNOR[i], DROOP[i]
    A[0, 0], A[0, 1] = -D / M, 1.0 / M
    A[1, 1], A[1, 2] = -1.0 / Tch, 1.0 / Tch
    A[2, 0], A[2, 2] = -1.0 / (R * Tg), -1.0 / Tg
    B[2, 0] = 1.0 / Tg
    couplings = {}
    if owns_tie:                                   # exports over its own tie line, which follows Δf_i − Δf_next
        A[0, 3] = -1.0 / M
        A[3, 0] = TIE[(i, i + 1)]
        next_n = 4 if (i + 1, i + 2) in TIE else 3
        tie_to_next = np.zeros((n, next_n))
        tie_to_next[3, 0] = -TIE[(i, i + 1)]
        couplings[f"area_{i + 2}"] = dmpc.Coupling(A=tie_to_next)
    if (i - 1, i) in TIE:                          # imports over the previous area's tie line
        previous = np.zeros((n, 4))
        previous[0, 3] = 1.0 / M
        couplings[f"area_{i}"] = dmpc.Coupling(A=previous)
    names = ["df", "Pm", "Pv"] + (["Ptie"] if owns_tie else [])
    q = [1000.0, 1.0, 1.0] + ([10.0] if owns_tie else [])
    limits = np.full(n, np.inf)
    limits[0] = FREQUENCY_RANGE
    return dmpc.LinearAgent(
        name=f"area_{i + 1}", A=A, B=B, couplings=couplings, Q=np.diag(q), R=np.eye(1),
        state_constraint=dmpc.PolytopicConstraint.box(-limits, limits),
        input_constraint=dmpc.PolytopicConstraint.box(np.array([-INPUT_RANGE]), np.array([INPUT_RANGE])),
        state_names=tuple(f"{s}_{i + 1}" for s in names), input_names=(f"u_{i + 1}",),
        state_units=("pu",) * n, input_units=("pu",))


def scenario() -> dmpc.Scenario:
    """The factory: `dmpc sim examples/power_system_api.py:scenario` and the ROS nodes call it too."""
    network = dmpc.LinearNetwork([area(i) for i in range(3)], sample_time=0.1, time="continuous",
                                 graph=(("area_1", "area_2"), ("area_2", "area_3")))
    x0 = [[0.0, -LOAD_STEP, -LOAD_STEP, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    return dmpc.scenario(network, name="three_area_lfc", description="3-area load-frequency control, load step",
                         controller={"algorithm": "jacobi", "horizon": 30, "max_iterations": 20, "tolerance": 1e-6,
                                     "admm": {"penalty": 3.0}},
                         simulation={"steps": 80, "initial_state": x0})


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else Path("runs/three_area_lfc")
    base = scenario()
    print(f"{'scheme':<14}{'closed-loop cost':>18}{'vs centralized':>16}{'max |u| [pu]':>14}{'iterations':>12}")
    for algorithm in ("jacobi", "admm"):
        result = dmpc.simulate(base, algorithm)
        centralized = dmpc.reference(base, algorithm)   # the same problem (ADMM: separable terminal cost)
        gap = result.closed_loop_cost / centralized.closed_loop_cost - 1.0
        print(f"{algorithm:<14}{result.closed_loop_cost:>18.6g}{100 * gap:>15.3f}%{np.max(np.abs(result.u)):>14.3f}"
              f"{np.mean(result.iterations):>12.1f}")
        dmpc.save(result, base.with_overrides(algorithm=algorithm), output / algorithm, centralized)

    # over ROS 2: the nodes rebuild the scenario from this file's factory; a short lock-step run equals simulate
    short = dmpc.load(f"{Path(__file__).resolve()}:scenario").with_overrides(steps=10)
    over_ros = dmpc.run_ros(short, output / "ros", iteration_timeout=30.0)
    in_process = dmpc.simulate(short)
    difference = float(np.max(np.abs(over_ros.x - in_process.x)))
    print(f"ROS lock-step run of {short.steps} steps vs in-process: max |x_ros − x_sim| = {difference:.3g}")
    return 0 if difference < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
