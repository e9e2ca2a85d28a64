"""Dense QPs  min ½ z'Hz + q'z  s.t.  lower ≤ A z ≤ upper  whose matrices are fixed and whose vectors change.

Built once per agent; every negotiation iteration only updates (q, lower, upper) and warm-starts from the
previous iterate. The solver is a back end of the registry (mpc/qp_backends) serving the form `dense`: DAQP
(dual active set, exact active-set solutions; usually much faster for the small condensed agent QPs) by default,
OSQP, or a plugin's. A solve never returns NaN: failure is reported through `ok` / `status` and the caller falls
back to its feasible candidate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .qp_backends import BackendNames, qp_backend

BACKENDS = BackendNames("dense")   # names allowed for controller.solver (the registry's, plugins included)
FEASIBILITY_TOLERANCE = 1e-6  # relative primal residual above which a returned solution is rejected


@dataclass
class QPSolution:
    z: np.ndarray          # minimizer (finite; zeros when not ok)
    ok: bool               # solved to tolerance
    status: str            # solver's status text
    solve_time: float      # wall-clock time of the solve call [s]
    iterations: int
    infeasible: bool = False   # the solver found (or set-up detected) no point satisfying the constraints

    @property
    def usable(self) -> bool:
        """Solved, with a finite minimizer (what an agent may take into its plan)."""
        return self.ok and bool(np.all(np.isfinite(self.z)))


class DenseQP:
    """A QP with fixed (H, A); `solve(q, lower, upper, warm_start)` changes only the vectors.
    Rows flagged in `equalities` must hold with lower = upper (DAQP treats them as equality constraints)."""

    def __init__(self, H: np.ndarray, A: np.ndarray, backend: str = "daqp", tolerance: float = 1e-9,
                 equalities: np.ndarray | None = None) -> None:
        solver = qp_backend(backend, "dense")
        self.H = np.ascontiguousarray(0.5 * (H + H.T))
        self.A = np.ascontiguousarray(A.reshape(-1, H.shape[0]))
        self.backend = backend
        self.num_variables = H.shape[0]
        mask = np.zeros(self.A.shape[0], bool)
        if equalities is not None:
            mask[np.asarray(equalities, bool)] = True
        self._model = solver.dense(self.H, self.A, mask, tolerance)

    def set_hessian(self, H: np.ndarray) -> None:
        """A new H of the same size (e.g. ADMM's penalty changed): DAQP updates its model in place and keeps its
        active set; OSQP is set up again at the next solve."""
        if H.shape != self.H.shape:
            raise ValueError(f"set_hessian: H of shape {H.shape} is not allowed: the QP has {self.H.shape}")
        self.H = np.ascontiguousarray(0.5 * (H + H.T))
        self._model.set_hessian(self.H)

    def solve(self, q: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              warm_start: np.ndarray | None = None) -> QPSolution:
        started = time.perf_counter()
        result = self._model.solve(q, lower, upper, warm_start)
        z, status, iterations = result.x, result.status, result.iterations
        elapsed = time.perf_counter() - started
        if not result.ok or z is None or not np.all(np.isfinite(z)):
            return QPSolution(np.zeros(self.num_variables), False, status, elapsed, iterations,
                              infeasible=result.infeasible)
        if self.A.shape[0]:
            # Never trust a status alone: DAQP's warm-started Model has reported infeasible problems as solved.
            Az = self.A @ z
            residual = max(np.max(Az - upper), np.max(lower - Az))
            if residual > FEASIBILITY_TOLERANCE * (1.0 + np.max(np.abs(Az))):
                return QPSolution(np.zeros(self.num_variables), False,
                                  f"{status}, but violates a constraint by {residual:.3g}", elapsed, iterations)
        return QPSolution(np.asarray(z, float), True, status, elapsed, iterations)
