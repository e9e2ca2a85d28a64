"""Multiparametric QPs: the explicit solution z*(θ) of  min ½ z'Hz + (f + Fθ)'z  s.t.  A z ≤ b + Bθ,  θ in a box.

The solution is piecewise affine on critical regions CR = {θ : Φθ ≤ φ}, z* = gain θ + offset (Pistikopoulos,
Diangelakis & Oberdieck 2020). Regions are explored geometrically: a QP solved at a point gives the active set and
its region; every facet is found by a Chebyshev-ball LP on its hyperplane, and the region beyond it by a QP just
across the facet's centre. Rows that no z in its bounds and no θ in the box can make active are removed first.
Adjacency (Brahmbhatt, Ganesh & Avraamidou 2026, LP (14)) is computed on pairs of regions that share a hyperplane.
The QPs and the Chebyshev LPs are solved by a back end of the registry (mpc/qp_backends: forms dense_once and lp),
DAQP by default.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

from ..progress import report
from .qp_backends import qp_backend

ACTIVE_MULTIPLIER = 1e-9      # a multiplier above this (relative to 1 + max λ) marks a strongly active row
RADIUS_TOLERANCE = 1e-7       # Chebyshev radius [normalized parameter units] below which a region or facet is flat
CROSSING_STEP = 1e-5          # how far past a facet's centre the next region is sought [normalized units]
HYPERPLANE_DIGITS = 7         # rounding of normalized rows when hyperplanes are matched
MAX_REGIONS = 50_000
MAX_RADIUS = 1e6              # cap of the Chebyshev radius (the LPs stay bounded)
LP_TOLERANCE = 1e-10          # primal tolerance of the Chebyshev LPs


@dataclass(frozen=True)
class ParametricQP:
    """min ½ z'Hz + (f + Fθ)'z  s.t.  A z ≤ b + Bθ,  lower ≤ θ ≤ upper (the explored parameter set)."""

    H: np.ndarray
    f: np.ndarray
    F: np.ndarray
    A: np.ndarray
    b: np.ndarray
    B: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @property
    def num_parameters(self) -> int:
        return self.F.shape[1]

    @property
    def num_variables(self) -> int:
        return self.H.shape[0]

    def digest(self) -> str:
        """A hash of every number of the problem (cache key of its explicit solution)."""
        sha = hashlib.sha256()
        for array in (self.H, self.f, self.F, self.A, self.b, self.B, self.lower, self.upper):
            sha.update(np.ascontiguousarray(array, float).tobytes())
            sha.update(str(array.shape).encode())
        return sha.hexdigest()[:20]

    def solve_at(self, theta: np.ndarray, backend: str = "daqp") -> tuple[np.ndarray, tuple[int, ...]] | None:
        """(z*, strongly active rows) at θ, or None if the QP is infeasible there."""
        upper = self.b + self.B @ theta
        result = qp_backend(backend, "dense_once").solve_dense(self.H, self.f + self.F @ theta, self.A,
                                                               np.full(upper.size, -np.inf), upper)
        if not result.ok:
            return None
        lam = result.duals
        active = np.flatnonzero(lam > ACTIVE_MULTIPLIER * (1.0 + np.max(np.abs(lam), initial=0.0)))
        return np.asarray(result.x, float), tuple(int(j) for j in active)

    def reduced(self) -> tuple["ParametricQP", np.ndarray]:
        """The problem without rows that no (z, θ) in the box of z's own bounds and the parameter box can make
        active, and the indices of the rows kept."""
        z_low, z_high = variable_bounds(self.A, self.b, self.B, self.lower, self.upper)
        worst = (np.maximum(self.A * z_low, self.A * z_high).sum(axis=1)
                 + np.maximum(-self.B * self.lower, -self.B * self.upper).sum(axis=1))
        keep = np.flatnonzero(~(worst < self.b - 1e-9 * (1.0 + np.abs(self.b))))
        return ParametricQP(self.H, self.f, self.F, self.A[keep], self.b[keep], self.B[keep], self.lower,
                            self.upper), keep


def variable_bounds(A: np.ndarray, b: np.ndarray, B: np.ndarray, lower: np.ndarray,
                    upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-variable bounds implied by single-variable rows (a z_c ≤ b + Bθ) over the parameter box (±inf: none)."""
    n = A.shape[1]
    low, high = np.full(n, -np.inf), np.full(n, np.inf)
    for r in np.flatnonzero(np.count_nonzero(A, axis=1) == 1):
        c = int(np.flatnonzero(A[r])[0])
        most = b[r] + np.maximum(B[r] * lower, B[r] * upper).sum()
        if A[r, c] > 0:
            high[c] = min(high[c], most / A[r, c])
        else:
            low[c] = max(low[c], most / A[r, c])
    return low, high


@dataclass
class CriticalRegion:
    """{θ : Φθ ≤ φ} (rows normalized) on which z*(θ) = gain θ + offset; `active`: the problem's active rows."""

    active: tuple[int, ...]
    Phi: np.ndarray
    phi: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    facets: np.ndarray = field(default_factory=lambda: np.zeros(0, int))   # rows of Φ that are facets (box rows
    #                                                                        excluded: nothing lies beyond them)
    across: dict[int, int] = field(default_factory=dict)                   # facet row → region found across it
    centres: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict, repr=False)   # facet row → its
    #                                                    Chebyshev centre and radius (exploration only, not stored)

    def contains(self, theta: np.ndarray, tolerance: float = 1e-9) -> bool:
        return bool(np.all(self.Phi @ theta <= self.phi + tolerance))


@dataclass
class ExplicitSolution:
    """Critical regions of one ParametricQP with their adjacency; `build_time` [s] of the exploration."""

    problem: ParametricQP
    regions: list[CriticalRegion]
    build_time: float = 0.0
    hyperplane_neighbours: list[tuple[int, ...]] = field(default_factory=list)
    facet_neighbours: list[tuple[int, ...]] = field(default_factory=list)
    adjacency_time: float = 0.0
    skipped_facets: int = 0   # facets across which no full-dimensional region was found (degenerate points)


def region_of(problem: ParametricQP, active: tuple[int, ...], H_inv: np.ndarray) -> CriticalRegion | None:
    """The critical region of an active set (None if its rows are linearly dependent); H_inv = H⁻¹."""
    n, p = problem.num_variables, problem.num_parameters
    rows = list(active)
    if rows:
        G = problem.A[rows]
        S = G @ H_inv @ G.T
        if np.linalg.matrix_rank(S) < len(rows):
            return None
        S_inv = np.linalg.inv(S)
        lam_gain = -S_inv @ (problem.B[rows] + G @ H_inv @ problem.F)
        lam_offset = -S_inv @ (problem.b[rows] + G @ H_inv @ problem.f)
        gain = -H_inv @ (problem.F + G.T @ lam_gain)
        offset = -H_inv @ (problem.f + G.T @ lam_offset)
    else:
        lam_gain, lam_offset = np.zeros((0, p)), np.zeros(0)
        gain, offset = -H_inv @ problem.F, -H_inv @ problem.f
    inactive = np.setdiff1d(np.arange(problem.A.shape[0]), rows)
    A_I = problem.A[inactive]
    Phi = np.vstack([A_I @ gain - problem.B[inactive], -lam_gain, np.eye(p), -np.eye(p)])
    phi = np.concatenate([problem.b[inactive] - A_I @ offset, lam_offset, problem.upper, -problem.lower])
    norms = np.linalg.norm(Phi, axis=1)
    flat = norms < 1e-12
    if np.any(phi[flat] < -1e-9):
        return None
    Phi, phi = Phi[~flat] / norms[~flat, None], phi[~flat] / norms[~flat]
    return CriticalRegion(tuple(rows), Phi, phi, gain.reshape(n, p), offset)


def chebyshev(Phi: np.ndarray, phi: np.ndarray, on_row: int | None = None,
              backend: str = "daqp") -> tuple[np.ndarray, float] | None:
    """Centre and radius of the largest ball in {Φθ ≤ φ} (rows normalized), within the hyperplane of `on_row` if
    given (its row held with equality); None if empty. An LP of the back end `backend` (DAQP's proximal-point
    iterations by default: 25× faster than scipy's HiGHS wrapper on these small LPs, same optima)."""
    m, p = Phi.shape
    A = np.empty((m + 1, p + 1))
    A[:m, :p], A[:m, p] = Phi, 1.0
    A[m, :p], A[m, p] = 0.0, 1.0
    upper, lower = np.r_[phi, MAX_RADIUS], np.full(m + 1, -np.inf)
    equalities = np.zeros(m + 1, bool)
    if on_row is not None:
        A[on_row, p] = 0.0
        lower[on_row], equalities[on_row] = phi[on_row], True
    result = qp_backend(backend, "lp").solve_lp(np.r_[np.zeros(p), -1.0], A, lower, upper, equalities, LP_TOLERANCE)
    if not result.ok:
        return None
    return np.asarray(result.x[:p], float), float(result.x[p])


def explore(problem: ParametricQP, max_regions: int = MAX_REGIONS,
            progress: Callable[[int, int], None] | None = None, backend: str = "daqp") -> ExplicitSolution:
    """Every full-dimensional critical region reachable across facets from a first feasible point (QPs and LPs on
    the back end `backend`)."""
    started = time.perf_counter()
    step = CROSSING_STEP * float(np.mean(problem.upper - problem.lower))   # past a facet, in parameter units
    seed = feasible_parameter(problem)
    if seed is None:
        raise ValueError("the problem is infeasible for every parameter of the box")
    regions: list[CriticalRegion] = []
    known: dict[tuple[int, ...], int] = {}
    queue: list[int] = []
    skipped = 0
    H_inv = np.linalg.inv(problem.H)

    def add(theta: np.ndarray) -> int | None:
        """The region of the QP's active set at θ (added if new); None if infeasible there, -1 if degenerate."""
        solved = problem.solve_at(theta, backend)
        if solved is None:
            return None
        active = solved[1]
        if active in known:
            return known[active]
        region = region_of(problem, active, H_inv)
        if region is None or not region.contains(theta, 1e-6):
            return -1
        ball = chebyshev(region.Phi, region.phi, backend=backend)
        if ball is None or ball[1] < RADIUS_TOLERANCE:
            return -1
        if len(regions) >= max_regions:
            raise ValueError(f"more than {max_regions} critical regions: the explicit solution is too large")
        known[active] = len(regions)
        regions.append(region)
        queue.append(len(regions) - 1)
        return known[active]

    if add(seed) in (None, -1):
        raise ValueError("no full-dimensional critical region at the first feasible parameter")
    box_rows = 2 * problem.num_parameters
    while queue:
        index = queue.pop()
        region = regions[index]
        facets = []
        for row in range(region.phi.size - box_rows):   # box rows bound the explored set: nothing lies beyond
            ball = chebyshev(region.Phi, region.phi, on_row=row, backend=backend)
            if ball is None or ball[1] < RADIUS_TOLERANCE:
                continue
            facets.append(row)
            region.centres[row] = ball
            beyond = ball[0] + step * region.Phi[row]
            if np.any(beyond < problem.lower) or np.any(beyond > problem.upper):
                continue
            found = add(beyond)
            skipped += found == -1     # feasible beyond, but no full-dimensional region found there
            if found is not None and found >= 0:
                region.across[row] = found
        region.facets = np.asarray(facets, int)
        if progress is not None:
            progress(len(regions) - len(queue), len(regions))
    return ExplicitSolution(problem, regions, time.perf_counter() - started, skipped_facets=skipped)


def feasible_parameter(problem: ParametricQP) -> np.ndarray | None:
    """A parameter deep inside the feasible set {θ in the box : ∃ z, A z ≤ b + Bθ} (max common slack)."""
    n, p = problem.num_variables, problem.num_parameters
    m = problem.A.shape[0]
    A_ub = np.vstack([np.hstack([problem.A, -problem.B, np.ones((m, 1))]),
                      np.hstack([np.zeros((p, n)), np.eye(p), np.ones((p, 1))]),
                      np.hstack([np.zeros((p, n)), -np.eye(p), np.ones((p, 1))])])
    b_ub = np.concatenate([problem.b, problem.upper, -problem.lower])
    result = linprog(np.r_[np.zeros(n + p), -1.0], A_ub=A_ub, b_ub=b_ub,
                     bounds=[(None, None)] * (n + p) + [(None, 1e6)], method="highs")
    if result.status != 0 or result.x[-1] < 0:
        return None
    return result.x[n:n + p]


def hyperplane_key(normal: np.ndarray, bound: float) -> tuple[tuple[float, ...], int]:
    """The hyperplane {θ : n'θ = β} up to orientation, rounded (key) and the orientation of (n, β) (±1)."""
    values = np.r_[normal, bound]
    lead = values[np.flatnonzero(np.abs(values) > 10.0 ** -HYPERPLANE_DIGITS)[0]]
    sign = 1 if lead > 0 else -1
    return tuple(np.round(sign * values, HYPERPLANE_DIGITS) + 0.0), sign


def adjacency(solution: ExplicitSolution, hops: int = 2, backend: str = "daqp") -> None:
    """Hyperplane neighbours (regions with a hyperplane in common, IF-mpDiMPC's candidates) and facet neighbours
    (regions that share a facet of positive measure: LP (14) of the paper, with the other rows of *both* regions,
    so that a region touching the facet in one point is not counted). LP (14) runs on the pairs on one hyperplane,
    on opposite sides, both having it as a facet, within `hops` crossings of each other (the exploration's
    crossing graph): testing every pair on a hyperplane costs O(R²) LPs at M = 5, and a facet piece further along
    a hyperplane would have to pass the regions in between. A pair is accepted without an LP when one region's
    facet centre lies strictly inside the other (a ball around it in the hyperplane is in both)."""
    started = time.perf_counter()
    regions = solution.regions
    by_plane: dict[tuple, list[tuple[int, int, int]]] = {}
    box_rows = 2 * solution.problem.num_parameters
    for index, region in enumerate(regions):
        for row in range(region.phi.size - box_rows):
            key, sign = hyperplane_key(region.Phi[row], region.phi[row])
            by_plane.setdefault(key, []).append((index, row, sign))
    near = nearby(regions, hops)
    facets = [set(int(f) for f in r.facets) for r in regions]
    hyperplane = [set() for _ in regions]
    facet = [set() for _ in regions]
    for members in by_plane.values():
        for a, (i, row_i, sign_i) in enumerate(members):
            for j, row_j, sign_j in members[a + 1:]:
                if i == j:
                    continue
                hyperplane[i].add(j)
                hyperplane[j].add(i)
                if sign_i == sign_j or j in facet[i] or j not in near[i] or row_i not in facets[i] \
                        or row_j not in facets[j]:
                    continue
                if centre_inside(regions[i], row_i, regions[j], row_j) or \
                        centre_inside(regions[j], row_j, regions[i], row_i) or \
                        shares_facet(regions[i], row_i, regions[j], row_j, backend):
                    facet[i].add(j)
                    facet[j].add(i)
    solution.hyperplane_neighbours = [tuple(sorted(s)) for s in hyperplane]
    solution.facet_neighbours = [tuple(sorted(s)) for s in facet]
    solution.adjacency_time = time.perf_counter() - started
    report(f"adjacency of {len(regions)} regions: {solution.adjacency_time:.1f} s")


def nearby(regions: list[CriticalRegion], hops: int) -> list[set[int]]:
    """Per region, the regions within `hops` crossings (either direction) in the exploration's crossing graph."""
    graph = [set() for _ in regions]
    for i, region in enumerate(regions):
        for j in region.across.values():
            graph[i].add(j)
            graph[j].add(i)
    reached = [set(g) for g in graph]
    for _ in range(hops - 1):
        reached = [set().union(r, *(graph[j] for j in r)) for r in reached]
    return reached


def centre_inside(first: CriticalRegion, row_first: int, second: CriticalRegion, row_second: int) -> bool:
    """Whether a ball of radius ≥ RADIUS_TOLERANCE around first's facet centre, within the hyperplane, lies in
    second (its rows other than the shared one hold with that much slack): a shared facet, without an LP."""
    if row_first not in first.centres:
        return False
    centre, radius = first.centres[row_first]
    slack = np.delete(second.phi - second.Phi @ centre, row_second)
    return min(radius, float(np.min(slack, initial=np.inf))) >= RADIUS_TOLERANCE


def shares_facet(first: CriticalRegion, row_first: int, second: CriticalRegion, row_second: int,
                 backend: str = "daqp") -> bool:
    """LP (14): a ball of positive radius within the common hyperplane inside both regions."""
    Phi = np.vstack([first.Phi, np.delete(second.Phi, row_second, axis=0)])
    phi = np.concatenate([first.phi, np.delete(second.phi, row_second)])
    ball = chebyshev(Phi, phi, on_row=row_first, backend=backend)
    return ball is not None and ball[1] >= RADIUS_TOLERANCE


def ragged(rows: list) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, values) of a list of integer sequences."""
    lengths = [len(r) for r in rows]
    values = np.concatenate([np.asarray(r, int) for r in rows]) if rows and sum(lengths) else np.zeros(0, int)
    return np.r_[0, np.cumsum(lengths)].astype(int), values.astype(int)


def unragged(indptr: np.ndarray, values: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in values[a:b]) for a, b in zip(indptr[:-1], indptr[1:])]


def solution_arrays(solution: ExplicitSolution) -> dict[str, np.ndarray]:
    """Every number of an explicit solution as flat arrays (what the cache file stores)."""
    regions, problem = solution.regions, solution.problem
    row_ptr, _ = ragged([range(r.phi.size) for r in regions])
    arrays = {name: getattr(problem, name) for name in ("H", "f", "F", "A", "b", "B", "lower", "upper")}
    across = [(i, row, j) for i, r in enumerate(regions) for row, j in sorted(r.across.items())]
    for name, rows in (("active", [r.active for r in regions]), ("facets", [r.facets for r in regions]),
                       ("hyperplane", solution.hyperplane_neighbours), ("facet", solution.facet_neighbours)):
        arrays[f"{name}_ptr"], arrays[f"{name}_values"] = ragged(rows)
    return arrays | {
        "Phi": np.vstack([r.Phi for r in regions]), "phi": np.concatenate([r.phi for r in regions]),
        "row_ptr": row_ptr, "gains": np.stack([r.gain for r in regions]),
        "offsets": np.stack([r.offset for r in regions]), "across": np.asarray(across, int).reshape(-1, 3),
        "times": np.array([solution.build_time, solution.adjacency_time]), "skipped": np.array(solution.skipped_facets)}


def solution_of(arrays: dict[str, np.ndarray]) -> ExplicitSolution:
    """The inverse of solution_arrays."""
    problem = ParametricQP(*(np.asarray(arrays[n]) for n in ("H", "f", "F", "A", "b", "B", "lower", "upper")))
    lists = {name: unragged(arrays[f"{name}_ptr"], arrays[f"{name}_values"])
             for name in ("active", "facets", "hyperplane", "facet")}
    ptr = arrays["row_ptr"]
    regions = [CriticalRegion(lists["active"][k], arrays["Phi"][a:b], arrays["phi"][a:b], arrays["gains"][k],
                              arrays["offsets"][k], np.asarray(lists["facets"][k], int))
               for k, (a, b) in enumerate(zip(ptr[:-1], ptr[1:]))]
    for i, row, j in arrays["across"]:
        regions[int(i)].across[int(row)] = int(j)
    build_time, adjacency_time = (float(t) for t in arrays["times"])
    return ExplicitSolution(problem, regions, build_time, lists["hyperplane"], lists["facet"], adjacency_time,
                            int(arrays["skipped"]))


def active_set_bound(num_rows: int, num_variables: int) -> int:
    """How many active sets an mpQP with these sizes can have under LICQ (Σ_k≤n C(m, k)): its region count bound."""
    from math import comb

    return sum(comb(num_rows, k) for k in range(min(num_rows, num_variables) + 1))
