"""Which of an agent's state limits its neighbours drive: the states whose next values depend, directly or through
the agent's own dynamics, on a neighbour's state or input (a tank its neighbour's pump fills, and the tank below it).

With the neighbours' plans frozen, an agent alone may be unable to keep such a limit: its local problem is then
infeasible whatever it does (the user's quadruple tank: the right pump overfills the left upper tank). Schemes say
how they keep these limits (`Scheme.coupled_limits`); the sensitivity scheme makes them exact-penalty rows
(mpc/nonlinear_ocp.SoftLimits), and the load-time check names them for the schemes that cannot keep them.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

INFLUENCE = 1e-9   # entries below this fraction of the largest |entry| of a coupling block count as absent


def driven_states(own: np.ndarray, drivers: Mapping[int, np.ndarray]) -> dict[int, frozenset[int]]:
    """State index → the neighbours that drive it: `own` is the n × n structure of x⁺ in x (True: x⁺_r depends on
    x_s), `drivers[j]` the n-vector of the rows neighbour j enters directly; closed over the own dynamics."""
    own = np.asarray(own, bool)
    driven: dict[int, set[int]] = {r: {j for j, rows in drivers.items() if rows[r]} for r in range(own.shape[0])}
    changed = True
    while changed:   # x⁺_r depends on x_s, which a neighbour drives: so does x_r, one step later
        changed = False
        for r in range(own.shape[0]):
            for s in np.flatnonzero(own[r]):
                if not driven[int(s)] <= driven[r]:
                    driven[r] |= driven[int(s)]
                    changed = True
    return {r: frozenset(js) for r, js in driven.items() if js}


def linear_driven_states(system, i: int) -> dict[int, frozenset[int]]:
    """driven_states of agent i of a CoupledLinearSystem (A_ij, B_ij blocks; negligible entries ignored)."""
    def present(block: np.ndarray) -> np.ndarray:
        block = np.abs(np.asarray(block, float))
        return block > INFLUENCE * max(float(block.max(initial=0.0)), 1e-300)

    drivers = {}
    for j in range(system.num_agents):
        if j == i:
            continue
        rows = np.zeros(system.subsystems[i].n_x, bool)
        for block in (system.A[i][j], system.B[i][j]):
            if block.size:
                rows |= present(block).any(axis=1)
        if rows.any():
            drivers[j] = rows
    return driven_states(present(system.A[i][i]), drivers)


def limited(driven: Mapping[int, frozenset[int]], lower: np.ndarray, upper: np.ndarray) -> dict[int, frozenset[int]]:
    """The driven states that have a finite limit."""
    return {r: js for r, js in driven.items() if np.isfinite(lower[r]) or np.isfinite(upper[r])}


def describe(names: tuple[str, ...], agent_names: tuple[str, ...], i: int,
             driven: Mapping[int, frozenset[int]]) -> list[str]:
    """'left.h3 (driven by right)' per limited driven state of agent i."""
    return [f"{agent_names[i]}.{names[r]} (driven by {', '.join(agent_names[j] for j in sorted(js))})"
            for r, js in sorted(driven.items())]


def _map_structure(network, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structural Jacobians of Φ_i(x, u, z) in x, u and z (True: the entry can be non-zero)."""
    import casadi as ca

    sub = network.agents[i]
    phi = network.discrete_map(i)
    x, u, z = ca.SX.sym("x", sub.n_x), ca.SX.sym("u", sub.n_u), ca.SX.sym("z", phi.size1_in(2))
    out = phi(x, u, z)

    def structure(of) -> np.ndarray:
        if not of.numel():
            return np.zeros((sub.n_x, 0), bool)
        return np.array(ca.DM(ca.jacobian(out, of).sparsity(), 1)).astype(bool)

    return structure(x), structure(u), structure(z)


def own_reach(network, i: int) -> set[int]:
    """Agent i's states its own inputs move, directly or through its own dynamics."""
    own, inputs, _ = _map_structure(network, i)
    return set(driven_states(own, {i: inputs.any(axis=1)}))


def nonlinear_driven_states(network, i: int) -> dict[int, frozenset[int]]:
    """driven_states of agent i of a NonlinearNetwork, from the structural sparsity of its discrete map Φ_i(x, u, z)
    (z: each neighbour's x_j(k), u_j(k), x_j(k+1)); structure, not values, so no operating point can hide it."""
    own, _, wrt_z = _map_structure(network, i)
    drivers, offset = {}, 0
    for j in network.neighbours(i):
        size = 2 * network.agents[j].n_x + network.agents[j].n_u
        rows = wrt_z[:, offset:offset + size].any(axis=1)
        offset += size
        if rows.any():
            drivers[j] = rows
    return driven_states(own, drivers)


def outside_driven(network, i: int, members: tuple[int, ...]) -> set[int]:
    """Agent i's limited states that an agent outside `members` drives (what a local NLP of `members` cannot
    keep alone when those agents' plans are frozen)."""
    sub = network.agents[i]
    driven = limited(nonlinear_driven_states(network, i), sub.state_lower, sub.state_upper)
    return {r for r, js in driven.items() if js - set(members)}


def driven_by(network, j: int, i: int) -> tuple[int, ...]:
    """Agent j's limited states that agent i drives (the rows j linearizes in i's trajectory and sends to i, who
    keeps them too)."""
    sub = network.agents[j]
    driven = limited(nonlinear_driven_states(network, j), sub.state_lower, sub.state_upper)
    return tuple(sorted(r for r, js in driven.items() if i in js))
