"""An agent's block QP in parametric form and its explicit control law (point location plus affine evaluation).

The block QP of mpc/agent_problem.py is affine in θ_i = [x(0) of the view; the view's other inputs U_−i]
(its own inputs cancel), so θ ↦ (q, upper) is read off exactly by evaluating it at θ = 0 and the unit vectors.
The explored parameter set is the box of the view's state and input sets. Point location: a vectorized scan of
every region, or the last region first and a walk across the most violated facet (Brahmbhatt et al. 2026 suggest
search trees; the walk needs no extra offline work). Outside every region the caller solves the QP online.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .agent_problem import AgentBlockQP
from .multiparametric import ExplicitSolution, ParametricQP

LOCATION_TOLERANCE = 1e-8     # row slack [normalized parameter units] within which θ counts as inside a region
POINT_LOCATIONS = ("walk", "scan")


@dataclass(frozen=True)
class ParameterLayout:
    """Where θ's entries come from in the block's view: x(0) (n_states entries), then U[other_columns]."""

    n_states: int
    other_columns: np.ndarray
    num_inputs: int              # entries of the flat view inputs U
    basis: np.ndarray | None = None   # U_i = T v: the law's variables v of a control horizon (None: v = U_i)
    held_tails: np.ndarray = field(default_factory=lambda: np.zeros(0, int))    # others' held inputs: not in θ,
    held_sources: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # … copies of these columns

    def theta(self, x0: np.ndarray, U: np.ndarray) -> np.ndarray:
        return np.concatenate([x0, U[self.other_columns]])

    def view(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        U = np.zeros(self.num_inputs)
        U[self.other_columns] = theta[self.n_states:]
        U[self.held_tails] = U[self.held_sources]
        return theta[:self.n_states].copy(), U


def parametric_block(block: AgentBlockQP, step: int = 0) -> tuple[ParametricQP, ParameterLayout]:
    """The block QP at control step `step` as min ½ z'Hz + (f + Fθ)'z s.t. C z ≤ b + Bθ on the box of the view's
    state and input sets; raises ValueError when a set is unbounded (no explored set can be formed)."""
    net = block.network
    N, m_V = block.horizon, net.n_u
    others = np.setdiff1d(np.arange(N * m_V), block.own_columns)
    parametrization = block.parametrization
    if parametrization.tail != "hold" and not parametrization.identity:
        raise ValueError(f"agent {block.agent}: an explicit law of a terminal-law tail is not built (its offset moves "
                         f"with θ); use controller.control_tail hold")
    T = None if parametrization.identity else parametrization.T
    tails, sources = block.held_view_tails()   # a held neighbour's tail is its last free input: θ holds its head
    layout = ParameterLayout(net.n_x, np.setdiff1d(others, tails), N * m_V, T, tails, sources)
    lower, upper = parameter_box(block, layout)
    p = net.n_x + layout.other_columns.size
    q0, u0 = block.qp_vectors(*layout.view(np.zeros(p)), step)
    F, B = np.empty((q0.size, p)), np.empty((u0.size, p))
    for k in range(p):
        q, u = block.qp_vectors(*layout.view(np.eye(p)[k]), step)
        F[:, k], B[:, k] = q - q0, u - u0
    C, H = block.qp.A, block.H_ii.copy()
    if T is not None:   # the QP in the control horizon's variables v (U_i = T v)
        C, H, q0, F = C @ T, T.T @ H @ T, T.T @ q0, T.T @ F
    finite = np.isfinite(u0)
    return ParametricQP(H, q0, F, C[finite], u0[finite], B[finite], lower, upper), layout


def parameter_box(block: AgentBlockQP, layout: ParameterLayout) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of θ: each view member's state set for x(0), its input set for its inputs at every step."""
    net, N = block.network, block.horizon
    x_low, x_high = np.empty(net.n_x), np.empty(net.n_x)
    u_low, u_high = np.empty(net.n_u), np.empty(net.n_u)
    for a in net.members:
        states = block.state_sets[a]
        x_low[net.state_slices[a]], x_high[net.state_slices[a]] = states.bounding_box(states.H.shape[1])
        inputs = block.input_sets[a]
        u_low[net.input_slices[a]], u_high[net.input_slices[a]] = inputs.bounding_box(inputs.H.shape[1])
    lower = np.concatenate([x_low, np.tile(u_low, N)[layout.other_columns]])
    upper = np.concatenate([x_high, np.tile(u_high, N)[layout.other_columns]])
    unbounded = np.flatnonzero(~np.isfinite(lower) | ~np.isfinite(upper))
    if unbounded.size:
        k = int(unbounded[0])
        what = (f"state {k} of the view" if k < net.n_x else f"input column {layout.other_columns[k - net.n_x]} "
                f"of the view")
        raise ValueError(f"agent {block.agent}: {what} is unbounded; the explicit solution is built on a bounded "
                         f"parameter set, so every state and input the agent's problem depends on needs finite limits")
    return lower, upper


class ExplicitLaw:
    """U_i*(θ) of one agent: regions stacked for a vectorized scan, crossings for the walk."""

    def __init__(self, solution: ExplicitSolution, layout: ParameterLayout) -> None:
        self.solution, self.layout = solution, layout
        regions = solution.regions
        self.num_regions = len(regions)
        self.Phi = np.vstack([r.Phi for r in regions])
        self.phi = np.concatenate([r.phi for r in regions])
        sizes = [r.phi.size for r in regions]
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        self.gains = np.stack([r.gain for r in regions])
        self.offsets = np.stack([r.offset for r in regions])
        if layout is not None and layout.basis is not None:   # laws of v, evaluated as U_i = T v
            self.gains = np.einsum("zv,rvp->rzp", layout.basis, self.gains)
            self.offsets = self.offsets @ layout.basis.T
        self.region_rows = [(r.Phi, r.phi) for r in regions]
        self.across = [r.across for r in regions]

    def inside(self, region: int, theta: np.ndarray) -> bool:
        Phi, phi = self.region_rows[region]
        return bool(np.all(Phi @ theta <= phi + LOCATION_TOLERANCE))

    def scan(self, theta: np.ndarray) -> int | None:
        """The first region containing θ (every region's rows in one product), None outside the explored set."""
        worst = np.maximum.reduceat(self.Phi @ theta - self.phi, self.starts)
        hits = np.flatnonzero(worst <= LOCATION_TOLERANCE)
        return int(hits[0]) if hits.size else None

    def walk(self, theta: np.ndarray, start: int | None) -> int | None:
        """The region of θ reached from `start` across the most violated facet each time (scan when stuck)."""
        if start is None:
            return self.scan(theta)
        region, visited = start, set()
        while region is not None and region not in visited:
            visited.add(region)
            Phi, phi = self.region_rows[region]
            slack = phi - Phi @ theta
            if np.all(slack >= -LOCATION_TOLERANCE):
                return region
            crossings = self.across[region]
            violated = [int(r) for r in np.argsort(slack) if slack[r] < -LOCATION_TOLERANCE and int(r) in crossings]
            region = crossings[violated[0]] if violated else None
        return self.scan(theta)

    def locate(self, theta: np.ndarray, method: str, start: int | None = None) -> int | None:
        return self.walk(theta, start) if method == "walk" else self.scan(theta)

    def evaluate(self, region: int, theta: np.ndarray) -> np.ndarray:
        return self.gains[region] @ theta + self.offsets[region]


@dataclass(frozen=True)
class ExplicitSettings:
    """Online settings of the explicit schemes (scenario: controller.explicit)."""

    point_location: str = "walk"      # walk (last region first, across violated facets) | scan (every region)
    max_combinations: int = 100       # combinations each search phase may try (then the next fallback)
    wegstein: bool = False            # explicit_iterative: Wegstein's adaptive weights instead of the fixed step


@dataclass(frozen=True)
class ExplicitLaws:
    """Every agent's explicit law (the driver loads them from the cache, scenarios/explicit_cache.py)."""

    laws: tuple[ExplicitLaw, ...]
    settings: ExplicitSettings = ExplicitSettings()
