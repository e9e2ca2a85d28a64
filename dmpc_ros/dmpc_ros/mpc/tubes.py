"""Tubes for robust DMPC: per-agent robust positively invariant (RPI) sets under neighbour coupling, and the
constraint tightening they imply.

Error e_i = x_i − x̄_i of agent i under the ancillary law u_i = ū_i + K_i (x_i − x̄_i):
    e_i⁺ = A_K,i e_i + Σ_j M_ij e_j + w_i,   A_K,i = A_ii + B_ii K_i,   M_ij = A_ij + B_ij K_j,   w_i ∈ W_i (box).
If every neighbour keeps e_j in its tube Z_j ⊆ box(b_j), agent i sees the disturbance
    W̃_i = W_i ⊕ ⨁_j M_ij Z_j ⊆ box(w_i + Σ_j |M_ij| b_j) =: box(w̃_i),
and Z_i is taken as the outer ε-approximation of the minimal RPI set of (A_K,i, box(w̃_i)) (Raković et al.
2005): with s steps and α such that A_K^s box(w̃) ⊆ α box(w̃),
    Z_i = (1 − α)⁻¹ ⨁_{k<s} A_K,i^k box(w̃_i),
a zonotope (exact Minkowski sums and linear maps, support function in closed form). The b_j depend on the Z_j:
the coupled family is the fixed point of b_i = interval hull of Z_i(b), found by iteration; it exists when the
coupling is weak enough (a small-gain condition) and is refused with the reason otherwise. Every agent can
compute all tubes from the scenario, so they agree on them without messages.
Tightening: X_i ⊖ Z_i and U_i ⊖ K_i Z_i row by row with support functions, h_r − h_Z(H_r).

Message faults (PlanCompatibility): agent i's nominal state is its own plan's prediction x̄_i(k+1) = x̄_i(1|k),
made with the neighbour values it *used*. A neighbour plan lost or late for d ≤ D steps is used shifted, and the
difference to what the neighbour really does enters e_i⁺ as A_ij Δx_j + B_ij Δu_j; compatibility constraints
bound it, and the bound joins W̃_i.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..models.linear import CoupledLinearSystem, MixedConstraint, PolytopicConstraint, Subsystem


class TubeError(ValueError):
    """A tube that cannot be built or a tightened set that is empty (with agent, set and amount)."""


@dataclass(frozen=True)
class Zonotope:
    """{G ξ : ‖ξ‖∞ ≤ 1} (centred at the origin), G is n × p."""

    G: np.ndarray

    @staticmethod
    def box(radii: np.ndarray) -> "Zonotope":
        radii = np.asarray(radii, float)
        keep = radii > 0
        return Zonotope(np.diag(radii)[:, keep] if radii.size else np.zeros((0, 0)))

    def support(self, direction: np.ndarray) -> np.ndarray:
        """h_Z(d) = Σ |d' g_k| for each row d of `direction` (or one vector)."""
        return np.sum(np.abs(np.atleast_2d(direction) @ self.G), axis=1)

    def radii(self) -> np.ndarray:
        """Half-widths of the interval hull."""
        return np.sum(np.abs(self.G), axis=1)

    def map(self, M: np.ndarray) -> "Zonotope":
        return Zonotope(M @ self.G)

    def plus(self, other: "Zonotope") -> "Zonotope":
        return Zonotope(np.hstack([self.G, other.G]))

    def scale(self, factor: float) -> "Zonotope":
        return Zonotope(factor * self.G)


def outer_mrpi(A: np.ndarray, w: np.ndarray, epsilon: float = 1e-3,
               max_steps: int = 500) -> tuple[Zonotope, int, float]:
    """(Z, s, α): Raković et al. (2005) outer approximation of the minimal RPI set of e⁺ = A e + w, w ∈ box(w),
    with α ≤ ε-scaled tolerance; Z is RPI for (A, box(w))."""
    n = A.shape[0]
    if n and np.max(np.abs(np.linalg.eigvals(A))) >= 1.0:
        raise TubeError("the error dynamics are not stable "
                        f"(spectral radius {np.max(np.abs(np.linalg.eigvals(A))):.4g} ≥ 1)")
    if not np.any(w > 0):
        return Zonotope(np.zeros((n, 0))), 0, 0.0
    # Raković's α needs 0 in the interior of W: rows without disturbance get a floor of 1e-3 of the largest
    # (a superset of W, so the result stays a valid, marginally larger, RPI set)
    w = np.maximum(w, 1e-3 * np.max(w))
    power = np.eye(n)
    terms = []
    radii = np.zeros(n)          # interval hull of F_s = ⨁_{k<s} A^k W, accumulated
    for s in range(1, max_steps + 1):
        terms.append(power.copy())
        radii += np.abs(power) @ w
        power = A @ power
        # α = max_r h_{A^s W}(±e_r) / h_W(±e_r) over the rows of the box W
        alpha = float(np.max((np.abs(power) @ w) / w))
        if alpha < 1.0 and alpha / (1.0 - alpha) * np.max(radii) <= epsilon:   # scaling adds ≤ ε (∞-norm)
            partial = Zonotope(np.hstack([T @ np.diag(w) for T in terms]))
            return partial.scale(1.0 / (1.0 - alpha)), s, alpha
    raise TubeError(f"no outer RPI approximation within {max_steps} steps (ε = {epsilon})")


@dataclass(frozen=True)
class TubeFamily:
    """Per-agent tubes Z_i and ancillary gains K_i (and the plan-change bounds the tubes include, if any)."""

    tubes: tuple[Zonotope, ...]
    gains: tuple[np.ndarray, ...]          # K_i (n_u,i × n_x,i)
    compatibility: PlanCompatibility | None = None


@dataclass(frozen=True)
class PlanCompatibility:
    """Compatibility constraints (Dunbar & Murray 2006; Farina & Scattolini 2012) for neighbour plans that are
    late or lost for up to D = missed_steps control steps: agent i's plan of step k may differ from its plan of
    step k−1, shifted, by at most δ_x,i in the predicted states t = 1..D−1 and δ_u,i in the inputs t = 0..D−1.
    Then a neighbour plan of step k−d (d ≤ D), shifted by d, differs from the neighbour's current plan by
    ≤ (d − 1) δ_x,j in x̄_j(k) (which is exactly the t = 1 state of its plan of step k−1) and ≤ d δ_u,j in ū_j(k);
    within a step, any two iterates differ by ≤ 2 δ_u,j (each lies within δ_u,j of the same shifted plan)."""

    missed_steps: int                        # D
    state_change: tuple[np.ndarray, ...]     # δ_x,i per agent (inf: no constraint)
    input_change: tuple[np.ndarray, ...]     # δ_u,i per agent (inf: no constraint)

    def state_steps(self) -> range:
        """Predicted-state indices t that carry a state compatibility row."""
        return range(1, self.missed_steps)

    def input_steps(self) -> range:
        """Input indices t that carry an input compatibility row."""
        return range(0, max(self.missed_steps, 1))

    def mismatch(self, system: CoupledLinearSystem) -> list[np.ndarray]:
        """Per agent, the box radius of Σ_j A_ij Δx_j + B_ij Δu_j over its dynamic neighbours: each |Δ| entry is
        at most the compatibility bound (factor · δ) and at most the width of the neighbour's constraint set
        (two points of the same set); TubeError naming the neighbour if neither bounds a coupled variable."""
        D = self.missed_steps
        result = []
        for i in range(system.num_agents):
            radius = np.zeros(system.subsystems[i].n_x)
            for j in system.dynamic_neighbours(i):
                sub = system.subsystems[j]
                for matrix, change, factor, constraint, what in (
                        (system.A[i][j], self.state_change[j], max(D - 1, 0), sub.state_constraint, "state"),
                        (system.B[i][j], self.input_change[j], max(D, 2), sub.input_constraint, "input")):
                    used = np.any(matrix != 0, axis=0)
                    if factor == 0 or not np.any(used):
                        continue
                    bound = np.minimum(factor * change, interval_widths(constraint, matrix.shape[1]))
                    if not np.all(np.isfinite(bound[used])):
                        raise TubeError(f"agent {i} is coupled to agent {j}'s {what}s, which are unbounded: agent "
                                        f"{j}'s {what} plan changes need a bound (controller.tube.plan_change) "
                                        f"with missed_steps = {D}")
                    radius = radius + np.abs(matrix[:, used]) @ bound[used]
            result.append(radius)
        return result


def interval_widths(constraint: PolytopicConstraint, n: int) -> np.ndarray:
    """max − min of each coordinate over {v : H v ≤ h} (LPs; inf where unbounded)."""
    lower, upper = constraint.bounding_box(n)
    return upper - lower


def coupled_tubes(system: CoupledLinearSystem, gains: list[np.ndarray], disturbance: list[np.ndarray],
                  epsilon: float = 1e-3, max_iterations: int = 200) -> TubeFamily:
    """Tubes for all agents as the fixed point of the neighbour-coupled construction (module docstring)."""
    M = system.num_agents
    closed = []
    for i in range(M):
        A_K = system.A[i][i] + system.B[i][i] @ gains[i]
        radius = np.max(np.abs(np.linalg.eigvals(A_K))) if A_K.size else 0.0
        if radius >= 1.0:
            raise TubeError(f"agent {i}: the ancillary feedback K_{i} does not stabilize the local error dynamics "
                            f"A_ii + B_ii K_i (spectral radius {radius:.4g} ≥ 1)")
        closed.append(A_K)
    coupling = [[np.abs(system.A[i][j] + system.B[i][j] @ gains[j]) if j != i else None for j in range(M)]
                for i in range(M)]
    neighbours = [[j for j in range(M) if j != i and np.any(coupling[i][j])] for i in range(M)]
    radii = [np.zeros(s.n_x) for s in system.subsystems]
    for _ in range(max_iterations):
        effective = [disturbance[i] + sum((coupling[i][j] @ radii[j] for j in neighbours[i]),
                                          np.zeros(system.subsystems[i].n_x))
                     for i in range(M)]
        try:
            tubes = [outer_mrpi(closed[i], effective[i], epsilon)[0] for i in range(M)]
        except TubeError as error:
            raise TubeError(f"tube construction failed: {error}") from None
        new = [z.radii() for z in tubes]
        growth = max(float(np.max(np.abs(n - r), initial=0.0)) for n, r in zip(new, radii))
        if max(float(np.max(n, initial=0.0)) for n in new) > 1e6:
            break
        if growth <= 1e-9 * (1.0 + max(float(np.max(n, initial=0.0)) for n in new)):
            # final family: each Z_i is RPI for box(w̃_i) computed from boxes that contain the final Z_j
            if all(np.all(z.radii() <= r * (1 + 1e-6) + 1e-12) for z, r in zip(tubes, radii)):
                return TubeFamily(tuple(tubes), tuple(gains))
            radii = [r * (1 + 1e-6) for r in new]
            continue
        radii = new
    raise TubeError("the coupled tubes do not converge: the neighbours' coupling through A_ij + B_ij K_j is too strong "
                    "for these disturbance bounds and gains (small-gain condition fails)")


def tighten(subsystem: Subsystem, tube: Zonotope, gain: np.ndarray, agent: int) -> Subsystem:
    """The subsystem with X ⊖ Z, U ⊖ K Z (and mixed rows against [I; K] Z); TubeError naming the set and the
    amount if a tightened set is empty."""
    Hx, hx = subsystem.state_constraint.H, subsystem.state_constraint.h
    Hu, hu = subsystem.input_constraint.H, subsystem.input_constraint.h
    state = PolytopicConstraint(Hx, hx - tube.support(Hx)) if hx.size else subsystem.state_constraint
    inputs = PolytopicConstraint(Hu, hu - tube.support(Hu @ gain)) if hu.size else subsystem.input_constraint
    mixed = subsystem.mixed_constraint
    if mixed is not None:
        mixed = MixedConstraint(mixed.Hx, mixed.Hu, mixed.h - tube.support(mixed.Hx + mixed.Hu @ gain))
    for name, original, tightened, labels in (("state set X", subsystem.state_constraint, state,
                                                subsystem.state_names),
                                               ("input set U", subsystem.input_constraint, inputs,
                                                subsystem.input_names)):
        shortfall = emptiness(tightened)
        if shortfall > 0:
            raise TubeError(f"agent {agent}: the tightened {name}_{agent} ⊖ Z_{agent} is empty — the tube needs "
                            f"{shortfall:.4g} more room than the set has (shrink the disturbance set or widen "
                            f"the limits on {', '.join(labels) or 'its variables'})")
    return replace(subsystem, state_constraint=state, input_constraint=inputs, mixed_constraint=mixed)


def emptiness(constraint: PolytopicConstraint) -> float:
    """0 if {v : H v ≤ h} is non-empty, else the smallest t > 0 with {H v ≤ h + t} non-empty (LP)."""
    from scipy.optimize import linprog

    H, h = constraint.H, constraint.h
    if h.size == 0:
        return 0.0
    n = H.shape[1]
    # min t  s.t.  H v − t ≤ h,  t ≥ 0
    result = linprog(np.r_[np.zeros(n), 1.0], A_ub=np.hstack([H, -np.ones((h.size, 1))]), b_ub=h,
                     bounds=[(None, None)] * n + [(0, None)], method="highs")
    return float(result.x[-1]) if result.status == 0 else np.inf
