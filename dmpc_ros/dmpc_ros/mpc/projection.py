"""Euclidean projection onto a polyhedron {z : C z ≤ d} with fixed C: the cooperative agents' feasibility repair.

The set has as many variables as the whole plant's inputs over the horizon. For small plants a dense QP model
(DAQP, built once and re-solved with new d) is fastest; stored densely per agent it would need rows × N·m doubles
per agent — gigabytes at 64 agents — so above DENSE_LIMIT entries the projection is a sparse solve (Clarabel's
interior point by default; a platoon's gap rows touch two vehicles). Both solvers are back ends of the registry
(mpc/qp_backends: forms dense and sparse) and deterministic, so agents with the same view get the same point.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from .qp import DenseQP
from .qp_backends import qp_backend

DENSE_LIMIT = 2_000_000        # entries of C up to which the dense model is used (16 MB)
FEASIBILITY_TOLERANCE = 1e-7   # largest accepted row violation of the sparse solve, relative to 1 + max |C z|


class Projection:
    def __init__(self, C: sp.spmatrix, backend: str = "daqp", dense_limit: int = DENSE_LIMIT,
                 sparse_backend: str = "clarabel", basis: sp.spmatrix | None = None) -> None:
        """backend: the dense model's (form dense); sparse_backend: the large sets' (form sparse); basis: z = T w
        restricts the projection to a subspace (held control-horizon tails, mpc/input_parametrization.py)."""
        self.basis = None if basis is None else sp.csr_matrix(basis)
        self.C = sp.csr_matrix(C) if basis is None else sp.csr_matrix(C @ self.basis)
        n = self.C.shape[1]
        self._gram = 2.0 * (sp.identity(n, format="csc") if basis is None
                            else sp.csc_matrix(self.basis.T @ self.basis))
        self._dense = (DenseQP(self._gram.toarray(), self.C.toarray(), backend)
                       if self.C.shape[0] * n <= dense_limit else None)
        self._sparse_backend = None if self._dense is not None else qp_backend(sparse_backend, "sparse")
        self._rows: tuple[bytes, sp.csc_matrix] | None = None   # sparse: C's rows with finite bounds, last mask

    def solve(self, d: np.ndarray, point: np.ndarray) -> tuple[np.ndarray, bool, float]:
        """(z, ok, solve time [s]) with z = argmin ‖z − point‖² s.t. C z ≤ d (z in the basis' range when
        given); z = point when not ok."""
        linear = -2.0 * (point if self.basis is None else self.basis.T @ point)
        if self._dense is not None:
            solution = self._dense.solve(linear, np.full(d.size, -np.inf), d)
            z, ok, elapsed = solution.z, solution.usable, solution.solve_time
        else:
            z, ok, elapsed = self._sparse(d, linear)
        if not ok:
            return point.copy(), False, elapsed
        return (z if self.basis is None else self.basis @ z), True, elapsed

    def _sparse(self, d: np.ndarray, linear: np.ndarray) -> tuple[np.ndarray, bool, float]:
        finite = np.isfinite(d)
        if self._rows is None or self._rows[0] != finite.tobytes():   # rows without a bound drop out (same each call)
            self._rows = (finite.tobytes(), sp.csc_matrix(self.C[finite]))
        A, b = self._rows[1], d[finite]
        started = time.perf_counter()
        result = self._sparse_backend.sparse(sp.triu(self._gram, format="csc"), linear, A, b, 0, 1e-10).solve()
        elapsed = time.perf_counter() - started
        z = np.asarray(result.x, float)
        ok = result.ok and bool(np.all(np.isfinite(z)))
        if ok and b.size:
            Az = A @ z
            ok = float(np.max(Az - b)) <= FEASIBILITY_TOLERANCE * (1.0 + float(np.max(np.abs(Az))))
        return z, ok, elapsed
