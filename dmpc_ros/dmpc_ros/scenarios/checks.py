"""Load-time checks a control engineer expects, each naming the agent, the set or state and the cause:
non-empty constraint sets, an initial state inside its set, setpoints that are steady states with admissible
steady inputs (stabilizability is checked by mpc.terminal.check_stabilizable)."""
from __future__ import annotations

import os

import numpy as np
from scipy.optimize import linprog

from ..models.linear import CoupledLinearSystem, PolytopicConstraint, Subsystem
from ..mpc.reference import ReferenceTrajectory
from .validation import ScenarioError

FEASIBILITY = 1e-9          # relative slack allowed on a constraint row
STEADY_STATE = 1e-6         # relative residual of x̄ = A x̄ + B ū


def is_empty(H: np.ndarray, h: np.ndarray) -> bool:
    """{v : H v ≤ h} has no point (interval bounds for box rows, else LP feasibility)."""
    if h.size == 0:
        return False
    if np.all(np.count_nonzero(H, axis=1) == 1):   # box rows: each coordinate's interval must be non-empty
        column, scale = np.argmax(H != 0, axis=1), H[np.arange(h.size), np.argmax(H != 0, axis=1)]
        bound = h / scale
        upper = np.full(H.shape[1], np.inf)
        lower = np.full(H.shape[1], -np.inf)
        np.minimum.at(upper, column[scale > 0], bound[scale > 0])
        np.maximum.at(lower, column[scale < 0], bound[scale < 0])
        return bool(np.any(lower > upper))
    result = linprog(np.zeros(H.shape[1]), A_ub=H, b_ub=h, bounds=(None, None), method="highs")
    return result.status == 2


def check_nonempty_sets(subsystems: list[Subsystem]) -> None:
    checked: set[bytes] = set()   # agents of a family often share their sets: each distinct set once
    for i, sub in enumerate(subsystems):
        for kind, constraint in (("state", sub.state_constraint), ("input", sub.input_constraint)):
            key = constraint.H.tobytes() + constraint.h.tobytes()
            if key in checked:
                continue
            if is_empty(constraint.H, constraint.h):
                raise ScenarioError(f"model: the {kind} constraint set of agent {i} ({sub.name}) is empty: its "
                                    f"{constraint.h.size} rows cannot all hold at once")
            checked.add(key)
        mixed = sub.mixed_constraint
        if mixed is not None:
            X, U = sub.state_constraint, sub.input_constraint
            H = np.block([[X.H, np.zeros((X.h.size, sub.n_u))], [np.zeros((U.h.size, sub.n_x)), U.H],
                          [mixed.Hx, mixed.Hu]])
            h = np.concatenate([X.h, U.h, mixed.h])
            key = H.tobytes() + h.tobytes()
            if key not in checked and is_empty(H, h):
                raise ScenarioError(f"model: the mixed state-input rows of agent {i} ({sub.name}) leave no (x, u) "
                                    f"inside its state and input sets")
            checked.add(key)


def describe_row(row: np.ndarray, names: tuple[str, ...]) -> str:
    """A constraint row in words: '-v_1' for a box row, the non-zero terms otherwise."""
    terms = [(c, names[j] if j < len(names) else f"x{j}") for j, c in enumerate(row) if c != 0]
    if len(terms) == 1 and abs(terms[0][0]) == 1:
        return ("" if terms[0][0] > 0 else "−") + terms[0][1]
    return " + ".join(f"{c:.3g}·{n}" for c, n in terms)


def violated_row(constraint: PolytopicConstraint, v: np.ndarray, names: tuple[str, ...]) -> str | None:
    """'−v_1 = 0.9 > 0.8' for the most violated row of `constraint` at v (relative to 1 + |bound|), or None."""
    if constraint.h.size == 0:
        return None
    excess = (constraint.H @ v - constraint.h) / (1.0 + np.abs(constraint.h))
    row = int(np.argmax(excess))
    if excess[row] <= FEASIBILITY:
        return None
    return f"{describe_row(constraint.H[row], names)} = {constraint.H[row] @ v:.6g} > {constraint.h[row]:.6g}"


def check_initial_state(subsystems: list[Subsystem], x0: np.ndarray) -> None:
    offset = 0
    for i, sub in enumerate(subsystems):
        x = x0[offset:offset + sub.n_x]
        offset += sub.n_x
        violated = violated_row(sub.state_constraint, x, sub.state_names)
        if violated:
            raise ScenarioError(f"simulation.initial_state: agent {i} ({sub.name}) starts outside its state "
                                f"constraint set: {violated} (x_{i}(0) = {np.array2string(x, precision=4)})")


def check_reference(system: CoupledLinearSystem, reference: ReferenceTrajectory) -> None:
    """Every reference sample inside the state and input sets; a constant setpoint must also be a steady state
    (a time-varying reference is tracked: its samples need not be steady states). All samples are checked at
    once; the first bad one is then described agent by agent."""
    states, inputs = system.stacked_constraints()
    first_bad = [first_violating_sample(samples, constraint)
                 for samples, constraint in ((reference.states, states), (reference.inputs, inputs))]
    first_bad = [k for k in first_bad if k is not None]
    if first_bad:
        describe_reference_violation(system, reference, min(first_bad))
    if reference.is_constant:
        x_ref, u_ref = reference.at(0)
        residual = x_ref - system.step(x_ref, u_ref)
        worst = int(np.argmax(np.abs(residual)))
        if abs(residual[worst]) > STEADY_STATE * (1.0 + np.max(np.abs(x_ref))):
            names = [name for sub in system.subsystems for name in sub.state_names]
            raise ScenarioError(
                f"controller: the setpoint is not a steady state of the model: no input holds it "
                f"(x̄ − A x̄ − B ū is {residual[worst]:.3g} in state "
                f"{names[worst] if names else worst}); choose "
                f"setpoints the plant can rest at, or leave states free for the family to compute")


def first_violating_sample(samples: np.ndarray, constraint: PolytopicConstraint) -> int | None:
    """Index of the first row of `samples` (S × dim) outside the constraint, or None."""
    if constraint.h.size == 0:
        return None
    bad = np.any((samples @ constraint.H.T - constraint.h) / (1.0 + np.abs(constraint.h)) > FEASIBILITY, axis=1)
    return int(np.argmax(bad)) if np.any(bad) else None


def describe_reference_violation(system: CoupledLinearSystem, reference: ReferenceTrajectory, k: int) -> None:
    """Raise the ScenarioError for reference sample k, naming the agent, its row and value (inputs first)."""
    x_ref, u_ref = reference.at(k)
    when = "" if reference.is_constant else f" at step {k}"
    for i, sub in enumerate(system.subsystems):
        u = u_ref[system.input_slice(i)]
        violated = violated_row(sub.input_constraint, u, sub.input_names)
        if violated:
            raise ScenarioError(f"controller: the steady input agent {i} ({sub.name}) needs to hold its setpoint"
                                f"{when} violates its input limits: {violated} "
                                f"(ū_{i} = {np.array2string(u, precision=4)})")
    for i, sub in enumerate(system.subsystems):
        violated = violated_row(sub.state_constraint, x_ref[system.state_slice(i)], sub.state_names)
        if violated:
            raise ScenarioError(f"controller: the setpoint of agent {i} ({sub.name}){when} is outside its "
                                f"state constraint set: {violated}")


# How large a set-up a scheme may start (a scheme's check estimates its own: schemes/block_update.py for jacobi)
DENSE_RATE = 1e10          # [flop/s] n³ of a symmetric eigenvalue solve, measured on the 2-core CI machine
SET_UP_LIMIT = 600.0       # [s] set-up estimated longer than this is refused before it starts
MEMORY_SHARE = 0.8         # of the memory available now


def available_memory() -> float:
    """Bytes of memory available now (MemAvailable on Linux, else the physical size)."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
