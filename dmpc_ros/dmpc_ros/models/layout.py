"""Where each agent is in the plane of a fixed frame (`map`, REP 103: x forward, y left, metres), for display.

An agent's position is affine in its own states, p_i = a_i + C_i x_i (C_i is 2 × n_x,i), so that a plan's
predicted states give its path and an RPI tube Z_i gives the cross-section C_i Z_i around each predicted point.
Each family says what its states mean (robots: their planar positions; a chain or a platoon: along a line);
any other system is drawn as agent i at x = i m with its first state on the y axis.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlanarLayout:
    maps: tuple[np.ndarray, ...]                       # C_i, 2 × n_x,i
    anchors: tuple[np.ndarray, ...]                    # a_i [m]
    radii: tuple[float, ...] = ()                      # safety radius per agent [m] (empty or 0: none)
    boundaries: tuple[tuple[np.ndarray, ...], ...] = ()  # per agent, planar constraint boundaries (K × 2 polylines)
    kind: str = "line"                                 # "line" (1D chain, platoon, generic) or "plane" (robots)

    @staticmethod
    def generic(state_sizes: list[int]) -> "PlanarLayout":
        """Agent i at x = i m, its first state (whatever it measures) on the y axis."""
        maps = tuple(np.vstack([np.zeros(n), np.eye(1, n)]) for n in state_sizes)
        return PlanarLayout(maps, tuple(np.array([float(i), 0.0]) for i in range(len(state_sizes))))

    @staticmethod
    def planar(state_sizes: list[int], columns: list[tuple[int, int]], radius: float = 0.0) -> "PlanarLayout":
        """Robots whose states `columns[i]` are their (x, y) position."""
        maps = tuple(np.eye(n)[list(c)] for n, c in zip(state_sizes, columns))
        return PlanarLayout(maps, tuple(np.zeros(2) for _ in state_sizes), tuple(radius for _ in state_sizes),
                            kind="plane")

    def position(self, agent: int, states: np.ndarray) -> np.ndarray:
        """Positions (T × 2) of the agent's state rows (T × n_x,i), or (2,) of one state."""
        return self.anchors[agent] + np.asarray(states) @ self.maps[agent].T

    def radius(self, agent: int) -> float:
        return self.radii[agent] if self.radii else 0.0

    def boundary(self, agent: int) -> tuple[np.ndarray, ...]:
        return self.boundaries[agent] if self.boundaries else ()

    def tube_outline(self, agent: int, generators: np.ndarray, max_edges: int = 36) -> np.ndarray:
        """Vertices (K × 2, around the origin, counter-clockwise) of the planar cross-section C_i Z of the zonotope
        Z = {G ξ : ‖ξ‖∞ ≤ 1}: generators sorted by angle, the outline walks 2 g_1 … 2 g_p, −2 g_1 …
        Generators closer than 360°/max_edges in angle are merged (their sum: exact when they are parallel), so
        that a tube of many generators stays a light marker."""
        planar = self.maps[agent] @ np.asarray(generators, float)
        planar = planar[:, np.linalg.norm(planar, axis=0) > 1e-12]
        if planar.shape[1] == 0:
            return np.zeros((1, 2))
        planar = np.where((planar[1] < 0) | ((planar[1] == 0) & (planar[0] < 0)), -planar, planar)   # upper half
        angle = np.arctan2(planar[1], planar[0])
        bins = np.minimum((angle / np.pi * (max_edges / 2)).astype(int), max_edges // 2 - 1)
        merged = np.array([planar[:, bins == b].sum(axis=1) for b in np.unique(bins)]).T
        merged = merged[:, np.argsort(np.arctan2(merged[1], merged[0]))]
        edges = np.hstack([2 * merged, -2 * merged]).T
        return -merged.sum(axis=1) + np.vstack([np.zeros(2), np.cumsum(edges, axis=0)[:-1]])
