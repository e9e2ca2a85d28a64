"""OSQP (ADMM, sparse; Stellato et al. 2020): set up once, then vector updates and warm starts. Serves dense (the
agents' QPs, as an alternative to DAQP; equality rows are those with lower = upper)."""
from __future__ import annotations

import numpy as np
import osqp
import scipy.sparse as sp

from . import QPBackend, QPResult


class ParametricModel:
    """An osqp.OSQP over fixed (H, A): updated vectors, warm-started from the given point; set up again when H
    changes."""

    def __init__(self, H: np.ndarray, A: np.ndarray, tolerance: float) -> None:
        self.H, self.A, self.num_variables = H, A, H.shape[0]
        self._tolerance = tolerance
        self._osqp: osqp.OSQP | None = None

    def set_hessian(self, H: np.ndarray) -> None:
        self.H = H
        self._osqp = None

    def solve(self, q: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              warm_start: np.ndarray | None = None) -> QPResult:
        if self._osqp is None:
            self._osqp = osqp.OSQP()
            self._osqp.setup(sp.csc_matrix(np.triu(self.H)), q, sp.csc_matrix(self.A), lower, upper, verbose=False,
                             polishing=False, eps_abs=self._tolerance, eps_rel=self._tolerance, max_iter=20000,
                             warm_starting=True)
        else:
            self._osqp.update(q=q, l=lower, u=upper)
        if warm_start is not None:
            self._osqp.warm_start(x=warm_start)
        result = self._osqp.solve(raise_error=False)
        status = result.info.status
        return QPResult(result.x, result.info.status_val in (1, 2),   # solved, solved inaccurate
                        status, int(result.info.iter), None if result.y is None else np.asarray(result.y, float),
                        "primal infeasible" in status)


class OsqpBackend(QPBackend):
    name = "osqp"
    forms = frozenset({"dense"})

    def dense(self, H, A, equalities, tolerance) -> ParametricModel:
        return ParametricModel(H, A, tolerance)


BACKEND = OsqpBackend()
