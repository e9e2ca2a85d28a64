"""Problems (8) and (9) of Chanfreut, Maestre, Zhu & Heemels (cooperative DMPC with dissimilar control horizons) on
the plant-wide condensed form of a linear model (mpc/condensed.py), as QPs.

Notation: U (N·m, time-major) is the plant-wide input sequence of the current iterate p, x its predicted states
from x(0), V(U) = ½ U'HU + (F x(0) + c)'U + const the plant-wide cost (stage, terminal P from the DARE).

Problem (8), agent i with control horizon N_c,i ≤ N (`LocalProblem`): the decision variables are the agent's first
N_c,i inputs v and one scalar α_i ∈ [0, 1]; beyond N_c,i its input is the convex combination

    u_i(k) = α_i u_i^p(k) + (1 − α_i) κ_i(x^p(k)),   κ_i(x) = ū_i(k) + K_i (x − x̄(k)),   k = N_c,i … N−1,

of the previous iterate's tail and the terminal law. Choices (the extraction lost the formulas):
- κ_i is evaluated along the previous iterate's predicted plant state x^p(k), not along the state the new
  inputs produce: then u_i is affine in (v, α_i) and (8) is a QP; along the new state the product α_i·x(k) would
  make it bilinear. At a fixed point of the iteration the two states coincide;
- one α_i per agent, not one per tail step: N_c,i·n_u,i + 1 variables (per-step factors would give back
  N − N_c,i variables, as many as the inputs they replace when n_u,i = 1). When the tail already equals the
  terminal law (u_i^p = κ_i(x^p) on the tail) α_i has no effect and is left out; at N_c,i = N there is no tail;
- the other agents' inputs are fixed at iterate p; the cost is the plant-wide V; the constraints are every row of
  the plant (input, shared input, state, mixed and terminal rows) that the agent's variables move. (v, α_i) =
  (u_i^p(0..N_c,i−1), 1) reproduces U^p, so (8) is feasible whenever U^p is (Theorem 1, step i).

Problem (9), the supervisor (`combine`): with the proposals U^(j) = (u_j*, u_−j^p),

    min_λ V(U^p + Σ_j λ_j (U^(j) − U^p))   s.t.  λ_j ≥ 0,  Σ_j λ_j ≤ 1,

i.e. a convex combination of U^p (weight 1 − Σλ_j: "keep the previous iterate where it is better") and the
proposals; each proposal and U^p satisfy every (convex) row, so every λ of the simplex is feasible and λ = 0
gives V(U^p) (Theorem 2's non-increase over iterations). A tiny ridge 1e-12·trace keeps the Hessian D'HD
positive definite when two proposals move the cost alike; it cannot raise V above V(U^p) either, since λ = 0
stays feasible for the regularized problem. `dominant` (Remark 2): the one of {U^p, U^(1), …, U^(M)} with the
lowest V, ties to the lowest index (the previous iterate first), so every agent picks the same one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .condensed import CondensedProblem
from .projection import Projection
from .qp import DenseQP
from .reference import ReferenceTrajectory

RIDGE = 1e-12          # relative ridge of the supervisor's Hessian (see module docstring)
NEGLIGIBLE = 1e-12     # a tail direction below this (∞-norm, input units) leaves α out


@dataclass(frozen=True)
class Tail:
    """What the tail of agent i's inputs is made of at one iteration: the previous iterate's own inputs a_k and
    the terminal law's b_k = κ_i(x^p(k)), k = 0 … N−1 (each N × n_u,i)."""

    previous: np.ndarray
    terminal: np.ndarray

    def inputs(self, head: np.ndarray, alpha: float) -> np.ndarray:
        """Own inputs (N × n_u,i): `head` (N_c × n_u,i) first, then α a_k + (1 − α) b_k."""
        tail = alpha * self.previous + (1.0 - alpha) * self.terminal
        return np.vstack([head, tail[head.shape[0]:]])


@dataclass(frozen=True)
class LocalResult:
    """What an agent takes from its problem (8): its proposal (N × n_u,i; the previous block when not usable)."""

    proposal: np.ndarray
    usable: bool
    infeasible: bool
    solve_time: float
    variables: int       # decision variables of (8)
    alpha: float         # α of the solution (1: the previous tail, also when α was left out)
    has_alpha: bool


def gradient_offset(problem: CondensedProblem, x0: np.ndarray, step: int) -> np.ndarray:
    """g = F x0 + c(step): V(U) = ½ U'HU + g'U + const."""
    return problem.F @ x0 + problem.reference_offset(step)


def tail_along(states: np.ndarray, reference: ReferenceTrajectory, step: int, gain: np.ndarray, U: np.ndarray,
               columns: np.ndarray, rows: slice) -> Tail:
    """An agent's previous inputs (`columns` of U) and κ_i(x) = ū_i + K_i (x − x̄) along the predicted plant
    `states` (N+1 × n_x) of U; `rows`: the agent's rows of K (module docstring)."""
    N = states.shape[0] - 1
    x_ref, u_ref = reference.window(step, N)
    terminal = u_ref[:, rows] + (states[:-1] - x_ref[:-1]) @ gain[rows].T
    return Tail(U[columns].reshape(N, -1), terminal)


def terminal_tail(problem: CondensedProblem, gain: np.ndarray, x0: np.ndarray, U: np.ndarray, agent: int,
                  step: int) -> Tail:
    """Agent `agent`'s previous inputs and κ_i along the plant state U predicts (module docstring)."""
    return tail_along(problem.predict(x0, U), problem.cost.reference, step, gain, U, problem.input_indices(agent),
                      problem.system.input_slice(agent))


class LocalProblem:
    """Problem (8) of one agent at one iterate: min V over (v, α) with the others fixed (module docstring)."""

    def __init__(self, problem: CondensedProblem, agent: int, control_horizon: int, tail: Tail,
                 x0: np.ndarray, U: np.ndarray, step: int, backend: str = "daqp") -> None:
        N, n_u = tail.previous.shape
        self.control_horizon, self.tail = control_horizon, tail
        direction = (tail.previous - tail.terminal)[control_horizon:]
        self.has_alpha = control_horizon < N and np.max(np.abs(direction), initial=0.0) > NEGLIGIBLE
        head = control_horizon * n_u
        T = np.zeros((N * n_u, head + int(self.has_alpha)))   # own inputs = T z + s
        T[:head, :head] = np.eye(head)
        s = np.zeros(N * n_u)
        if control_horizon < N:
            tail_values = tail.previous if not self.has_alpha else tail.terminal
            s[head:] = tail_values[control_horizon:].ravel()
            if self.has_alpha:
                T[head:, -1] = direction.ravel()
        columns = problem.input_indices(agent)
        G = np.zeros((U.size, T.shape[1]))
        G[columns] = T
        base = U.copy()
        base[columns] = s
        self._G, self._base, self._T, self._s = G, base, T, s
        self.num_variables = T.shape[1]
        H = G.T @ problem.H @ G
        q = G.T @ (problem.H @ base + gradient_offset(problem, x0, step))
        CG = problem.C @ G
        moved = np.any(np.abs(CG) > 0, axis=1)
        upper = (problem.d0 + problem.D @ x0 - problem.C @ base)[moved]
        rows, lower = CG[moved], np.full(int(moved.sum()), -np.inf)
        if self.has_alpha:   # 0 ≤ α ≤ 1
            unit = np.zeros((1, self.num_variables))
            unit[0, -1] = 1.0
            rows, lower, upper = np.vstack([rows, unit]), np.append(lower, 0.0), np.append(upper, 1.0)
        self._qp = DenseQP(H, rows, backend)
        self._q, self._lower, self._upper = q, lower, upper
        self.keep = np.append(tail.previous[:control_horizon].ravel(), [1.0] * int(self.has_alpha))   # = U^p

    def solve(self):
        """The QPSolution of (8), warm-started at the previous iterate's (v, α) = (u_i^p head, 1)."""
        return self._qp.solve(self._q, self._lower, self._upper, warm_start=self.keep)

    def own_inputs(self, z: np.ndarray) -> np.ndarray:
        """The agent's N × n_u,i inputs of decision vector z."""
        return (self._T @ z + self._s).reshape(self.tail.previous.shape)

    def alpha(self, z: np.ndarray) -> float:
        """α of z (1: the previous tail, also when α was left out)."""
        return float(z[-1]) if self.has_alpha else 1.0


def combine(problem: CondensedProblem, x0: np.ndarray, U: np.ndarray, step: int,
            proposals: dict[int, np.ndarray], rule: str, backend: str = "daqp") -> tuple[np.ndarray, dict[int, float]]:
    """Problem (9) (`rule` "weights") or the dominating proposal (Remark 2, "dominant"): the next iterate and the
    weight λ_j each proposal got. `proposals`: agent → its own N × n_u,j inputs (agents without one keep U^p)."""
    moves = {}
    for j in sorted(proposals):
        delta = np.zeros_like(U)
        columns = problem.input_indices(j)
        delta[columns] = proposals[j].ravel() - U[columns]
        if np.max(np.abs(delta), initial=0.0) > 0.0:
            moves[j] = delta
    if not moves:
        return U.copy(), {}
    g = gradient_offset(problem, x0, step) + problem.H @ U   # V(U + Dλ) − V(U) = ½ λ'D'HDλ + g'Dλ
    D = np.column_stack(list(moves.values()))
    change = D.T @ g
    G = D.T @ problem.H @ D
    if rule == "dominant":
        gains = 0.5 * np.diag(G) + change   # V(U^(j)) − V(U^p)
        best = int(np.argmin(gains))
        if gains[best] >= 0.0:
            return U.copy(), {j: 0.0 for j in moves}
        return U + D[:, best], {j: float(k == best) for k, j in enumerate(moves)}
    G = 0.5 * (G + G.T) + RIDGE * max(np.trace(G), 1.0) * np.eye(len(moves))
    rows = np.vstack([np.eye(len(moves)), np.ones((1, len(moves)))])
    lower = np.append(np.zeros(len(moves)), -np.inf)
    upper = np.ones(len(moves) + 1)
    solution = DenseQP(G, rows, backend).solve(change, lower, upper)
    weights = np.clip(solution.z, 0.0, 1.0) if solution.usable else np.zeros(len(moves))
    weights = weights / max(1.0, float(weights.sum()))
    if 0.5 * weights @ G @ weights + change @ weights > 0.0:   # never worse than U^p (numerical safeguard)
        weights = np.zeros(len(moves))
    return U + D @ weights, {j: float(w) for j, w in zip(moves, weights)}


class CondensedHorizons:
    """The linear model the dissimilar-horizon agents negotiate on (coordination/horizons.HorizonModel): the
    plant-wide condensed problem and the terminal gain K (u = ū + K (x − x̄))."""

    def __init__(self, problem: CondensedProblem, gain: np.ndarray) -> None:
        self.problem, self.gain = problem, gain
        self.system, self.horizon, self.reference = problem.system, problem.horizon, problem.cost.reference
        self._projection: Projection | None = None

    def columns(self, agent: int) -> np.ndarray:
        return self.problem.input_indices(agent)

    def predict(self, x0: np.ndarray, U: np.ndarray) -> np.ndarray:
        return self.problem.predict(x0, U)

    def cost(self, x0: np.ndarray, U: np.ndarray, step: int) -> float:
        """V(U) from x0 at `step`, constant terms included."""
        return self.problem.cost_value(x0, U, step)

    def slack(self, x0: np.ndarray, U: np.ndarray) -> float:
        return self.problem.constraint_slack(x0, U)

    def own_cost(self, agent: int, states: np.ndarray, inputs: np.ndarray, step: int) -> float:
        system = self.system
        return self.problem.cost.block(system.state_slice(agent), system.input_slice(agent)).trajectory(
            states, inputs, step)

    def repair(self, x0: np.ndarray, U: np.ndarray, backend: str) -> tuple[np.ndarray, bool, float]:
        """The Euclidean projection of U onto every row at x0."""
        if self._projection is None:
            self._projection = Projection(sp.csr_matrix(self.problem.C), backend)
        return self._projection.solve(self.problem.d0 + self.problem.D @ x0, U)

    def tail(self, x0: np.ndarray, U: np.ndarray, agent: int, step: int) -> Tail:
        return terminal_tail(self.problem, self.gain, x0, U, agent, step)

    def local(self, agent: int, control_horizon: int, tail: Tail, x0: np.ndarray, U: np.ndarray, step: int,
              backend: str) -> LocalResult:
        local = LocalProblem(self.problem, agent, control_horizon, tail, x0, U, step, backend)
        solution = local.solve()
        if not solution.usable:
            return LocalResult(tail.previous.copy(), False, solution.infeasible, solution.solve_time,
                               local.num_variables, 1.0, local.has_alpha)
        return LocalResult(local.own_inputs(solution.z), True, False, solution.solve_time, local.num_variables,
                           local.alpha(solution.z), local.has_alpha)

    def combine(self, x0: np.ndarray, U: np.ndarray, step: int, proposals: dict[int, np.ndarray], rule: str,
                backend: str) -> np.ndarray:
        return combine(self.problem, x0, U, step, proposals, rule, backend)[0]
