"""Planar robot formation: double integrators coupled through the cost (relative positions on a graph) and
through collision avoidance.

Robot i: x_i = (p_x, p_y, v_x, v_y) [m, m/s], u_i = (a_x, a_y) [m/s²], ṗ = v, v̇ = u (exact ZOH). Speed and
acceleration norms are bounded by inscribed octagons (8 linear rows each, conservative by at most 7.6 %).
The formation is a set of offsets o_i around a centre c(t) that follows a reference path; the offsets switch
from shape A to shape B at `switch_time` (reconfiguration). Cost: w_f Σ_edges ‖(p_i − p_j) − (o_i − o_j)‖²
(objective coupling, one PSD term per edge owned by its lower index), w_t ‖p_i − c − o_i‖², w_v ‖v_i − ċ‖², w_u ‖u_i‖².
Differential-drive (unicycle) robots use the same agents through the look-ahead point output (see unicycle.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linear import CoupledLinearSystem, CouplingTerm, PolytopicConstraint, Subsystem, discretize_zoh

OCTAGON = np.array([[np.cos(a), np.sin(a)] for a in np.arange(8) * np.pi / 4])


def octagon_rows(limit: float, columns: slice, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows H v ≤ h on the 2-vector at `columns` of a `size`-vector: an octagon inscribed in ‖·‖ ≤ limit."""
    H = np.zeros((8, size))
    H[:, columns] = OCTAGON
    return H, np.full(8, limit * np.cos(np.pi / 8))


@dataclass(frozen=True)
class Formation:
    offsets: tuple[tuple[float, float], ...]          # shape A: o_i [m] around the centre
    offsets_after: tuple[tuple[float, float], ...]    # shape B (reconfiguration target)
    switch_time: float                                # [s] when shape B becomes the target
    edges: tuple[tuple[int, int], ...]                # formation graph (undirected, i < j)
    speed_limit: float = 1.0                          # ‖v_i‖ ≤ [m/s]
    acceleration_limit: float = 1.0                   # ‖u_i‖ ≤ [m/s²]
    min_distance: float = 0.5                         # ‖p_i − p_j‖ ≥ [m] for graph neighbours

    @property
    def num_agents(self) -> int:
        return len(self.offsets)

    def subsystems(self) -> list[Subsystem]:
        result = []
        for i in range(self.num_agents):
            Hv, hv = octagon_rows(self.speed_limit, slice(2, 4), 4)
            Hu, hu = octagon_rows(self.acceleration_limit, slice(0, 2), 2)
            result.append(Subsystem(
                name=f"robot_{i}", n_x=4, n_u=2,
                state_constraint=PolytopicConstraint(Hv, hv), input_constraint=PolytopicConstraint(Hu, hu),
                state_names=(f"px_{i}", f"py_{i}", f"vx_{i}", f"vy_{i}"), input_names=(f"ax_{i}", f"ay_{i}"),
                state_units=("m", "m", "m/s", "m/s"), input_units=("m/s^2", "m/s^2"),
            ))
        return result

    def discrete(self, sample_time: float, coupling_tolerance: float = 0.0) -> CoupledLinearSystem:
        """Exact ZOH of independent double integrators (no dynamic coupling)."""
        M = self.num_agents
        Ac = np.zeros((4, 4))
        Ac[0, 2] = Ac[1, 3] = 1.0
        Bc = np.zeros((4, 2))
        Bc[2, 0] = Bc[3, 1] = 1.0
        A, B = discretize_zoh(Ac, Bc, sample_time)
        return CoupledLinearSystem.from_full(self.subsystems(), np.kron(np.eye(M), A), np.kron(np.eye(M), B),
                                             sample_time, coupling_tolerance)

    def weights(self, formation: float, tracking: float, velocity: float,
                input_weight: float) -> tuple[np.ndarray, np.ndarray, tuple[CouplingTerm, ...]]:
        """(Q, R, pair terms): own tracking/velocity weights plus one PSD term per formation edge."""
        M = self.num_agents
        Q = np.kron(np.eye(M), np.diag([tracking, tracking, velocity, velocity]))
        relative = np.hstack([np.eye(2), np.zeros((2, 2)), -np.eye(2), np.zeros((2, 2))])  # p_i − p_j
        terms = []
        for a, b in self.edges:
            W = formation * relative.T @ relative
            terms.append(CouplingTerm(a, b, W))
            index = np.r_[4 * a:4 * a + 4, 4 * b:4 * b + 4]
            Q[np.ix_(index, index)] += W
        return Q, input_weight * np.eye(2 * M), tuple(terms)

    def offsets_at(self, time: float) -> np.ndarray:
        return np.asarray(self.offsets_after if time >= self.switch_time else self.offsets, float)

    def reference(self, path: "CentrePath", sample_time: float, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(x̄ count × 4M, ū count × 2M): every robot at c(t) + o_i(t) moving with ċ(t); ū = 0 (c piecewise linear)."""
        M = self.num_agents
        centre, velocity = path.sample(sample_time, count)
        states = np.zeros((count, 4 * M))
        for k in range(count):
            offsets = self.offsets_at(k * sample_time)
            for i in range(M):
                states[k, 4 * i:4 * i + 2] = centre[k] + offsets[i]
                states[k, 4 * i + 2:4 * i + 4] = velocity[k]
        return states, np.zeros((count, 2 * M))


@dataclass(frozen=True)
class CentrePath:
    """Piecewise-linear centre path relative to the agreed start: (time [s], x [m], y [m]) knots."""

    knots: tuple[tuple[float, float, float], ...]

    def sample(self, sample_time: float, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(c(k) count × 2, ċ(k) count × 2) at t = k·T; ċ is the slope on [t, t + T)."""
        knots = np.asarray(self.knots, float)
        t = np.arange(count) * sample_time
        centre = np.column_stack([np.interp(t, knots[:, 0], knots[:, d]) for d in (1, 2)])
        ahead = np.column_stack([np.interp(t + sample_time, knots[:, 0], knots[:, d]) for d in (1, 2)])
        return centre, (ahead - centre) / sample_time


def edge_errors(formation: Formation, x: np.ndarray, sample_time: float) -> np.ndarray:
    """RMS over the graph's edges of ‖(p_i − p_j) − (o_i(t) − o_j(t))‖ at every step [m]."""
    T, M = x.shape[0], formation.num_agents
    positions = x.reshape(T, M, 4)[:, :, :2]
    errors = np.zeros(T)
    for k in range(T):
        offsets = formation.offsets_at(k * sample_time)
        squared = [np.sum((positions[k, a] - positions[k, b] - offsets[a] + offsets[b]) ** 2)
                   for a, b in formation.edges]
        errors[k] = np.sqrt(np.mean(squared))
    return errors


def formation_metrics(formation: Formation, x: np.ndarray, sample_time: float, settle: float = 0.05) -> dict:
    """Formation error (RMS over edges of ‖(p_i − p_j) − (o_i − o_j)‖ [m], final and peak after the first
    second), minimum distance between any two robots [m], time to reconfigure (from the switch until the
    formation error stays below `settle` m) [s]."""
    M, T = formation.num_agents, x.shape[0]
    positions = x.reshape(T, M, 4)[:, :, :2]
    errors = edge_errors(formation, x, sample_time)
    distances = [np.min(np.linalg.norm(positions[:, a] - positions[:, b], axis=1))
                 for a in range(M) for b in range(a + 1, M)]
    switch = int(np.ceil(formation.switch_time / sample_time)) if np.isfinite(formation.switch_time) else T  # none
    reconfigure = None
    if switch < T:
        above = np.flatnonzero(errors[switch:] >= settle)
        if above.size == 0:
            reconfigure = 0.0
        elif above[-1] + switch + 1 < T:
            reconfigure = float((above[-1] + 1) * sample_time)
    return {"final_formation_error": float(errors[-1]), "formation_error_rms": float(np.sqrt(np.mean(errors ** 2))),
            "min_distance": float(min(distances)), "time_to_reconfigure": reconfigure}
