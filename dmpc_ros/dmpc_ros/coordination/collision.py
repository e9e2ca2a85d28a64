"""Collision avoidance as convex constraints: separating half-planes from the previous plans.

Non-convex ‖p_a(k) − p_b(k)‖ ≥ d is replaced, once per control step and for every predicted step k, by the
plane through the midpoint m of the two robots' previously planned positions p̂_a(k), p̂_b(k), normal
n = (p̂_a − p̂_b)/‖p̂_a − p̂_b‖, each robot keeping d/2 on its own side:
    n'(p_a(k) − m) ≥ d/2   and   n'(p_b(k) − m) ≤ −d/2.
Each constraint involves only the robot's own position, so every iterate of every scheme (each robot moves
only its own plan) keeps every pair at least d apart. Both robots compute the plane from the same shared data
(the warm starts every agent announces at iteration 0), so they agree on it. If the previous plans were d
apart, the warm starts satisfy their planes (they lie |p̂_a − p̂_b|/2 ≥ d/2 from m), so the step stays feasible.
Tube mode: the planes constrain nominal positions and each robot keeps, in addition, its tube's extent in the
plane's normal direction, a' p̄ ≤ b − h_{Z_p}(a) (Z_p: the tube's position components), so the real positions
p = p̄ + e_p with e ∈ Z stay on their sides and d apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..mpc.tubes import Zonotope


@dataclass(frozen=True)
class CollisionAvoidance:
    pairs: tuple[tuple[int, int], ...]        # robots that must stay apart
    min_distance: float                       # d [m]
    position_columns: tuple[int, int] = (0, 1)   # where (p_x, p_y) sit in each agent's state
    position_tubes: tuple[Zonotope, ...] | None = None   # tube mode: each robot's tube, position components

    def halfplanes(self, positions: np.ndarray) -> list[tuple[int, int, np.ndarray, float]]:
        """(agent, k, a, b) rows a' p_agent(k) ≤ b for k = 1..N from planned positions (N+1 × M × 2)."""
        rows = []
        for a, b in self.pairs:
            for k in range(1, positions.shape[0]):
                row_a, row_b = self._separation(a, b, positions[k, a], positions[k, b])
                rows += [(a, k, *row_a), (b, k, *row_b)]
        return rows

    def own_halfplanes(self, agent: int, position: np.ndarray,
                       partners: dict[int, np.ndarray]) -> list[tuple[np.ndarray, float]]:
        """Rows a' p ≤ b that the agent's position keeps from each of its partners, from planned positions of one
        predicted step (the agent's and those of the partners given): what its markers draw."""
        rows = []
        for j in sorted(set(partners) & self.partners(agent)):
            if (agent, j) in self.pairs:
                rows.append(self._separation(agent, j, position, partners[j])[0])
            else:
                rows.append(self._separation(j, agent, partners[j], position)[1])
        return rows

    def _separation(self, a: int, b: int, p_a: np.ndarray,
                    p_b: np.ndarray) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float]]:
        """(a'_a, b_a), (a'_b, b_b): the plane through the middle of the planned positions, d/2 (and each tube's
        extent) on either side."""
        delta = p_a - p_b
        length = float(np.linalg.norm(delta))
        normal = delta / length if length > 1e-9 else np.array([1.0, 0.0])   # coincident: both pick alike
        middle = float(normal @ (p_a + p_b)) / 2.0
        return ((-normal, -(middle + self.min_distance / 2.0) - self._margin(a, -normal)),
                (normal, middle - self.min_distance / 2.0 - self._margin(b, normal)))

    def _margin(self, agent: int, direction: np.ndarray) -> float:
        """h_{Z_p}(direction) of the agent's tube (0 without tubes)."""
        return 0.0 if self.position_tubes is None else float(self.position_tubes[agent].support(direction)[0])

    def positions(self, system, states: np.ndarray) -> np.ndarray:
        """(N+1 × M × 2) planned positions from stacked planned states (N+1 × n) of a CoupledLinearSystem."""
        columns = list(self.position_columns)
        return np.stack([states[:, system.state_slice(j)][:, columns] for j in range(system.num_agents)], axis=1)

    def partners(self, agent: int) -> set[int]:
        return {b if a == agent else a for a, b in self.pairs if agent in (a, b)}

    def state_rows(self, positions: np.ndarray, state_offsets, n_x: int,
                   agents: set[int] | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
        """The half-planes as rows G X ≤ g on stacked predicted states X = [x(1); …; x(N)] (n_x states per step,
        agent j's state starting at state_offsets[j]), optionally only those of `agents`. G is sparse (two
        entries a row): at 64 robots a dense G times the plant-wide prediction matrix cost 33 GFLOP per agent."""
        rows = [r for r in self.halfplanes(positions) if agents is None or r[0] in agents]
        N = positions.shape[0] - 1
        columns = np.asarray(self.position_columns)
        row_index = np.repeat(np.arange(len(rows)), columns.size)
        column_index = np.concatenate([(k - 1) * n_x + state_offsets[agent] + columns for agent, k, _, _ in rows]) \
            if rows else np.zeros(0, int)
        values = np.concatenate([a for _, _, a, _ in rows]) if rows else np.zeros(0)
        G = sp.csr_matrix((values, (row_index, column_index)), shape=(len(rows), N * n_x))
        return G, np.array([b for _, _, _, b in rows], float)
