"""A terminal set and cost for a nonlinear discrete-time model x⁺ = Φ(x, u) around a setpoint (x̄, ū): a level
set {x : V_f(x) = x̃'P x̃ ≤ c}, x̃ = x − x̄, invariant under the LQR law κ(x) = ū + K x̃ with the decrease
V_f(Φ(x, κ(x))) − V_f(x) ≤ −ℓ(x, κ(x)); the discrete-time form of Chen & Allgöwer's quasi-infinite horizon
(1998).

Construction (sans IO, numbers only):
- A, B: the Jacobians of Φ at the setpoint; (P₀, K): the DARE solution and LQR gain of (A, B, Q, R). Since K
  is the LQR gain, P₀ solves the Lyapunov equation A_K'P₀A_K − P₀ = −Q_K exactly, A_K = A + BK,
  Q_K = Q + K'RK (the Hessian of the stage cost along κ at the setpoint, so coupling costs count too);
  P = (1 + κ)·P₀ then solves A_K'P A_K − P = −(1 + κ)Q_K: the margin κ > 0 (`margin`, default 1) is what
  absorbs the nonlinearity;
- the levels that keep the sets: c ≤ c_sets = min over the box rows of b²/(h'P⁻¹h) (the largest level of
  x̃'Px̃ inside h'x̃ ≤ b), the state rows (h = ±e_i) and the input rows under κ (h = ±K_j);
- the linearization margin at a level c: with φ(x̃) = Φ(x̄ + x̃, ū + K x̃) − x̄ − A_K x̃ the remainder,
  ‖φ(x̃)‖ ≤ L_φ(c)‖x̃‖ where L_φ(c) bounds ‖J_K(ξ) − A_K‖₂ (J_K the closed-loop Jacobian) on the
  level set's bounding box (mean value theorem; the box is convex and holds 0). Then
  V_f(Φ) − V_f + ℓ ≤ (−κ λ_min(Q_K) + 2‖P A_K‖ L_φ + ‖P‖ L_φ²)‖x̃‖², which is ≤ 0 when
  2‖P A_K‖ L_φ + ‖P‖ L_φ² ≤ κ λ_min(Q_K). L_φ(c) is the maximum over the box's vertices (up to 2¹²
  of them) and `box_points` uniform points of it, times `safety` (1.2): a sampled bound, not interval
  arithmetic;
- the sampling check at a level c: `samples` points of the level set (a third on its boundary, the rest uniform in
  the ellipsoid, seeded), each must keep the decrease (to 1e-12 relative) and the state and input rows;
- c is the largest level passing both: c_sets if it does, else halvings of c_sets until one passes, then 12
  bisection steps between the last failing and the first passing level (the accepted level always passed both).
A level set that holds no more than the setpoint (c = 0: the setpoint on a limit, Q_K singular, or a remainder the
margin cannot absorb) is refused with the reason in one line.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import casadi as ca
import numpy as np

from .terminal import lqr_terminal

DECREASE_TOLERANCE = 1e-12    # relative slack of the sampled decrease (rounding of V_f at the sample)
ROW_TOLERANCE = 1e-9          # slack of the sampled state and input rows [their units]
MAX_VERTICES = 12             # the bounding box's vertices enter the Lipschitz bound up to this many states
BISECTIONS = 12
HALVINGS = 60


@dataclass(frozen=True)
class TerminalRegion:
    """X_f = {x : (x − x̄)'P (x − x̄) ≤ level}, κ(x) = ū + K (x − x̄) (module docstring); `lipschitz`: L_φ
    at the accepted level, `samples`: the level-set points that passed the check, `level_of_sets`: c_sets."""

    P: np.ndarray
    K: np.ndarray
    level: float
    setpoint: np.ndarray
    input_setpoint: np.ndarray
    margin: float
    lipschitz: float
    samples: int
    level_of_sets: float

    def value(self, x: np.ndarray) -> float:
        """V_f(x) = x̃'P x̃."""
        dx = np.asarray(x, float) - self.setpoint
        return float(dx @ self.P @ dx)

    def law(self, x: np.ndarray) -> np.ndarray:
        """κ(x) = ū + K x̃."""
        return self.input_setpoint + self.K @ (np.asarray(x, float) - self.setpoint)

    def contains(self, x: np.ndarray, tolerance: float = 0.0) -> bool:
        return self.value(x) <= self.level * (1.0 + tolerance)


@dataclass(frozen=True)
class RegionProblem:
    """What the design needs: the map Φ(x, u), the stage cost ℓ(x, u, x̄, ū) (CasADi Functions), the setpoint,
    the weights Q, R of the LQR law and the box limits (±inf: no limit)."""

    step_map: ca.Function
    stage: ca.Function
    setpoint: np.ndarray
    input_setpoint: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    x_lower: np.ndarray
    x_upper: np.ndarray
    u_lower: np.ndarray
    u_upper: np.ndarray


def terminal_region(problem: RegionProblem, margin: float = 1.0, samples: int = 4000, box_points: int = 500,
                    safety: float = 1.2, seed: int = 0) -> TerminalRegion:
    """The largest verified level set (module docstring); ValueError in one line when there is none."""
    if margin <= 0.0:
        raise ValueError(f"terminal_region: margin {margin} is not allowed: must be > 0")
    x_bar, u_bar = np.asarray(problem.setpoint, float), np.asarray(problem.input_setpoint, float)
    n, m = x_bar.size, u_bar.size
    x, u = ca.SX.sym("x", n), ca.SX.sym("u", m)
    jacobian = ca.Function("J", [x, u], [ca.jacobian(problem.step_map(x, u), x),
                                         ca.jacobian(problem.step_map(x, u), u)])
    A, B = (np.asarray(v, float) for v in jacobian(x_bar, u_bar))
    P0, K = lqr_terminal(A, B, problem.Q, problem.R)
    A_K, P = A + B @ K, (1.0 + margin) * P0
    dx = ca.SX.sym("dx", n)
    along = problem.stage(x_bar + dx, ca.DM(u_bar) + ca.mtimes(ca.DM(K), dx), x_bar, u_bar)
    Q_K = 0.5 * np.asarray(ca.Function("H", [dx], [ca.hessian(along, dx)[0]])(np.zeros(n)), float)
    lowest = float(np.min(np.linalg.eigvalsh(0.5 * (Q_K + Q_K.T))))
    if lowest <= 0.0:
        raise ValueError(f"terminal_region: Q + K'RK is singular along the LQR law (λ_min = {lowest:.3g}): the "
                         f"linearization margin needs a positive definite stage cost")
    drift = np.asarray(problem.step_map(x_bar, u_bar), float).ravel() - x_bar
    if np.max(np.abs(drift)) > 1e-8 * (1.0 + np.max(np.abs(x_bar))):
        raise ValueError(f"terminal_region: the setpoint is no fixed point of the prediction map (drift "
                         f"{np.max(np.abs(drift)):.3g})")
    P_inverse = np.linalg.inv(P)
    c_sets = sets_level(P_inverse, K, x_bar, u_bar, problem)
    if not c_sets > 0.0:
        raise ValueError("terminal_region: the setpoint is on a state or input limit: no level set around it fits")
    checks = _Checks(problem, P, K, A_K, x_bar, u_bar, lowest, margin, samples, box_points, safety, seed)
    good, bad = c_sets, None
    for _ in range(HALVINGS):
        if checks.passes(good):
            break
        good, bad = good / 2.0, good
    else:
        raise ValueError(f"terminal_region: no level down to {good:.3g} passed the linearization margin and the "
                         f"sampled decrease (margin κ = {margin})")
    if bad is not None:
        for _ in range(BISECTIONS):
            middle = np.sqrt(good * bad)
            good, bad = (middle, bad) if checks.passes(middle) else (good, middle)
    return TerminalRegion(P, K, float(good), x_bar, u_bar, margin, checks.lipschitz(good), samples, float(c_sets))


def sets_level(P_inverse: np.ndarray, K: np.ndarray, x_bar: np.ndarray, u_bar: np.ndarray,
               problem: RegionProblem) -> float:
    """c_sets: the largest level of x̃'P x̃ inside every finite box row of the states and of the inputs under κ."""
    levels = [np.inf]
    for rows, lower, upper, centre in ((np.eye(x_bar.size), problem.x_lower, problem.x_upper, x_bar),
                                       (K, problem.u_lower, problem.u_upper, u_bar)):
        spread = np.einsum("ij,jk,ik->i", rows, P_inverse, rows)   # h'P⁻¹h per row
        for bound in (np.asarray(upper, float) - centre, centre - np.asarray(lower, float)):
            finite = np.isfinite(bound) & (spread > 0)
            levels.extend(np.maximum(bound[finite], 0.0) ** 2 / spread[finite])
    return float(min(levels))


class _Checks:
    """The two tests of a level c: the linearization margin and the sampled decrease (module docstring); the random
    directions are drawn once, so the tests of different levels see the same shapes."""

    def __init__(self, problem: RegionProblem, P, K, A_K, x_bar, u_bar, lowest, margin, samples, box_points,
                 safety, seed) -> None:
        n = x_bar.size
        self.problem, self.P, self.K, self.A_K, self.x_bar, self.u_bar = problem, P, K, A_K, x_bar, u_bar
        self.budget = margin * lowest
        self.norm_P, self.norm_PA, self.safety = np.linalg.norm(P, 2), np.linalg.norm(P @ A_K, 2), safety
        rng = np.random.default_rng(seed)
        directions = rng.standard_normal((samples, n))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        radii = np.where(np.arange(samples) < samples // 3, 1.0, rng.uniform(size=samples) ** (1.0 / n))
        self.ball = directions * radii[:, None]                           # points of the unit ball
        self.root = np.linalg.inv(np.linalg.cholesky(P)).T                # x̃ = √c·root·s: x̃'Px̃ = c‖s‖²
        corners = np.array(list(itertools.product((-1.0, 1.0), repeat=n))) if n <= MAX_VERTICES else np.zeros((0, n))
        self.cube = np.vstack([corners, rng.uniform(-1.0, 1.0, (box_points, n))])   # points of [−1, 1]ⁿ
        self.half_widths = np.sqrt(np.diag(np.linalg.inv(P)))            # the level-1 set's bounding box
        x = ca.SX.sym("x", n)
        closed = problem.step_map(x, ca.DM(u_bar) + ca.mtimes(ca.DM(K), x - ca.DM(x_bar)))
        law = ca.DM(u_bar) + ca.mtimes(ca.DM(K), x - ca.DM(x_bar))
        self._closed = ca.Function("closed", [x], [closed, problem.stage(x, law, x_bar, u_bar)])
        self._jacobian = ca.Function("JK", [x], [ca.jacobian(closed, x)])

    def lipschitz(self, c: float) -> float:
        """L_φ(c): safety × the largest ‖J_K(ξ) − A_K‖₂ over the sampled bounding box of the level set."""
        points = self.x_bar + np.sqrt(c) * self.cube * self.half_widths
        stacked = np.asarray(self._jacobian.map(points.shape[0])(points.T), float)   # n × (points·n)
        n = self.x_bar.size
        deviations = stacked.reshape(n, points.shape[0], n).transpose(1, 0, 2) - self.A_K
        return self.safety * float(np.max(np.linalg.norm(deviations, ord=2, axis=(1, 2))))

    def margin_holds(self, c: float) -> bool:
        L = self.lipschitz(c)
        return 2.0 * self.norm_PA * L + self.norm_P * L * L <= self.budget

    def samples_hold(self, c: float) -> bool:
        """Every sampled point of the level set keeps the decrease and the state and input rows."""
        tilde = np.sqrt(c) * self.ball @ self.root.T
        states = self.x_bar + tilde
        following, stage = (np.asarray(v, float) for v in self._closed.map(states.shape[0])(states.T))
        after = following.T - self.x_bar
        V, V_next = np.einsum("ij,jk,ik->i", tilde, self.P, tilde), np.einsum("ij,jk,ik->i", after, self.P, after)
        inputs = self.u_bar + tilde @ self.K.T
        p = self.problem
        rows = np.all((states >= p.x_lower - ROW_TOLERANCE) & (states <= p.x_upper + ROW_TOLERANCE)) and \
            np.all((inputs >= p.u_lower - ROW_TOLERANCE) & (inputs <= p.u_upper + ROW_TOLERANCE))
        return bool(rows and np.all(V_next - V + stage.ravel() <= DECREASE_TOLERANCE * (1.0 + V)))

    def passes(self, c: float) -> bool:
        return self.margin_holds(c) and self.samples_hold(c)
