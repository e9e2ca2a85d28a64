"""A user's coupled linear system given as matrices, one entry per agent (the `linear` model family and the
Python API): x_i⁺ = A_ii x_i + B_ii u_i + Σ_j (A_ij x_j + B_ij u_j), or ẋ_i = … in continuous time, which
is discretized exactly (zero-order hold) on the whole plant. Every shape is checked where the network is
built, and an error names the agent, the block and both shapes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .linear import (AgentSizes, CoupledLinearSystem, CouplingTerm, MixedConstraint, PolytopicConstraint, Subsystem,
                     discretize_zoh)

TIME_DOMAINS = ("discrete", "continuous")


def matrix(value: object, rows: int, columns: int, what: str) -> np.ndarray:
    """`value` as a finite rows × columns float array; ValueError naming `what` and both shapes otherwise."""
    array = np.asarray(value, dtype=float)
    if array.ndim == 1 and array.size == rows * columns and 1 in (rows, columns):   # a row or column vector
        array = array.reshape(rows, columns)
    if array.ndim != 2 or array.shape != (rows, columns):
        shape = "×".join(map(str, array.shape)) or "a scalar"
        raise ValueError(f"{what} is {shape}, expected {rows}×{columns}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} has non-finite entries")
    return array


def unconstrained(size: int) -> PolytopicConstraint:
    return PolytopicConstraint(np.zeros((0, size)), np.zeros(0))


@dataclass(frozen=True)
class Setpoint:
    """From `time` [s] on, the agent's states should rest at `state` (NaN: free, computed from the steady state
    of the whole plant); `input` optionally fixes the steady input (else computed)."""

    time: float
    state: np.ndarray
    input: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", np.array([np.nan if v is None else v for v in np.ravel(self.state)], float))
        if self.input is not None:
            object.__setattr__(self, "input", np.array(np.ravel(self.input), float))


@dataclass(frozen=True)
class Coupling:
    """How neighbour j enters agent i's dynamics: A_ij (n_i × n_j) on its state, B_ij (n_i × m_j) on its input."""

    A: np.ndarray | None = None
    B: np.ndarray | None = None


@dataclass(frozen=True)
class LinearAgent:
    """One agent's subsystem: own dynamics, couplings by neighbour name, constraints, weights and setpoints."""

    name: str
    A: np.ndarray
    B: np.ndarray
    couplings: Mapping[str, Coupling] = field(default_factory=dict)
    Q: np.ndarray | None = None                      # default identity
    R: np.ndarray | None = None                      # default identity
    state_constraint: PolytopicConstraint | None = None
    input_constraint: PolytopicConstraint | None = None
    mixed_constraint: MixedConstraint | None = None
    state_names: tuple[str, ...] = ()                # default x1, x2, … (symbols across agents: see disturbances)
    input_names: tuple[str, ...] = ()
    state_units: tuple[str, ...] = ()
    input_units: tuple[str, ...] = ()
    setpoints: tuple[Setpoint, ...] = ()             # default: rest at the origin

    @property
    def n_x(self) -> int:
        return int(np.shape(self.A)[0])

    @property
    def n_u(self) -> int:
        shape = np.shape(self.B)
        return int(shape[1]) if len(shape) == 2 else 1


@dataclass(frozen=True)
class CostCoupling:
    """A PSD stage-cost term on two agents' state errors, (x_a − x̄_a; x_b − x̄_b)' W (…), owned by agent a."""

    owner: str
    other: str
    W: np.ndarray


@dataclass(frozen=True)
class LinearNetwork(AgentSizes):
    """The whole user system. `time` says whether A, B are discrete (x⁺) or continuous (ẋ) matrices."""

    agents: tuple[LinearAgent, ...]
    sample_time: float
    time: str = "discrete"
    shared_input_constraint: PolytopicConstraint | None = None   # rows on the stacked u of all agents
    cost_couplings: tuple[CostCoupling, ...] = ()
    graph: tuple[tuple[str, str], ...] | None = None              # declared communication graph (checked)
    setpoint_interpolation: str = "step"                          # step | linear between setpoint times
    coupling_tolerance: float = 0.0   # prediction model: couplings below this (relative) dropped (Python API)
    family = "linear"                                              # the scenario family that runs it

    def __post_init__(self) -> None:
        object.__setattr__(self, "agents", tuple(self.agents))
        object.__setattr__(self, "cost_couplings", tuple(self.cost_couplings))
        if not self.agents:
            raise ValueError("a linear network needs at least one agent")
        if self.time not in TIME_DOMAINS:
            raise ValueError(f"time '{self.time}' is not allowed: must be one of {', '.join(TIME_DOMAINS)}")
        if self.setpoint_interpolation not in ("step", "linear"):
            raise ValueError(f"setpoint_interpolation '{self.setpoint_interpolation}' is not allowed: step or linear")
        if not 0.0 <= self.coupling_tolerance <= 1.0:
            raise ValueError(f"coupling_tolerance {self.coupling_tolerance} is not allowed: must be in [0, 1]")
        if not (np.isfinite(self.sample_time) and self.sample_time > 0):
            raise ValueError(f"sample_time {self.sample_time} is not allowed: must be > 0 [s]")
        names = [a.name for a in self.agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError("agent names must be unique; "
                             f"'{duplicates[0]}' appears {names.count(duplicates[0])} times")
        object.__setattr__(self, "agents", tuple(self._checked(a) for a in self.agents))
        self._check_costs()
        self._check_graph()
        if self.shared_input_constraint is not None:
            H = matrix(self.shared_input_constraint.H, np.shape(self.shared_input_constraint.H)[0], self.n_u,
                       "shared_input_constraint.H (rows × all agents' inputs)")
            h = np.asarray(self.shared_input_constraint.h, float).ravel()
            if h.size != H.shape[0]:
                raise ValueError(f"shared_input_constraint.h has {h.size} entries, expected {H.shape[0]} (one per row)")
            object.__setattr__(self, "shared_input_constraint", PolytopicConstraint(H, h))

    # -- checks -----------------------------------------------------------------------------------------------
    def index(self, name: str) -> int:
        for i, agent in enumerate(self.agents):
            if agent.name == name:
                return i
        raise ValueError(f"unknown agent '{name}'; agents: {', '.join(a.name for a in self.agents)}")

    def _checked(self, agent: LinearAgent) -> LinearAgent:
        """The agent with arrays of checked shapes and defaults filled in."""
        where = f"agent '{agent.name}'"
        A = np.asarray(agent.A, float)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"{where}: A is {'×'.join(map(str, A.shape))}, expected a square n_x × n_x matrix")
        n = A.shape[0]
        A = matrix(A, n, n, f"{where}: A")
        B = np.asarray(agent.B, float)
        m = B.shape[1] if B.ndim == 2 else 1
        B = matrix(B, n, m, f"{where}: B (n_x × n_u)")
        couplings = {}
        for other, coupling in dict(agent.couplings).items():
            if other == agent.name:
                raise ValueError(f"{where}: couplings.{other}: an agent's own dynamics go in A and B, not couplings")
            j = self.index(other)
            source = self.agents[j]
            n_j = np.shape(source.A)[0]
            m_j = np.shape(source.B)[1] if np.ndim(source.B) == 2 else 1
            if isinstance(coupling, Mapping):
                coupling = Coupling(coupling.get("A"), coupling.get("B"))
            Aij = None if coupling.A is None else matrix(coupling.A, n, n_j, f"{where}: couplings.{other}.A "
                                                                             f"(n_x of {agent.name} × n_x of {other})")
            Bij = None if coupling.B is None else matrix(coupling.B, n, m_j, f"{where}: couplings.{other}.B "
                                                                             f"(n_x of {agent.name} × n_u of {other})")
            couplings[other] = Coupling(Aij, Bij)
        Q = np.eye(n) if agent.Q is None else matrix(agent.Q, n, n, f"{where}: Q")
        R = np.eye(m) if agent.R is None else matrix(agent.R, m, m, f"{where}: R")
        if not np.allclose(Q, Q.T) or np.min(np.linalg.eigvalsh(0.5 * (Q + Q.T))) < -1e-12:
            raise ValueError(f"{where}: Q must be symmetric positive semidefinite")
        if not np.allclose(R, R.T) or np.min(np.linalg.eigvalsh(0.5 * (R + R.T))) <= 0:
            raise ValueError(f"{where}: R must be symmetric positive definite")
        states = self._constraint(agent.state_constraint, n, f"{where}: state_constraint")
        inputs = self._constraint(agent.input_constraint, m, f"{where}: input_constraint")
        mixed = agent.mixed_constraint
        if mixed is not None:
            rows = np.shape(mixed.h)[0] if np.ndim(mixed.h) else 1
            mixed = MixedConstraint(matrix(mixed.Hx, rows, n, f"{where}: mixed_constraint.Hx"),
                                    matrix(mixed.Hu, rows, m, f"{where}: mixed_constraint.Hu"),
                                    np.asarray(mixed.h, float).ravel())
        names = tuple(agent.state_names) or tuple(f"x{k + 1}" for k in range(n))
        inputs_names = tuple(agent.input_names) or tuple(f"u{k + 1}" for k in range(m))
        for label, values, size in (("state_names", names, n), ("input_names", inputs_names, m),
                                    ("state_units", agent.state_units, n), ("input_units", agent.input_units, m)):
            if values and len(values) != size:
                raise ValueError(f"{where}: {label} has {len(values)} entries, expected {size}")
            twice = next((v for k, v in enumerate(values) if v in values[:k]), None) if "names" in label else None
            if twice is not None:
                raise ValueError(f"{where}: {label} gives {twice!r} twice; each name may appear once")
        setpoints = tuple(sorted((s if isinstance(s, Setpoint) else Setpoint(*s) for s in agent.setpoints),
                                 key=lambda s: s.time))
        for s in setpoints:
            if s.state.size != n:
                raise ValueError(f"{where}: setpoint at t = {s.time} s has {s.state.size} states, expected {n}")
            if s.input is not None and s.input.size != m:
                raise ValueError(f"{where}: setpoint at t = {s.time} s has {s.input.size} inputs, expected {m}")
        if setpoints and setpoints[0].time != 0:
            raise ValueError(f"{where}: the first setpoint must be at time 0, got {setpoints[0].time} s")
        return LinearAgent(agent.name, A, B, couplings, Q, R, states, inputs, mixed, names, inputs_names,
                           tuple(agent.state_units), tuple(agent.input_units), setpoints)

    @staticmethod
    def _constraint(constraint: PolytopicConstraint | None, size: int, what: str) -> PolytopicConstraint:
        if constraint is None:
            return unconstrained(size)
        H = np.asarray(constraint.H, float).reshape(-1, size) if np.size(constraint.H) else np.zeros((0, size))
        h = np.asarray(constraint.h, float).ravel()
        H = matrix(H, h.size, size, f"{what}.H (rows × {size})")
        if np.any(np.isnan(h)):
            raise ValueError(f"{what}.h has NaN entries")
        return PolytopicConstraint(H, h)

    def _check_costs(self) -> None:
        for term in self.cost_couplings:
            a, b = self.index(term.owner), self.index(term.other)
            if a == b:
                raise ValueError(f"cost coupling of '{term.owner}' with itself: put it in the agent's Q")
            size = self.agents[a].n_x + self.agents[b].n_x
            W = matrix(term.W, size, size, f"cost coupling {term.owner}–{term.other}: W (n_x of both)")
            if not np.allclose(W, W.T) or np.min(np.linalg.eigvalsh(0.5 * (W + W.T))) < -1e-12:
                raise ValueError(f"cost coupling {term.owner}–{term.other}: W must be symmetric positive "
                                 f"semidefinite")

    def coupled_pairs(self) -> set[frozenset[str]]:
        """Undirected pairs of agents coupled through the dynamics (non-zero A_ij or B_ij) or the cost."""
        pairs = {frozenset((agent.name, other)) for agent in self.agents for other, c in agent.couplings.items()
                 if (c.A is not None and np.any(c.A)) or (c.B is not None and np.any(c.B))}
        return pairs | {frozenset((t.owner, t.other)) for t in self.cost_couplings}

    def _check_graph(self) -> None:
        if self.graph is None:
            return
        declared = set()
        for edge in self.graph:
            a, b = edge
            self.index(a), self.index(b)
            declared.add(frozenset((a, b)))
        for pair in sorted(self.coupled_pairs() - declared, key=sorted):
            a, b = sorted(pair)
            raise ValueError(f"graph: agents '{a}' and '{b}' are coupled (dynamics or cost) but the declared graph "
                             f"has no edge between them")
        for pair in sorted(declared - self.coupled_pairs(), key=sorted):
            a, b = sorted(pair)
            raise ValueError(f"graph: the declared edge {a}–{b} couples nothing (no A_ij, B_ij or cost term "
                             f"between them)")

    # -- the model protocol (sizes from AgentSizes) -------------------------------------------------------------
    def subsystems(self) -> list[Subsystem]:
        return [Subsystem(a.name, a.n_x, a.n_u, a.state_constraint, a.input_constraint, a.state_names,
                          a.input_names, a.state_units, a.input_units, a.mixed_constraint) for a in self.agents]

    def full_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """Plant-wide (A, B) as given (continuous or discrete), agents stacked in order."""
        sx = np.concatenate([[0], np.cumsum([a.n_x for a in self.agents])])
        su = np.concatenate([[0], np.cumsum([a.n_u for a in self.agents])])
        A, B = np.zeros((sx[-1], sx[-1])), np.zeros((sx[-1], su[-1]))
        for i, agent in enumerate(self.agents):
            rows = slice(sx[i], sx[i + 1])
            A[rows, sx[i]:sx[i + 1]] = agent.A
            B[rows, su[i]:su[i + 1]] = agent.B
            for other, coupling in agent.couplings.items():
                j = self.index(other)
                if coupling.A is not None:
                    A[rows, sx[j]:sx[j + 1]] = coupling.A
                if coupling.B is not None:
                    B[rows, su[j]:su[j + 1]] = coupling.B
        return A, B

    def discrete(self, sample_time: float, coupling_tolerance: float = 0.0) -> CoupledLinearSystem:
        """The discrete-time system: exact ZOH of the whole plant for continuous matrices (so couplings also
        appear where the continuous model had none over a step), the matrices themselves for discrete ones."""
        if self.time == "discrete" and abs(sample_time - self.sample_time) > 1e-12 * self.sample_time:
            raise ValueError(f"the matrices are discrete-time for sample_time {self.sample_time} s; cannot use "
                             f"them at {sample_time} s")
        A, B = self.full_matrices()
        if self.time == "continuous":
            A, B = discretize_zoh(A, B, sample_time)
        return CoupledLinearSystem.from_full(self.subsystems(), A, B, sample_time, coupling_tolerance,
                                             self.shared_input_constraint)

    def weights(self) -> tuple[np.ndarray, np.ndarray, tuple[CouplingTerm, ...]]:
        """Plant-wide (Q, R) and Q's couplings as pair terms (owned by the first-named agent)."""
        from scipy.linalg import block_diag

        Q = block_diag(*[a.Q for a in self.agents])
        R = block_diag(*[a.R for a in self.agents])
        offsets = np.concatenate([[0], np.cumsum([a.n_x for a in self.agents])])
        terms = []
        for term in self.cost_couplings:
            a, b = self.index(term.owner), self.index(term.other)
            W = 0.5 * (np.asarray(term.W, float) + np.asarray(term.W, float).T)
            terms.append(CouplingTerm(a, b, W))
            index = np.r_[offsets[a]:offsets[a + 1], offsets[b]:offsets[b + 1]]
            Q[np.ix_(index, index)] += W
        return Q, R, tuple(terms)

    def setpoint_times(self) -> list[float]:
        return sorted({s.time for a in self.agents for s in a.setpoints} | {0.0})

    def setpoint_at(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """(x̄ with NaN where free, ū with NaN where free) of every agent's latest setpoint at `time`."""
        x, u = [], []
        for agent in self.agents:
            current = [s for s in agent.setpoints if s.time <= time]
            if not current:
                x.append(np.zeros(agent.n_x))
                u.append(np.full(agent.n_u, np.nan))
                continue
            x.append(current[-1].state)
            u.append(np.full(agent.n_u, np.nan) if current[-1].input is None else current[-1].input)
        return np.concatenate(x), np.concatenate(u)
