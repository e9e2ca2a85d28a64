"""Steady states of a nonlinear network with free entries: the nonlinear counterpart of the linear family's
`steady_state` (families/linear.py), so a setpoint may fix some levels and leave the rest (NaN, `null` in YAML) to
the dynamics.

The plant is continuous, ẋ = f(x, u); a steady state is f(x̄, ū) = 0. With k free entries of (x̄, ū) and n_x
equations, at most n_x entries may be free (more leave a continuum of steady states: which one would be arbitrary).
The free entries solve the bounded least-squares problem min ‖f(x̄, ū)‖² within the agents' limits (IPOPT through
CasADi, started inside the limits); a residual left above the tolerance means no steady state fits the fixed
entries, and is refused in one line naming the worst state equation.
"""
from __future__ import annotations

from dataclasses import replace

import casadi as ca
import numpy as np

from .nonlinear import NonlinearNetwork, NonlinearSetpoint

STEADY_TOLERANCE = 1e-9   # [state units / s] largest |ẋ| accepted at a completed steady state, relative to 1 + |x̄|


class NoSteadyState(ValueError):
    """The free entries of a setpoint cannot be completed to a steady state (one line: why)."""


def free_count(setpoint: NonlinearSetpoint) -> int:
    """The entries of (x̄, ū) left free (NaN)."""
    return int(np.isnan(setpoint.state).sum() + np.isnan(setpoint.input).sum())


def complete_setpoint(network: NonlinearNetwork, setpoint: NonlinearSetpoint) -> NonlinearSetpoint:
    """`setpoint` with its free (NaN) entries solved for a steady state f(x̄, ū) = 0 within the limits, the fixed
    ones as given; unchanged when nothing is free. NoSteadyState when too many entries are free or none fits."""
    state = np.asarray(setpoint.state, float).ravel()
    inputs = np.asarray(setpoint.input, float).ravel()
    target = np.r_[state, inputs]
    free = np.isnan(target)
    if not free.any():
        return setpoint
    names = [n for a in network.agents for n in a.state_names] + [n for a in network.agents for n in a.input_names]
    if free.sum() > network.n_x:
        raise NoSteadyState(f"the setpoint from t = {setpoint.time:g} s leaves {int(free.sum())} entries free "
                            f"({', '.join(n for n, f in zip(names, free) if f)}), at most {network.n_x} (one per "
                            f"state equation) may be: fix {int(free.sum()) - network.n_x} more")
    lower = np.r_[np.concatenate([a.state_lower for a in network.agents]),
                  np.concatenate([a.input_lower for a in network.agents])][free]
    upper = np.r_[np.concatenate([a.state_upper for a in network.agents]),
                  np.concatenate([a.input_upper for a in network.agents])][free]
    z = ca.SX.sym("z", int(free.sum()))
    parts, k = [], 0
    for value, is_free in zip(target, free):
        parts.append(z[k] if is_free else ca.DM(value))
        k += bool(is_free)
    full = ca.vcat(parts)
    rhs = network.continuous(full[:network.n_x], full[network.n_x:])
    solver = ca.nlpsol("steady", "ipopt", {"x": z, "f": ca.sumsqr(rhs)},
                       {"ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes", "ipopt.tol": 1e-20,
                        "ipopt.acceptable_tol": 1e-20, "ipopt.max_iter": 500})
    start = np.where(np.isfinite(lower) & np.isfinite(upper), (lower + upper) / 2,
                     np.where(np.isfinite(lower), lower + 1.0, np.where(np.isfinite(upper), upper - 1.0, 0.0)))
    solution = np.asarray(solver(x0=start, lbx=lower, ubx=upper)["x"], float).ravel()
    completed = target.copy()
    completed[free] = solution
    residual = network.steady_state_residual(completed[:network.n_x], completed[network.n_x:])
    worst = int(np.argmax(np.abs(residual)))
    if not np.all(np.isfinite(residual)) or abs(residual[worst]) > STEADY_TOLERANCE * (1 + np.max(np.abs(completed))):
        raise NoSteadyState(f"the setpoint from t = {setpoint.time:g} s has no steady state within the limits with "
                            f"its fixed entries: the closest leaves d{names[worst]}/dt = {residual[worst]:.3g}; free "
                            f"other entries (null) or change the fixed ones")
    return replace(setpoint, state=completed[:network.n_x], input=completed[network.n_x:])


def complete_setpoints(network: NonlinearNetwork) -> NonlinearNetwork:
    """The network with every setpoint's free entries solved (complete_setpoint); itself when none has any."""
    if not any(free_count(s) for s in network.setpoints):
        return network
    return replace(network, setpoints=tuple(complete_setpoint(network, s) for s in network.setpoints))
