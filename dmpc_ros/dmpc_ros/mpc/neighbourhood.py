"""The part of the plant one agent needs, found from how far influence travels within the horizon.

An agent's block problem needs the predicted states its own inputs move, plus the states the cost and constraints
couple to them (the *observed* agents O_i), and the initial states and inputs that move those predictions (the
*view* V_i ⊇ O_i). Both come from bounds on influence: |A| and |B| propagated over the horizon bound the
coefficient by which any source can move any predicted state. Sources and states whose bound is below
INFLUENCE_TOLERANCE of the largest are left out, so on a sparse graph V_i is bounded by the horizon's reach, not
by the number of agents. The agent simulates only V_i's sub-network: its predictions of O_i equal the plant-wide
ones to that tolerance, and exactly when V_i is the whole plant.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..models.linear import CoupledLinearSystem

INFLUENCE_TOLERANCE = 1e-10   # relative influence bound below which a source or a predicted state is left out


def agents_of(offsets: np.ndarray, indices: np.ndarray) -> set[int]:
    """The agents owning the given stacked state (or input) indices."""
    return {int(a) for a in np.unique(np.searchsorted(offsets, indices, side="right") - 1)}


def stacked_indices(offsets: np.ndarray, agents: Iterable[int]) -> np.ndarray:
    """The stacked state (or input) indices of `agents`, in the given order."""
    return np.concatenate([np.arange(offsets[a], offsets[a + 1]) for a in agents] + [np.zeros(0, int)]).astype(int)


def significant(score: np.ndarray, tolerance: float = INFLUENCE_TOLERANCE) -> np.ndarray:
    """Indices whose influence bound exceeds `tolerance` of the largest one."""
    top = float(np.max(score, initial=0.0))
    return np.flatnonzero(score > tolerance * top) if top > 0 else np.zeros(0, int)


def reached_states(system: CoupledLinearSystem, agent: int, horizon: int,
                   tolerance: float = INFLUENCE_TOLERANCE) -> np.ndarray:
    """Stacked states whose prediction over the horizon the agent's inputs move (bound |A|^s |B_·i|, s < N, above
    `tolerance` of its largest entry)."""
    A, B = system.sparse_magnitudes()
    g = np.asarray(B[:, system.input_slice(agent)].sum(axis=1)).ravel()
    score = g.copy()
    for _ in range(horizon - 1):
        g = A @ g
        score = np.maximum(score, g)
    return significant(score, tolerance)


def sources_of(system: CoupledLinearSystem, states: np.ndarray, horizon: int) -> set[int]:
    """Agents whose initial states or inputs move the predictions x(1..N) of the given stacked states."""
    A, B = system.sparse_magnitudes()
    AT, BT = A.T.tocsr(), B.T.tocsr()
    observed = np.zeros(system.n_x)
    observed[states] = 1.0
    lam = observed.copy()                    # λ_N: adjoint of Σ_k |x_k| over the observed states
    input_score = BT @ lam
    for _ in range(horizon - 1):
        lam = observed + AT @ lam             # λ_k for k = N−1 … 1
        input_score = np.maximum(input_score, BT @ lam)
    state_score = AT @ lam
    return (agents_of(system.state_offsets, significant(state_score))
            | agents_of(system.input_offsets, significant(input_score)))


@dataclass(frozen=True)
class SubNetwork:
    """Agents `members` (sorted global ids) and their dynamics among themselves; local vectors stack their states
    and inputs in member order."""

    members: tuple[int, ...]
    A: np.ndarray
    B: np.ndarray
    state_index: np.ndarray     # plant-wide state index of each local state
    input_index: np.ndarray
    state_slices: dict[int, slice]
    input_slices: dict[int, slice]

    @staticmethod
    def of(system: CoupledLinearSystem, members: Iterable[int]) -> "SubNetwork":
        members = tuple(sorted(set(members)))
        state_index = stacked_indices(system.state_offsets, members)
        input_index = stacked_indices(system.input_offsets, members)
        A, B = system.sparse_matrices()
        states, inputs, s, u = {}, {}, 0, 0
        for a in members:
            states[a] = slice(s, s + system.subsystems[a].n_x)
            inputs[a] = slice(u, u + system.subsystems[a].n_u)
            s, u = states[a].stop, inputs[a].stop
        return SubNetwork(members, A[state_index][:, state_index].toarray(), B[state_index][:, input_index].toarray(),
                          state_index, input_index, states, inputs)

    @property
    def n_x(self) -> int:
        return int(self.state_index.size)

    @property
    def n_u(self) -> int:
        return int(self.input_index.size)

    def local_states(self, agents: Iterable[int]) -> np.ndarray:
        return np.concatenate([np.arange(self.state_slices[a].start, self.state_slices[a].stop) for a in agents]
                              + [np.zeros(0, int)]).astype(int)

    def local_inputs(self, agents: Iterable[int]) -> np.ndarray:
        return np.concatenate([np.arange(self.input_slices[a].start, self.input_slices[a].stop) for a in agents]
                              + [np.zeros(0, int)]).astype(int)

    def simulate(self, x0: np.ndarray, U: np.ndarray, out: np.ndarray) -> np.ndarray:
        """States x(0..N) (N+1 × n) under inputs U (N × m, time-major rows), written into `out`."""
        out[0] = x0
        forced = U @ self.B.T
        for k in range(U.shape[0]):
            np.dot(self.A, out[k], out=out[k + 1])
            out[k + 1] += forced[k]
        return out

    def impulse_responses(self, columns: np.ndarray, horizon: int) -> np.ndarray:
        """A^s B[:, columns] for s = 0..N−1 (N × n × len(columns))."""
        response = np.empty((horizon, self.n_x, columns.size))
        response[0] = self.B[:, columns]
        for s in range(1, horizon):
            response[s] = self.A @ response[s - 1]
        return response


def toeplitz_response(responses: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The map from inputs u(0..N−1) (time-major, len(columns) per step) to the states `rows` at k = 0..N:
    (N+1)·len(rows) × N·len(columns), block (k, t) = A^{k−1−t} B for t < k."""
    N, _, width = responses.shape
    restricted = responses[:, rows, :]
    G = np.zeros(((N + 1) * rows.size, N * width))
    for k in range(1, N + 1):
        for t in range(k):
            G[k * rows.size:(k + 1) * rows.size, t * width:(t + 1) * width] = restricted[k - 1 - t]
    return G


def sparse_rows(entries: list[tuple[int, int, float]], shape: tuple[int, int]) -> sp.csr_matrix:
    """A CSR matrix from (row, column, value) triples (duplicates add up)."""
    if not entries:
        return sp.csr_matrix(shape)
    r, c, v = zip(*entries)
    return sp.csr_matrix((np.asarray(v, float), (np.asarray(r, int), np.asarray(c, int))), shape=shape)
