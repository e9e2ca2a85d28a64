"""Coupled linear subsystems x_i(k+1) = A_ii x_i + B_ii u_i + Σ_j (A_ij x_j + B_ij u_j) + w_i
with per-agent constraints."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.linalg import expm


@dataclass(frozen=True)
class PolytopicConstraint:
    """The set {v : H v ≤ h} (H is rows × dim, h has one bound per row)."""

    H: np.ndarray
    h: np.ndarray

    @staticmethod
    def box(lower: np.ndarray, upper: np.ndarray) -> "PolytopicConstraint":
        """Rows for the finite bounds of lower ≤ v ≤ upper (infinite bounds give no row)."""
        lower, upper = np.asarray(lower, float), np.asarray(upper, float)
        empty = np.flatnonzero((lower > upper) | (lower == np.inf) | (upper == -np.inf) | np.isnan(lower)
                               | np.isnan(upper))
        if empty.size:   # +inf as a lower bound is no bound dropped: no value is above it
            k = int(empty[0])
            raise ValueError(f"box bounds lower[{k}] = {lower[k]} and upper[{k}] = {upper[k]} leave no value: the set "
                             f"is empty or undefined (use -inf for no lower bound, inf for no upper bound)")
        eye = np.eye(lower.size)
        rows = [eye[i] for i in range(lower.size) if np.isfinite(upper[i])]
        rows += [-eye[i] for i in range(lower.size) if np.isfinite(lower[i])]
        bounds = [upper[i] for i in range(lower.size) if np.isfinite(upper[i])]
        bounds += [-lower[i] for i in range(lower.size) if np.isfinite(lower[i])]
        return PolytopicConstraint(np.array(rows).reshape(-1, lower.size), np.array(bounds, float))

    def scaled_into(self, v: np.ndarray) -> np.ndarray:
        """v scaled toward the origin until every row holds (the origin inside the set), e.g. a terminal
        controller's input in a shifted plan: H (s v) ≤ h for the largest s ∈ [0, 1]."""
        if self.h.size == 0:
            return v
        load = self.H @ v
        if not np.any(load > self.h):
            return v
        ratios = np.where(load > 0, self.h / np.maximum(load, 1e-300), np.inf)
        return v * max(0.0, min(1.0, float(np.min(ratios))))

    def violation(self, v: np.ndarray) -> float:
        """Largest amount by which v violates a row (0 if inside), in the constraint's units."""
        if self.h.size == 0:
            return 0.0
        return float(max(0.0, np.max(self.H @ v - self.h)))

    def bounding_box(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of every coordinate over the set (LPs; ±inf where unbounded)."""
        from scipy.optimize import linprog

        lower, upper = np.full(dim, -np.inf), np.full(dim, np.inf)
        for r in range(dim if self.h.size else 0):
            for sign, out in ((1.0, lower), (-1.0, upper)):
                result = linprog(sign * np.eye(dim)[r], A_ub=self.H, b_ub=self.h, bounds=[(None, None)] * dim,
                                 method="highs")
                if result.status == 0:
                    out[r] = sign * result.fun
        return lower, upper


@dataclass(frozen=True)
class MixedConstraint:
    """Rows Hx x + Hu u ≤ h on one agent's state and input at the same step (e.g. a jerk limit |u − a| ≤ τ j)."""

    Hx: np.ndarray
    Hu: np.ndarray
    h: np.ndarray

    def violation(self, x: np.ndarray, u: np.ndarray) -> float:
        return float(max(0.0, np.max(self.Hx @ x + self.Hu @ u - self.h, initial=0.0)))


class AgentSizes:
    """Plant-wide sizes of a model made of `agents` (each with n_x and n_u): the PlantModel's counting part."""

    agents: tuple

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def n_x(self) -> int:
        return sum(a.n_x for a in self.agents)

    @property
    def n_u(self) -> int:
        return sum(a.n_u for a in self.agents)


@dataclass(frozen=True)
class Subsystem:
    """One agent's subsystem: dimensions and its state and input constraint sets (box rows included)."""

    name: str
    n_x: int
    n_u: int
    state_constraint: PolytopicConstraint
    input_constraint: PolytopicConstraint
    state_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    state_units: tuple[str, ...] = ()   # SI unit of each state, for plots and logs
    input_units: tuple[str, ...] = ()
    mixed_constraint: MixedConstraint | None = None   # applies at k = 0..N−1 (with the input of that step)


@dataclass(frozen=True)
class CouplingTerm:
    """A positive semidefinite stage-cost term on two agents' states, (x_o − x̄_o; x_j − x̄_j)' W (…), that the
    `owner` o evaluates for the pair (e.g. a formation edge ‖p_o − p_j − (c_o − c_j)‖²). Schemes that split the
    cost by agent (ADMM) give each term to its owner, who holds a copy of the other agent's states."""

    owner: int
    other: int
    W: np.ndarray      # (n_o + n_j) × (n_o + n_j)

    def embed(self, system: CoupledLinearSystem) -> np.ndarray:
        """The term as a plant-wide n × n matrix."""
        index = np.r_[np.arange(system.n_x)[system.state_slice(self.owner)],
                      np.arange(system.n_x)[system.state_slice(self.other)]]
        full = np.zeros((system.n_x, system.n_x))
        full[np.ix_(index, index)] = self.W
        return full


@dataclass(frozen=True)
class CoupledLinearSystem:
    """Discrete-time coupled linear system in block form; A[i][j] = A_ij (n_x_i × n_x_j), B[i][j] = B_ij."""

    subsystems: tuple[Subsystem, ...]
    A: tuple[tuple[np.ndarray, ...], ...]
    B: tuple[tuple[np.ndarray, ...], ...]
    sample_time: float
    shared_input_constraint: PolytopicConstraint | None = None   # rows on the stacked u(k) of all agents, every k
    _full: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_agents(self) -> int:
        return len(self.subsystems)

    @property
    def state_offsets(self) -> np.ndarray:
        """Start of each agent's states in the stacked state, and n_x last (cached, read-only)."""
        return self._offsets("n_x")

    @property
    def input_offsets(self) -> np.ndarray:
        """Start of each agent's inputs in the stacked input, and n_u last (cached, read-only)."""
        return self._offsets("n_u")

    def _offsets(self, size: str) -> np.ndarray:
        key = f"offsets_{size}"
        if key not in self._full:
            offsets = np.concatenate([[0], np.cumsum([getattr(s, size) for s in self.subsystems])]).astype(int)
            offsets.flags.writeable = False
            self._full[key] = offsets
        return self._full[key]

    @property
    def n_x(self) -> int:
        return int(self.state_offsets[-1])

    @property
    def n_u(self) -> int:
        return int(self.input_offsets[-1])

    def state_slice(self, i: int) -> slice:
        return slice(int(self.state_offsets[i]), int(self.state_offsets[i + 1]))

    def input_slice(self, i: int) -> slice:
        return slice(int(self.input_offsets[i]), int(self.input_offsets[i + 1]))

    def full_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """The plant-wide (A, B) assembled from the blocks (cached)."""
        if "AB" not in self._full:
            self._full["AB"] = (np.block([list(row) for row in self.A]), np.block([list(row) for row in self.B]))
        return self._full["AB"]

    def sparse_matrices(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(A, B) as sparse matrices (cached): what plant-wide predictions and neighbourhood searches use."""
        if "sparse" not in self._full:
            A, B = self.full_matrices()
            self._full["sparse"] = (sp.csr_matrix(A), sp.csr_matrix(B))
        return self._full["sparse"]

    def sparse_magnitudes(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(|A|, |B|) entrywise (cached): they bound how far influence travels (mpc/neighbourhood.py)."""
        if "magnitudes" not in self._full:
            self._full["magnitudes"] = tuple(abs(M) for M in self.sparse_matrices())
        return self._full["magnitudes"]

    def dynamic_neighbours(self, i: int) -> tuple[int, ...]:
        """Agents j ≠ i whose state or input enters x_i's update (non-zero A_ij or B_ij)."""
        return tuple(j for j in range(self.num_agents)
                     if j != i and (np.any(self.A[i][j]) or np.any(self.B[i][j])))

    def step(self, x: np.ndarray, u: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """One step of the plant-wide dynamics (stacked agent order), with optional additive disturbance."""
        A, B = self.full_matrices()
        x_next = A @ x + B @ u
        return x_next if w is None else x_next + w

    def stacked_constraints(self) -> tuple["PolytopicConstraint", "PolytopicConstraint"]:
        """The agents' state and input sets as constraints on the stacked x and u (block diagonal)."""
        from scipy.linalg import block_diag

        subs = self.subsystems
        return (PolytopicConstraint(block_diag(*[s.state_constraint.H for s in subs]),
                                    np.concatenate([s.state_constraint.h for s in subs])),
                PolytopicConstraint(block_diag(*[s.input_constraint.H for s in subs]),
                                    np.concatenate([s.input_constraint.h for s in subs])))

    def constraint_violation(self, x: np.ndarray, u: np.ndarray | None = None) -> float:
        """Largest violation over all agents' state (and input) constraints at stacked x (and u)."""
        worst = 0.0
        for i, sub in enumerate(self.subsystems):
            worst = max(worst, sub.state_constraint.violation(x[self.state_slice(i)]))
            if u is not None:
                worst = max(worst, sub.input_constraint.violation(u[self.input_slice(i)]))
                if sub.mixed_constraint is not None:
                    worst = max(worst, sub.mixed_constraint.violation(x[self.state_slice(i)], u[self.input_slice(i)]))
        if u is not None and self.shared_input_constraint is not None:
            worst = max(worst, self.shared_input_constraint.violation(u))
        return worst

    @staticmethod
    def from_full(subsystems: list[Subsystem], A: np.ndarray, B: np.ndarray, sample_time: float,
                  coupling_tolerance: float = 0.0,
                  shared_input_constraint: PolytopicConstraint | None = None) -> "CoupledLinearSystem":
        """Split plant-wide (A, B) into blocks; coupling blocks with all entries ≤ tolerance·max|entry| become zero."""
        sx = np.concatenate([[0], np.cumsum([s.n_x for s in subsystems])])
        su = np.concatenate([[0], np.cumsum([s.n_u for s in subsystems])])
        scale_a, scale_b = np.max(np.abs(A)), np.max(np.abs(B))

        def block(M: np.ndarray, rows: slice, cols: slice, diagonal: bool, scale: float) -> np.ndarray:
            sub = M[rows, cols].copy()
            if not diagonal and np.max(np.abs(sub), initial=0.0) <= coupling_tolerance * scale:
                sub[:] = 0.0
            return sub

        count = len(subsystems)
        A_blocks = tuple(tuple(block(A, slice(sx[i], sx[i + 1]), slice(sx[j], sx[j + 1]), i == j, scale_a)
                               for j in range(count)) for i in range(count))
        B_blocks = tuple(tuple(block(B, slice(sx[i], sx[i + 1]), slice(su[j], su[j + 1]), i == j, scale_b)
                               for j in range(count)) for i in range(count))
        return CoupledLinearSystem(tuple(subsystems), A_blocks, B_blocks, float(sample_time), shared_input_constraint)


def discretize_zoh(Ac: np.ndarray, Bc: np.ndarray, sample_time: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretization: [A B; 0 I] = expm([Ac Bc; 0 0]·T)."""
    n, m = Bc.shape
    augmented = np.zeros((n + m, n + m))
    augmented[:n, :n], augmented[:n, n:] = Ac, Bc
    phi = expm(augmented * sample_time)
    return phi[:n, :n], phi[:n, n:]
