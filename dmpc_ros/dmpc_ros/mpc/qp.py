"""Dense QPs  min ½ z'Hz + q'z  s.t.  lower ≤ A z ≤ upper  whose matrices are fixed and whose vectors change.

Built once per agent; every negotiation iteration only updates (q, lower, upper) and warm-starts from the
previous iterate. Two back ends: OSQP (ADMM, sparse, parametric update) and DAQP (dual active set, dense,
exact active-set solutions; usually much faster for the small condensed agent QPs). A solve never returns
NaN: failure is reported through `ok` / `status` and the caller falls back to its feasible candidate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import clarabel
import daqp
import numpy as np
import osqp
import scipy.sparse as sp

BACKENDS = ("daqp", "osqp")
DAQP_INFINITY = 1e30
FEASIBILITY_TOLERANCE = 1e-6  # relative primal residual above which a returned solution is rejected
DAQP_EQUALITY = 5             # DAQP's sense flag for an equality row
DAQP_STATUS = {1: "solved", 2: "solved (soft)", -1: "primal infeasible", -2: "cycling", -3: "unbounded",
               -4: "iteration limit", -5: "nonconvex", -6: "initial active set overdetermined"}


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
        if backend not in BACKENDS:
            raise ValueError(f"QP backend '{backend}' is not supported: allowed {', '.join(BACKENDS)}")
        self.H = np.ascontiguousarray(0.5 * (H + H.T))
        self.A = np.ascontiguousarray(A.reshape(-1, H.shape[0]))
        self.backend = backend
        self.num_variables = H.shape[0]
        self._osqp: osqp.OSQP | None = None
        self._daqp: daqp.Model | None = None
        self._tolerance = tolerance
        self._sense = np.zeros(self.A.shape[0], dtype=np.int32)
        if equalities is not None:
            self._sense[np.asarray(equalities, bool)] = DAQP_EQUALITY

    def set_hessian(self, H: np.ndarray) -> None:
        """A new H of the same size (e.g. ADMM's penalty changed): DAQP updates its model in place and keeps its
        active set; OSQP is set up again at the next solve."""
        if H.shape != self.H.shape:
            raise ValueError(f"set_hessian: H of shape {H.shape} is not allowed: the QP has {self.H.shape}")
        self.H = np.ascontiguousarray(0.5 * (H + H.T))
        self._osqp = None
        if self._daqp is not None:
            self._daqp.update(H=self.H)

    def _setup_osqp(self, q: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        self._osqp = osqp.OSQP()
        self._osqp.setup(sp.csc_matrix(np.triu(self.H)), q, sp.csc_matrix(self.A), lower, upper, verbose=False,
                         polishing=False, eps_abs=self._tolerance, eps_rel=self._tolerance, max_iter=20000,
                         warm_starting=True)

    def solve(self, q: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              warm_start: np.ndarray | None = None) -> QPSolution:
        started = time.perf_counter()
        if self.backend == "osqp":
            z, ok, status, iterations = self._solve_osqp(q, lower, upper, warm_start)
        else:
            z, ok, status, iterations = self._solve_daqp(q, lower, upper, warm_start)
        elapsed = time.perf_counter() - started
        if not ok or not np.all(np.isfinite(z)):
            return QPSolution(np.zeros(self.num_variables), False, status, elapsed, iterations,
                              infeasible="primal infeasible" in status)   # DAQP's and OSQP's word
        if self.A.shape[0]:
            # Never trust a status alone: DAQP's warm-started Model has reported infeasible problems as solved.
            Az = self.A @ z
            residual = max(np.max(Az - upper), np.max(lower - Az))
            if residual > FEASIBILITY_TOLERANCE * (1.0 + np.max(np.abs(Az))):
                return QPSolution(np.zeros(self.num_variables), False,
                                  f"{status}, but violates a constraint by {residual:.3g}", elapsed, iterations)
        return QPSolution(np.asarray(z, float), True, status, elapsed, iterations)

    def _solve_osqp(self, q, lower, upper, warm_start):
        if self._osqp is None:
            self._setup_osqp(q, lower, upper)
        else:
            self._osqp.update(q=q, l=lower, u=upper)
        if warm_start is not None:
            self._osqp.warm_start(x=warm_start)
        result = self._osqp.solve(raise_error=False)
        ok = result.info.status_val in (1, 2)  # solved, solved inaccurate
        return result.x, ok, result.info.status, int(result.info.iter)

    def _solve_daqp(self, q, lower, upper, warm_start):
        bupper = np.minimum(upper, DAQP_INFINITY)
        blower = np.maximum(lower, -DAQP_INFINITY)
        reused = self._daqp is not None
        try:
            if reused:
                self._daqp.update(f=q, bupper=bupper, blower=blower, sense=self._sense.copy())
            else:
                self._setup_daqp(q, bupper, blower)
            z, _, exitflag, info = self._daqp.solve()
            if exitflag not in (1, 2) and reused:
                # the reused model starts from the previous active set, which has made DAQP report feasible
                # problems as infeasible: decide a failure from a fresh model
                self._setup_daqp(q, bupper, blower)
                z, _, exitflag, info = self._daqp.solve()
        except RuntimeError as error:  # DAQP refuses set-up when the first problem is infeasible
            self._daqp = None
            return np.zeros(self.num_variables), False, f"daqp: {error}", 0
        return (z, exitflag in (1, 2), DAQP_STATUS.get(int(exitflag), f"exitflag {exitflag}"),
                int(info.get("iterations", 0)))

    def _setup_daqp(self, q, bupper, blower) -> None:
        model = daqp.Model()
        self._daqp = None
        model.setup(self.H, q, self.A, bupper, blower, self._sense.copy())
        model.settings = {"primal_tol": self._tolerance, "iter_limit": 10000}
        self._daqp = model


def clarabel_settings(tolerance: float, max_iterations: int = 200) -> clarabel.DefaultSettings:
    """Quiet Clarabel settings with gap and feasibility tolerances `tolerance` (centralized MPC, projections)."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tolerance
    settings.max_iter = max_iterations
    return settings
