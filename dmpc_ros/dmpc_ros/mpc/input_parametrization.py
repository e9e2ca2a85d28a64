"""Control horizons for every scheme: the inputs after N_c are not decision variables (`controller.control_horizon`).

A QP over time-major inputs z = (u(0), …, u(N−1)) of some channels (one agent's own inputs, or the whole plant's)
keeps as decision variables only the entries of each channel before its control horizon N_c (the channel's agent's),
v = z[head]. The rest, the tail k ≥ N_c, follows one of two rules (`controller.control_tail`):
- `hold`: u(k) = u(N_c − 1), move blocking. z = T v with T a fixed 0/1 matrix; the set of such sequences is a
  linear subspace, so the convex combinations of cooperative schemes stay in it, and a shifted plan stays in it when
  its appended input is the held one (the agents' shift does that, coordination/block_agent.py).
- `terminal`: u(k) = ū(k) + K (x(k) − x̄(k)), the terminal law along the prediction x = F + G z (F: the response to
  everything but z; G: to z). Time-major, x(k) depends on z before k only, so the tail solves a block lower
  triangular system: z = T v + c, with T fixed and c affine in F (the initial state and the other agents' inputs):
      z_t = b + A_th z_h + A_tt z_t  ⇒  z_t = (I − A_tt)^{-1} (b + A_th v),   A = K G (tail rows),
      b = ū_t + K (F − x̄)_t.
  It is the paper's tail with α = 0 (dissimilar-control-horizons: inputs after N_c given by κ); with N_c = N the
  parametrization is the identity either way.

A QP min ½ z'Hz + q'z s.t. lower ≤ C z ≤ upper becomes min ½ v'(T'HT)v + (T'(q + Hc))'v
s.t. lower − Cc ≤ CT v ≤ upper − Cc: `ParametrizedQP` wraps a DenseQP so that callers keep working in z
(solutions, warm starts), and the QP's size is N_c·n_u instead of N·n_u.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .qp import DenseQP, QPSolution

TAILS = ("hold", "terminal")


@dataclass(frozen=True)
class ControlHorizons:
    """Per-agent control horizons N_c,i (1 ≤ N_c,i ≤ N) and the tail rule after them."""

    values: tuple[int, ...]
    tail: str = "hold"

    def __post_init__(self) -> None:
        if self.tail not in TAILS:
            raise ValueError(f"controller.control_tail: {self.tail!r} is not allowed: one of {', '.join(TAILS)}")

    def of(self, agent: int, horizon: int) -> int:
        return min(self.values[agent], horizon)

    def shortened(self, horizon: int) -> bool:
        """Whether any agent has fewer decision steps than the prediction horizon."""
        return any(v < horizon for v in self.values)

    def holds(self, agent: int, horizon: int) -> bool:
        """Whether the agent's tail is held (its shifted plan then appends its last input, not the terminal law)."""
        return self.tail == "hold" and self.of(agent, horizon) < horizon


class InputParametrization:
    """z = T v + c for the time-major inputs z (N × width) of channels whose control horizons are `free_steps`
    (one per channel). For `terminal`, `response` is G (the prediction's rows of x(0..N), (N+1)·n × N·width, in
    the prediction's own state order) and `gain` the channels' rows of K on those states (width × n)."""

    def __init__(self, horizon: int, free_steps: np.ndarray, tail: str = "hold",
                 response: np.ndarray | None = None, gain: np.ndarray | None = None) -> None:
        if tail not in TAILS:
            raise ValueError(f"control tail {tail!r} is not allowed: one of {', '.join(TAILS)}")
        N, free_steps = horizon, np.minimum(np.asarray(free_steps, int), horizon)
        width = free_steps.size
        self.horizon, self.width, self.tail = N, width, tail
        times = np.repeat(np.arange(N), width)
        channels = np.tile(np.arange(width), N)
        is_head = times < free_steps[channels]
        self.head = np.flatnonzero(is_head)              # entries of z that are decision variables (v), time-major
        self.tail_entries = np.flatnonzero(~is_head)
        self.identity = self.tail_entries.size == 0
        size = N * width
        T = np.zeros((size, self.head.size))
        T[self.head, np.arange(self.head.size)] = 1.0
        self._b_map = None
        if tail == "hold" and not self.identity:
            last = (free_steps[channels[self.tail_entries]] - 1) * width + channels[self.tail_entries]
            column = np.searchsorted(self.head, last)
            T[self.tail_entries, column] = 1.0
        elif not self.identity:
            if response is None or gain is None:
                raise ValueError("the terminal tail needs the prediction's response and the terminal gain")
            n = gain.shape[1]
            # K G restricted to the tail entries: row (k, ch) = K[ch] · (rows of x(k) in G)
            per_time = response.reshape(N + 1, n, size)
            t_times, t_channels = times[self.tail_entries], channels[self.tail_entries]
            KG = np.einsum("en,enz->ez", gain[t_channels], per_time[t_times])
            A_tt, A_th = KG[:, self.tail_entries], KG[:, self.head]
            solve = np.linalg.inv(np.eye(self.tail_entries.size) - A_tt)   # block lower triangular: invertible
            T[self.tail_entries] = solve @ A_th
            self._solve = solve
            self._gain_rows = gain[t_channels]                 # K[ch] per tail entry
            self._tail_times, self._tail_channels = t_times, t_channels
            self._n = n
        self.T = T

    @property
    def size(self) -> int:
        """Decision variables N_c·width (summed over channels)."""
        return self.head.size

    def offset(self, free_response: np.ndarray | None = None, x_ref: np.ndarray | None = None,
               u_ref: np.ndarray | None = None) -> np.ndarray | None:
        """c for the prediction's response to everything but z (`free_response`, (N+1) × n) and the references
        x̄(0..N) ((N+1) × n), ū(0..N−1) (N × width); None for `hold` and for the identity."""
        if self.tail == "hold" or self.identity:
            return None
        t, ch = self._tail_times, self._tail_channels
        deviation = free_response[t] - x_ref[t]
        b = np.asarray(u_ref)[t, ch] + np.einsum("en,en->e", self._gain_rows, deviation)
        c = np.zeros(self.horizon * self.width)
        c[self.tail_entries] = self._solve @ b
        return c

    def expand(self, v: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
        z = self.T @ v
        return z if c is None else z + c

    def reduce(self, z: np.ndarray) -> np.ndarray:
        """The decision variables of z (its head entries): exact for z in the parametrized set."""
        return np.asarray(z)[self.head]

    def qp(self, H: np.ndarray, C: np.ndarray, backend: str = "daqp") -> "DenseQP | ParametrizedQP":
        """The QP in v (the plain DenseQP in z when nothing is parametrized away)."""
        if self.identity:
            return DenseQP(H, C, backend)
        return ParametrizedQP(self, H, C, backend)


class ParametrizedQP:
    """A DenseQP in v behind the interface of one in z (DenseQP.solve's arguments and QPSolution.z in z)."""

    def __init__(self, parametrization: InputParametrization, H: np.ndarray, C: np.ndarray,
                 backend: str = "daqp") -> None:
        T = parametrization.T
        self.parametrization, self.H_z, self.C_z = parametrization, H, C
        self.reduced = DenseQP(T.T @ H @ T, C @ T, backend)
        self.num_variables = parametrization.size
        self.A = C   # rows on z, as DenseQP.A (what explicit_law reads)
        self.offset: np.ndarray | None = None   # c of the next solve (terminal tail), set by the caller

    def solve(self, q: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              warm_start: np.ndarray | None = None) -> QPSolution:
        p, c = self.parametrization, self.offset
        if c is not None:
            q, shift = q + self.H_z @ c, self.C_z @ c
            lower, upper = lower - shift, upper - shift
        T = p.T
        start = None if warm_start is None else p.reduce(warm_start)
        solution = self.reduced.solve(T.T @ q, lower, upper, start)
        z = p.expand(solution.z, c) if solution.usable else np.zeros(T.shape[0])
        return QPSolution(z, solution.ok, solution.status, solution.solve_time, solution.iterations,
                          solution.infeasible)


@dataclass(frozen=True)
class ControlTailRows:
    """The tails of every agent as equality rows on the sparse centralized QP's w = [x(0..N); u(0..N−1)]:
    u_c(k) − u_c(N_c − 1) = 0 (hold) or u_c(k) − K_c x(k) = ū_c(k) − K_c x̄(k) (terminal), k ≥ N_c of c's
    agent."""

    rows: Any                     # scipy.sparse (count × (N+1)·n + N·m)
    count: int
    entries: np.ndarray           # (k, channel) per row, for the terminal bounds
    gain: np.ndarray | None       # K (terminal tail)

    @staticmethod
    def of(system, horizon: int, horizons: ControlHorizons | None, gain: np.ndarray | None) -> "ControlTailRows":
        N, n, m = horizon, system.n_x, system.n_u
        entries = [] if horizons is None else [
            (k, c, horizons.of(i, N)) for i in range(system.num_agents)
            for c in np.arange(m)[system.input_slice(i)] for k in range(horizons.of(i, N), N)]
        width = (N + 1) * n + N * m
        if not entries:
            return ControlTailRows(sp.csr_matrix((0, width)), 0, np.zeros((0, 2), int), None)
        row, column, value = [], [], []
        terminal = horizons.tail == "terminal"
        for r, (k, c, free) in enumerate(entries):
            row.append(r), column.append((N + 1) * n + k * m + c), value.append(1.0)
            if terminal:
                states = np.flatnonzero(gain[c])
                row += [r] * states.size
                column += list(k * n + states)
                value += list(-gain[c, states])
            else:
                row.append(r), column.append((N + 1) * n + (free - 1) * m + c), value.append(-1.0)
        rows = sp.csr_matrix((value, (row, column)), shape=(len(entries), width))
        return ControlTailRows(rows, len(entries), np.array([(k, c) for k, c, _ in entries]),
                               gain if terminal else None)

    def bounds(self, reference, step: int) -> np.ndarray:
        """The rows' right-hand sides at control step `step` (zeros for hold)."""
        if self.gain is None:
            return np.zeros(self.count)
        x_ref, u_ref = reference.window(step, int(self.entries[:, 0].max()) + 1)
        k, c = self.entries[:, 0], self.entries[:, 1]
        return np.asarray(u_ref)[k, c] - np.einsum("en,en->e", self.gain[c], np.asarray(x_ref)[k])
