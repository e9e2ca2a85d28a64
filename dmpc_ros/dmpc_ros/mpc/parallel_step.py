"""The largest uniform step w of a parallel (Jacobi) block update that keeps both cooperative guarantees.

In cooperative Jacobi every agent i proposes U + Δ_i (its block optimum, the others fixed) and the agents apply
U + w Σ_i Δ_i. Stewart et al. (2010) use convex weights (w = 1/M), which shrink with the number of agents even
when each agent interacts with few others. Two structural bounds give the same guarantees with a larger step:
- descent: with D = blockdiag(H_ii), (Σ w Δ_i)' H (Σ w Δ_i) ≤ w² λ Σ Δ_i' H_ii Δ_i for λ = λ_max(D^-½ H D^-½),
  so for w ≤ 1/λ the plant-wide cost falls by at least w Σ_i (V(U) − V(U + Δ_i)) ≥ 0 (the expected separable
  over-approximation of parallel coordinate descent, Richtárik & Takáč 2016); λ ≤ 1 + the largest number of
  agents one agent's Hessian block couples to, and λ ≤ M always;
- feasibility: a row c'U ≤ b that the inputs of the agents S_c affect holds at U + w Σ_{i∈S_c} Δ_i, a convex
  combination of U and the proposals U + Δ_i, when w |S_c| ≤ 1.
So w = min(1, 1/λ, 1/max_c |S_c|) ≥ 1/M: a platoon (gap rows couple two vehicles) gets 1/2–1/3, a formation
without coupled constraints 1/(1 + graph degree), a chain whose states all inputs reach keeps 1/M.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh

ZERO_TOLERANCE = 1e-12  # coefficients below this (relative to the largest) count as structural zeros


@dataclass(frozen=True)
class ParallelStepBounds:
    curvature: float     # λ_max(D^-½ H D^-½) ≥ 1
    widest_row: int      # max over constraint rows of the number of agents whose inputs the row involves
    widest_state: int    # max over agents of the number of agents whose inputs reach its predicted states

    def weight(self, state_rows_per_step: bool = False) -> float:
        """w; `state_rows_per_step`: rows on one agent's predicted states are added per control step
        (collision half-planes, plan-compatibility bounds), so their supports count too."""
        widest = max(self.widest_row, self.widest_state if state_rows_per_step else 1, 1)
        return float(min(1.0, 1.0 / max(self.curvature, 1.0), 1.0 / widest))


def parallel_step_bounds(H: np.ndarray, C: np.ndarray, Gamma: np.ndarray, input_blocks: list[np.ndarray],
                         state_rows: list[np.ndarray]) -> ParallelStepBounds:
    """Bounds of the condensed problem ½U'HU + …, C U ≤ …, X = … + Γ U; input_blocks[i] are agent i's columns of
    U, state_rows[i] its rows of X (all time steps)."""
    D = np.zeros_like(H)
    for b in input_blocks:
        D[np.ix_(b, b)] = H[np.ix_(b, b)]
    n = H.shape[0]
    curvature = float(eigh(H, D, eigvals_only=True, subset_by_index=[n - 1, n - 1])[0])
    return ParallelStepBounds(curvature, _widest(C, input_blocks),
                              max((_widest(Gamma[rows], input_blocks) for rows in state_rows), default=0))


def _widest(rows: np.ndarray, blocks: list[np.ndarray]) -> int:
    """Largest number of agents (column blocks) one row involves."""
    if rows.shape[0] == 0:
        return 0
    magnitude = np.abs(rows)
    scale = max(float(np.max(magnitude)), 1e-300)
    involved = np.column_stack([np.max(magnitude[:, b], axis=1) > ZERO_TOLERANCE * scale for b in blocks])
    return int(np.max(np.sum(involved, axis=1)))
