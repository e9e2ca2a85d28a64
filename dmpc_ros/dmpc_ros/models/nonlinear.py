"""Nonlinear coupled subsystems in neighbour-affine form (Pierer von Esch, Völz & Graichen, sensitivity-based DMPC):

    ẋ_i = f_i(x_i, u_i) + Σ_j f_ij(x_i, u_i, x_j, u_j),   stage cost l_i + Σ_j l_ij(x_i, x_j),
    g_i(x_i, u_i) ≤ 0.

Functions are written with CasADi operations (`casadi.sqrt`, `casadi.cos`, …) and called with symbols once, when a
problem is built. The prediction model is RK4 on each agent's own right-hand side with the neighbours' inputs held
and their states interpolated linearly between their planned x_j(k) and x_j(k+1) over the sampling interval
(`discrete_map`): every agent evaluates it from the plans it receives, and the centralized NLP uses the same map, so a
converged distributed solution and the centralized one solve the same problem. Its coupling error is O(Δt³) per
step (holding x_j(k) instead would be O(Δt²)). The plant integrates the true coupled continuous dynamics
(`NonlinearPlant`, scipy's adaptive solver).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import casadi as ca
import numpy as np
from scipy.integrate import solve_ivp

from .linear import AgentSizes, CoupledLinearSystem, PolytopicConstraint, Subsystem, discretize_zoh
from .robot import UnicycleBase

PLANT_TOLERANCE = 1e-10   # relative and absolute tolerance of the plant's integrator


@dataclass(frozen=True)
class NonlinearSubsystem:
    """One agent: own dynamics f_i(x, u) → ẋ, box limits, optional path constraints g_i(x, u) ≤ 0."""

    name: str
    state_names: tuple[str, ...]
    input_names: tuple[str, ...]
    dynamics: Callable
    state_lower: np.ndarray
    state_upper: np.ndarray
    input_lower: np.ndarray
    input_upper: np.ndarray
    path_constraint: Callable | None = None
    state_units: tuple[str, ...] = ()
    input_units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, size in (("state_lower", self.n_x), ("state_upper", self.n_x), ("input_lower", self.n_u),
                           ("input_upper", self.n_u)):
            value = np.asarray(getattr(self, name), float).ravel()
            if value.size != size:
                raise ValueError(f"agent {self.name}: {name} has {value.size} entries, expected {size}")
            if np.any(np.isnan(value)):
                raise ValueError(f"agent {self.name}: {name} has NaN entries (use ±inf for no limit)")
            object.__setattr__(self, name, value)
        if np.any(self.state_lower > self.state_upper) or np.any(self.input_lower > self.input_upper):
            raise ValueError(f"agent {self.name}: a lower limit exceeds its upper limit")

    @property
    def n_x(self) -> int:
        return len(self.state_names)

    @property
    def n_u(self) -> int:
        return len(self.input_names)

    def linear_sets(self) -> Subsystem:
        """Its box limits as the polytopic sets the common code (checks, input guard, plots) reads."""
        return Subsystem(self.name, self.n_x, self.n_u, PolytopicConstraint.box(self.state_lower, self.state_upper),
                         PolytopicConstraint.box(self.input_lower, self.input_upper),
                         state_names=tuple(self.state_names), input_names=tuple(self.input_names),
                         state_units=tuple(self.state_units), input_units=tuple(self.input_units))


@dataclass(frozen=True)
class NeighbourCoupling:
    """Agent `agent`'s terms with `neighbour`: f_ij(x_i, u_i, x_j, u_j) added to ẋ_i, a stage cost l_ij(x_i, x_j) of
    the agent, a pair constraint h_ij(x_i, x_j) ≤ 0 (e.g. a minimum distance) both agents keep."""

    agent: int
    neighbour: int
    dynamics: Callable | None = None
    cost: Callable | None = None
    constraint: Callable | None = None


@dataclass(frozen=True)
class NonlinearSetpoint:
    """From `time` [s] on, rest at (state, input): stacked over the agents, a steady state of the dynamics."""

    time: float
    state: np.ndarray
    input: np.ndarray


@dataclass(frozen=True)
class NonlinearNetwork(AgentSizes):
    """A user's (or a shipped example's) nonlinear plant with weights and references: the `nonlinear` family.

    `reference`, when given, maps time [s] → (x̄, ū) stacked (a path to follow); else the setpoints hold."""

    family = "nonlinear"

    agents: tuple[NonlinearSubsystem, ...]
    couplings: tuple[NeighbourCoupling, ...]
    sample_time: float
    state_weights: tuple[np.ndarray, ...]
    input_weights: tuple[np.ndarray, ...]
    setpoints: tuple[NonlinearSetpoint, ...] = ()
    reference: Callable[[float], tuple[np.ndarray, np.ndarray]] | None = None
    substeps: int = 4                 # RK4 steps per sampling interval of the prediction model
    terminal_weight: float = 1.0      # scales each agent's terminal cost x' P_ii x (block of the linearized DARE)
    metrics: Callable | None = field(default=None, compare=False)   # (network, x, u) → extra figures
    positions: tuple[tuple[int, int], ...] | None = None   # per agent, its planar position states (plots: paths)
    safety_radius: float = 0.0   # [m] drawn around each robot (rviz / Foxglove markers)
    robot_base: UnicycleBase | None = None   # the agents can drive real bases with it (robot mode)

    def __post_init__(self) -> None:
        M = len(self.agents)
        if M == 0:
            raise ValueError("a nonlinear network needs at least one agent")
        if self.substeps < 1:
            raise ValueError(f"substeps must be ≥ 1, got {self.substeps}")
        for c in self.couplings:
            if not (0 <= c.agent < M and 0 <= c.neighbour < M) or c.agent == c.neighbour:
                raise ValueError(f"coupling {c.agent}–{c.neighbour}: agents must be two different ids in 0..{M - 1}")
        for i, (sub, Q, R) in enumerate(zip(self.agents, self.state_weights, self.input_weights, strict=True)):
            if np.shape(Q) != (sub.n_x, sub.n_x) or np.shape(R) != (sub.n_u, sub.n_u):
                raise ValueError(f"agent {sub.name}: weights must be {sub.n_x}×{sub.n_x} and {sub.n_u}×{sub.n_u}, "
                                 f"got {np.shape(Q)} and {np.shape(R)}")
        if not self.setpoints and self.reference is None:
            raise ValueError("a nonlinear network needs setpoints or a reference function")

    # -- the PlantModel contract of the scenario code (sizes from AgentSizes) -------------------------------------
    def subsystems(self) -> list[Subsystem]:
        return [a.linear_sets() for a in self.agents]

    def discrete(self, sample_time: float, coupling_tolerance: float = 0.0) -> CoupledLinearSystem:
        """The exact discretization of the linearization at the first reference sample (deviation coordinates):
        what the load-time checks (stabilizability) and the terminal cost (DARE) use."""
        x_ref, u_ref = self.reference_at(0.0)
        A = np.asarray(self._jacobians(x_ref, u_ref)[0])
        B = np.asarray(self._jacobians(x_ref, u_ref)[1])
        Ad, Bd = discretize_zoh(A, B, sample_time)
        return CoupledLinearSystem.from_full(self.subsystems(), Ad, Bd, sample_time, coupling_tolerance)

    # -- dynamics -----------------------------------------------------------------------------------------------
    def neighbours(self, i: int) -> tuple[int, ...]:
        """N_i: the agents whose states or inputs enter agent i's dynamics, cost or pair constraints."""
        found = {c.neighbour for c in self.couplings if c.agent == i}
        found |= {c.agent for c in self.couplings if c.neighbour == i and c.constraint is not None}
        return tuple(sorted(found))

    def state_slice(self, i: int) -> slice:
        start = sum(a.n_x for a in self.agents[:i])
        return slice(start, start + self.agents[i].n_x)

    def input_slice(self, i: int) -> slice:
        start = sum(a.n_u for a in self.agents[:i])
        return slice(start, start + self.agents[i].n_u)

    def agent_rhs(self, i: int, x_i, u_i, others: dict) -> ca.SX:
        """ẋ_i given the neighbours' (x_j, u_j) in `others` (symbols or numbers)."""
        rhs = ca.vcat([self.agents[i].dynamics(x_i, u_i)])
        for c in self.couplings:
            if c.agent == i and c.dynamics is not None:
                x_j, u_j = others[c.neighbour]
                rhs = rhs + ca.vcat([c.dynamics(x_i, u_i, x_j, u_j)])
        return rhs

    @cached_property
    def continuous(self) -> ca.Function:
        """ẋ = f(x, u) of the whole plant (the true coupled dynamics)."""
        x, u = ca.SX.sym("x", self.n_x), ca.SX.sym("u", self.n_u)
        parts = {i: (x[self.state_slice(i)], u[self.input_slice(i)]) for i in range(self.num_agents)}
        rhs = ca.vcat([self.agent_rhs(i, *parts[i], parts) for i in range(self.num_agents)])
        return ca.Function("f", [x, u], [rhs])

    def _jacobians(self, x: np.ndarray, u: np.ndarray):
        xs, us = ca.SX.sym("x", self.n_x), ca.SX.sym("u", self.n_u)
        rhs = self.continuous(xs, us)
        return ca.Function("J", [xs, us], [ca.jacobian(rhs, xs), ca.jacobian(rhs, us)])(x, u)

    def discrete_map(self, i: int) -> ca.Function:
        """Φ_i(x_i, u_i, z_i) → x_i⁺: RK4 (`substeps` steps) of ẋ_i, z_i = the neighbours' stacked
        (x_j(k), u_j(k), x_j(k+1)): inputs held, states interpolated linearly over the interval."""
        sub, h = self.agents[i], self.sample_time / self.substeps
        x, u = ca.SX.sym("x", sub.n_x), ca.SX.sym("u", sub.n_u)
        z, ends = [], {}
        for j in self.neighbours(i):
            x_j, u_j = ca.SX.sym(f"x{j}", self.agents[j].n_x), ca.SX.sym(f"u{j}", self.agents[j].n_u)
            x_next = ca.SX.sym(f"x{j}_next", self.agents[j].n_x)
            z += [x_j, u_j, x_next]
            ends[j] = (x_j, u_j, x_next)
        z = ca.vcat(z) if z else ca.SX(0, 1)

        def f(state, fraction: float):
            others = {j: ((1 - fraction) * a + fraction * b, u_j) for j, (a, u_j, b) in ends.items()}
            return self.agent_rhs(i, state, u, others)

        state = x
        for s in range(self.substeps):
            start, half, end = s / self.substeps, (s + 0.5) / self.substeps, (s + 1) / self.substeps
            k1 = f(state, start)
            k2 = f(state + h / 2 * k1, half)
            k3 = f(state + h / 2 * k2, half)
            k4 = f(state + h * k3, end)
            state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return ca.Function(f"Phi{i}", [x, u, z], [state])

    # -- references ---------------------------------------------------------------------------------------------
    def reference_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(x̄(t), ū(t)) stacked: the reference function, else the setpoint in force at t."""
        if self.reference is not None:
            x_ref, u_ref = self.reference(t)
            return np.asarray(x_ref, float).ravel(), np.asarray(u_ref, float).ravel()
        current = self.setpoints[0]
        for setpoint in self.setpoints:
            if setpoint.time <= t + 1e-12:
                current = setpoint
        return np.asarray(current.state, float), np.asarray(current.input, float)

    def steady_state_residual(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """ẋ at (x, u): zero at a steady state."""
        return np.asarray(self.continuous(x, u), float).ravel()


class NonlinearPlant:
    """The simulated plant: the true coupled continuous dynamics under zero-order-hold inputs, integrated by
    scipy's adaptive RK45 at tight tolerance; offers what the drivers read from a CoupledLinearSystem."""

    def __init__(self, network: NonlinearNetwork, sample_time: float) -> None:
        self.network, self.sample_time = network, float(sample_time)
        self.subsystems = tuple(network.subsystems())
        self.num_agents, self.n_x, self.n_u = network.num_agents, network.n_x, network.n_u
        self._f = network.continuous
        self._lower_x = np.concatenate([a.state_lower for a in network.agents])
        self._upper_x = np.concatenate([a.state_upper for a in network.agents])
        self._lower_u = np.concatenate([a.input_lower for a in network.agents])
        self._upper_u = np.concatenate([a.input_upper for a in network.agents])

    def state_slice(self, i: int) -> slice:
        return self.network.state_slice(i)

    def input_slice(self, i: int) -> slice:
        return self.network.input_slice(i)

    def step(self, x: np.ndarray, u: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """x(k+1) from x(k) under u(k) held for one sample (plus the additive disturbance w)."""
        u = np.asarray(u, float)
        solution = solve_ivp(lambda t, s: np.asarray(self._f(s, u), float).ravel(), (0.0, self.sample_time),
                             np.asarray(x, float), method="RK45", rtol=PLANT_TOLERANCE, atol=PLANT_TOLERANCE)
        if not solution.success:
            raise RuntimeError(f"plant integration failed: {solution.message}")
        x_next = solution.y[:, -1]
        return x_next if w is None else x_next + w

    def constraint_violation(self, x: np.ndarray, u: np.ndarray | None = None) -> float:
        """Largest box-limit violation of x (and u) [their units]; 0 inside."""
        values = [np.max(x - self._upper_x, initial=0.0), np.max(self._lower_x - x, initial=0.0)]
        if u is not None:
            values += [np.max(u - self._upper_u, initial=0.0), np.max(self._lower_u - u, initial=0.0)]
        path = [a.path_constraint for a in self.network.agents]
        if u is not None and any(path):
            for i, g in enumerate(path):
                if g is not None:
                    value = np.asarray(ca.evalf(ca.vcat([g(ca.DM(x[self.state_slice(i)]),
                                                           ca.DM(u[self.input_slice(i)]))])), float)
                    values.append(float(np.max(value, initial=0.0)))
        return float(max(values))

