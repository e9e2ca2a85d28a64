"""Clarabel (interior point, sparse; Goulart & Chen 2024): tight tolerances in few iterations on the large sparse
QPs (the centralized MPC, projections too big for a dense model). Serves sparse: equality rows as a zero cone,
the others as a nonnegative cone."""
from __future__ import annotations

import clarabel
import numpy as np

from . import QPBackend, QPResult

SOLVED = ("Solved", "AlmostSolved")
INFEASIBLE = ("PrimalInfeasible", "AlmostPrimalInfeasible")


def settings(tolerance: float, max_iterations: int = 200) -> clarabel.DefaultSettings:
    """Quiet settings with gap and feasibility tolerances `tolerance`."""
    chosen = clarabel.DefaultSettings()
    chosen.verbose = False
    chosen.tol_gap_abs = chosen.tol_gap_rel = chosen.tol_feas = tolerance
    chosen.max_iter = max_iterations
    return chosen


class SparseModel:
    """A clarabel.DefaultSolver set up once; q and b updated in place."""

    def __init__(self, P, q, A, b, num_equalities: int, tolerance: float, max_iterations: int) -> None:
        cones = [clarabel.ZeroConeT(num_equalities)] if num_equalities else []
        if b.size > num_equalities:
            cones.append(clarabel.NonnegativeConeT(b.size - num_equalities))
        self._solver = clarabel.DefaultSolver(P, q, A, b, cones, settings(tolerance, max_iterations))

    def update(self, q: np.ndarray | None = None, b: np.ndarray | None = None) -> None:
        if q is not None:
            self._solver.update(q=q)
        if b is not None:
            self._solver.update(b=b)

    def solve(self) -> QPResult:
        result = self._solver.solve()
        status = str(result.status)
        duals = getattr(result, "z", None)
        return QPResult(np.asarray(result.x, float), status in SOLVED, status, int(getattr(result, "iterations", 0)),
                        None if duals is None else np.asarray(duals, float), status in INFEASIBLE)


class ClarabelBackend(QPBackend):
    name = "clarabel"
    forms = frozenset({"sparse"})

    def sparse(self, P, q, A, b, num_equalities, tolerance, max_iterations=200) -> SparseModel:
        return SparseModel(P, q, A, b, num_equalities, tolerance, max_iterations)


BACKEND = ClarabelBackend()
