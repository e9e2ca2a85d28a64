"""The controller design of a linear network (model, cost, horizon) and the scheme-generic builders of agents:
the scheme is looked up in the registry (coordination/scheme.py) and checked on `design.problem()`; nothing here
names one."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from scipy.linalg import block_diag

from ..models.linear import CouplingTerm, CoupledLinearSystem, PolytopicConstraint, Subsystem
from ..mpc.agent_problem import AgentBlockQP
from ..mpc.condensed import CondensedProblem, PlantPrediction, QuadraticCost
from ..mpc.explicit_law import ExplicitLaws
from ..mpc.input_parametrization import ControlHorizons
from ..mpc.parallel_step_sparse import dense_step_bound, matrix_free_bounds
from ..mpc.reference import ReferenceTrajectory
from ..mpc.terminal import lqr_terminal, maximal_admissible_set
from ..mpc.tubes import TubeFamily
from ..progress import counted, report
from .base import Agent, StoppingRule
from .centralized import CentralizedController
from .collision import CollisionAvoidance
from .consensus import CentreConsensus, CentreConsensusAgent
from .dual_decomposition import dual_step_size, shared_constraint_maps
from .safe_input import InputGuard
from .scheme import AgentRequest, Problem, scheme_names, scheme_of
from .tube import TubeAgent


@dataclass(frozen=True)
class ControllerDesign:
    """Everything the controllers share: prediction model, weights, horizon, terminal ingredients."""

    system: CoupledLinearSystem
    Q: np.ndarray
    R: np.ndarray
    horizon: int
    reference: ReferenceTrajectory
    use_terminal_set: bool = False
    separable_terminal_cost: bool = False   # keep only the agents' diagonal blocks of the DARE solution
    coupling_terms: tuple[CouplingTerm, ...] = ()   # how Q's couplings split into PSD pair terms (for ADMM)
    collision: CollisionAvoidance | None = None     # separating half-planes between robot pairs, per step
    centre_consensus: CentreConsensus | None = None  # agents agree on the formation centre before the MPC
    tubes: TubeFamily | None = None          # tube-based robust mode: Z_i, K_i, plan-change bounds (system tightened)
    applied_limits: tuple[Subsystem, ...] | None = None   # the plant's own sets when `system`'s are tightened
    explicit: ExplicitLaws | None = None     # every agent's multiparametric solution (explicit schemes)
    control_horizons: ControlHorizons | None = None   # N_c,i and the tail after it (None: every input is free)

    nonlinear = False   # builds agents with Scheme.build_linear (class attribute, not a field)

    def agents(self, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
               weights: list[float] | None = None, scheme_settings: Any = None) -> list[Agent]:
        """Every agent of `algorithm` (the simulator's; a nonlinear design offers the same)."""
        return build_agents(self, algorithm, stopping, backend, weights, scheme_settings)

    def agent(self, algorithm: str, agent_id: int, stopping: StoppingRule, backend: str = "daqp",
              weights: list[float] | None = None, scheme_settings: Any = None) -> Agent:
        """Agent `agent_id` of `algorithm` (what one ROS agent node builds)."""
        return build_agent(self, algorithm, agent_id, stopping, backend, weights, scheme_settings)

    def controllers(self, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
                    weights: list[float] | None = None, scheme_settings: Any = None) -> list:
        """What runs the plant under `algorithm`: its agents, or the one controller of a scheme that does not run
        as agents (the centralized scheme's builder)."""
        return build_controllers(self, algorithm, stopping, backend, weights, scheme_settings)

    def centralized(self) -> CentralizedController:
        """The centralized MPC as a controller (the reference and the `centralized` scheme)."""
        return CentralizedController(self)

    def problem(self, weights: list[float] | None = None) -> Problem:
        """What a scheme's applicability check sees of this design (coordination/scheme.Problem)."""
        return Problem(self.system, self.horizon, collision=self.collision is not None,
                       control_horizons=self.control_horizons,
                       tube_mode=self.tubes is not None,
                       compatibility=None if self.tubes is None else self.tubes.compatibility,
                       constant_reference=self.reference.is_constant,
                       weights=None if weights is None else tuple(weights))

    def input_guard(self, agent: int) -> InputGuard:
        """What the agent's applied input must satisfy: the plant's own input set (untightened in tube mode)."""
        return InputGuard.of((self.applied_limits or self.system.subsystems)[agent])

    def for_algorithm(self, algorithm: str) -> "ControllerDesign":
        """The design `algorithm` solves: what the scheme needs is set here (ADMM: the separable terminal cost),
        so its centralized reference, built from the same design, solves the same problem."""
        if scheme_of(algorithm).separable_terminal_cost and not self.separable_terminal_cost:
            return replace(self, separable_terminal_cost=True)
        return self

    @cached_property
    def in_agreed_frame(self) -> "ControllerDesign":
        """The design the MPC agents use behind a centre consensus: reference relative to the agreed centre (built
        once per design, so its terminal set and step bound are too: a Monte Carlo builds the agents per run)."""
        return replace(self, reference=self.centre_consensus.reference, centre_consensus=None)

    @cached_property
    def without_tubes(self) -> "ControllerDesign":
        """The nominal design inside tube mode (built once per design, like in_agreed_frame)."""
        return replace(self, tubes=None)

    def separable_remainder(self) -> np.ndarray:
        """Q minus the coupling terms: what is left must be block diagonal (each agent's own weight)."""
        return self.Q - sum((t.embed(self.system) for t in self.coupling_terms), np.zeros_like(self.Q))

    @cached_property
    def lqr(self) -> tuple[np.ndarray, np.ndarray]:
        """(P, K) of the plant-wide DARE, solved once per design."""
        report(f"solving the plant-wide Riccati equation ({self.system.n_x} states)")
        A, B = self.system.full_matrices()
        return lqr_terminal(A, B, self.Q, self.R)

    def cost(self) -> QuadraticCost:
        """Stage weights and the terminal cost: the plant-wide DARE solution P, or its block-diagonal part
        (a sum of per-agent terms, which schemes that split the cost by agent such as ADMM need)."""
        P = self.lqr[0]
        if self.separable_terminal_cost:
            P = block_diag(*[P[self.system.state_slice(i), self.system.state_slice(i)]
                             for i in range(self.system.num_agents)])
        return QuadraticCost(self.Q, self.R, P, self.reference)

    def terminal_gain(self) -> np.ndarray:
        return self.lqr[1]

    @cached_property
    def terminal_set(self) -> PolytopicConstraint | None:
        """Maximal admissible set of x̃ = x − x̄ under u = ū + K x̃ with all state and input constraints."""
        if not self.use_terminal_set:
            return None
        report("computing the terminal set (maximal admissible set)")
        if not self.reference.is_constant:
            raise ValueError("a terminal set needs a constant reference (the set is built around one setpoint); "
                             "this design's reference changes over time")
        x_ref, u_ref = self.reference.at(0)
        A, B = self.system.full_matrices()
        K = self.terminal_gain()
        states, inputs = self.system.stacked_constraints()
        (Hx, hx), (Hu, hu) = (states.H, states.h), (inputs.H, inputs.h)
        rows, bounds = [Hx, Hu @ K], [hx - Hx @ x_ref, hu - Hu @ u_ref]
        for i, sub in enumerate(self.system.subsystems):   # mixed rows Mx x_i + Mu u_i ≤ h under u = ū + K x̃
            if sub.mixed_constraint is not None:
                mixed, xs, us = sub.mixed_constraint, self.system.state_slice(i), self.system.input_slice(i)
                Mx = np.zeros((mixed.h.size, self.system.n_x))
                Mx[:, xs] = mixed.Hx
                rows.append(Mx + mixed.Hu @ K[us])
                bounds.append(mixed.h - mixed.Hx @ x_ref[xs] - mixed.Hu @ u_ref[us])
        shifted = PolytopicConstraint(np.vstack(rows), np.concatenate(bounds))
        in_error = maximal_admissible_set(A + B @ K, shifted)
        return PolytopicConstraint(in_error.H, in_error.h + in_error.H @ x_ref)

    def condensed(self) -> CondensedProblem:
        """The plant-wide condensed problem (dense: for small plants, tests and the Jacobi step bound only)."""
        return CondensedProblem.build(self.system, self.horizon, self.cost(), self.terminal_set)

    @cached_property
    def parallel_step(self):
        """Structure bounds of cooperative Jacobi's step (plant-wide, computed once per design at set-up): from the
        dense condensed problem while it is small, else matrix-free (mpc/parallel_step_sparse.py)."""
        if dense_step_bound(self.system, self.horizon):
            report("computing Jacobi's step bound (plant-wide condensed problem)")
            return self.condensed().parallel_step
        report("computing Jacobi's step bound (matrix-free: the agents' Hessian blocks, Lanczos on the plant)")
        cost = self.shared_cost
        return matrix_free_bounds(self.system, self.horizon, cost.Q, cost.R, cost.P, self.terminal_set)

    @cached_property
    def shared_cost(self) -> QuadraticCost:
        """The cost every agent's block takes its weights from (built once per design)."""
        return self.cost()

    def block(self, agent: int, objective: str, constraints: str, backend: str) -> AgentBlockQP:
        """Agent `agent`'s block problem on its neighbourhood."""
        return AgentBlockQP(self.system, self.horizon, self.shared_cost, agent, objective, constraints, backend,
                            self.terminal_set, self.terminal_gain(), self.collision, self.control_horizons)

    # -- what a driver records through the design (the simulator never touches the agents' matrices) ----------
    @cached_property
    def prediction(self) -> PlantPrediction:
        """The plant-wide prediction the records use (sparse, built once per design)."""
        return PlantPrediction(self.system, self.horizon, self.shared_cost)

    def assemble(self, plans: dict) -> np.ndarray:
        """The plant-wide plan (time-major inputs) from every agent's Plan."""
        return self.prediction.assemble(plans)

    def predict(self, x: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Predicted states (N+1 × n_x) of plan U from x."""
        return self.prediction.predict(x, U)

    def plan_cost(self, x: np.ndarray, U: np.ndarray, step: int) -> float:
        """Plant-wide MPC cost of plan U from x at `step` (the reference window of that step)."""
        return self.prediction.cost_value(x, U, step)

    def trajectory_cost(self, states: np.ndarray, inputs: np.ndarray, step: int) -> float:
        return self.prediction.cost.trajectory(states, inputs, step)

    def stage_cost(self, x: np.ndarray, u: np.ndarray, step: int) -> float:
        return self.prediction.cost.stage(x, u, step)

    @cached_property
    def dual_step_size(self) -> float:
        """Price step 1/L of dual decomposition, from every sharing agent's local Hessian (computed once)."""
        maps, _ = shared_constraint_maps(self)
        hessians = {j: self.local_design(j).condensed().H for j in maps}
        return dual_step_size(hessians, maps)

    def local_design(self, agent: int) -> "ControllerDesign":
        """The agent's own subsystem alone, every coupling dropped (dual decomposition's local problems)."""
        system = self.system
        xs, us = system.state_slice(agent), system.input_slice(agent)
        local = CoupledLinearSystem((system.subsystems[agent],), ((system.A[agent][agent],),),
                                    ((system.B[agent][agent],),), system.sample_time)
        horizons = self.control_horizons
        if horizons is not None:
            horizons = replace(horizons, values=(horizons.values[agent],))
        return ControllerDesign(local, self.Q[xs, xs], self.R[us, us], self.horizon, self.reference.block(xs, us),
                                self.use_terminal_set, control_horizons=horizons)


def build_agents(design: ControllerDesign, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
                 weights: list[float] | None = None, scheme_settings: Any = None,
                 tubes: TubeFamily | None = None) -> list[Agent]:
    """Agents of `algorithm`, one per subsystem (in-process simulation); each builds its own neighbourhood
    problem. `tubes` (inner agents of tube mode) carries the plan-compatibility bounds."""
    check_algorithm(design, algorithm, weights)
    design = design.for_algorithm(algorithm)
    if design.centre_consensus is not None:   # outermost: the agents inside work in the agreed frame
        inner = build_agents(design.in_agreed_frame, algorithm, stopping, backend, weights, scheme_settings, tubes)
        return [wrap_in_consensus(design, agent) for agent in inner]
    if design.tubes is not None:
        inner = build_agents(design.without_tubes, algorithm, stopping, backend, weights, scheme_settings,
                             design.tubes)
        return [wrap_in_tube(design, agent) for agent in inner]
    M = design.system.num_agents
    return [build_agent(design, algorithm, i, stopping, backend, weights, scheme_settings, tubes)
            for i in counted(f"building the {algorithm} agents", range(M), M)]


def build_controllers(design, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
                      weights: list[float] | None = None, scheme_settings: Any = None) -> list:
    """The agents of `algorithm`, or (a scheme that does not run as agents) its one controller of the plant; for
    a ControllerDesign or a NonlinearDesign alike."""
    scheme = scheme_of(algorithm)
    if scheme.runs_as_agents:
        return design.agents(algorithm, stopping, backend, weights, scheme_settings)
    design = design.for_algorithm(algorithm)
    reason = scheme.refusal(design.problem(weights))
    if reason:
        raise ValueError(f"algorithm '{algorithm}' is not allowed here: {reason}")
    return [build_agent_of(design, algorithm, 0, stopping, backend, weights, scheme_settings)]


def wrap_in_tube(design: ControllerDesign, agent: Agent) -> Agent:
    i = agent.agent_id
    return TubeAgent(agent, design.tubes.gains[i], design.tubes.tubes[i], design.system.subsystems[i].state_constraint,
                     design.input_guard(i))


def wrap_in_consensus(design: ControllerDesign, agent: Agent) -> Agent:
    sub = design.system.subsystems[agent.agent_id]
    return CentreConsensusAgent(agent, design.centre_consensus, design.horizon, sub.n_u)


def check_algorithm(design, algorithm: str, weights: list[float] | None) -> None:
    """Raise ValueError naming what is wrong with the algorithm choice on this design (a ControllerDesign or a
    NonlinearDesign): no agents, a problem the scheme cannot honour, bad convex-combination weights."""
    scheme = scheme_of(algorithm)
    if not scheme.runs_as_agents:
        raise ValueError(f"algorithm '{algorithm}' has no agents (one controller runs the whole plant): allowed "
                         f"{', '.join(scheme_names(runs_as_agents=True))}")
    reason = scheme.refusal(design.problem(weights))
    if reason:
        raise ValueError(f"algorithm '{algorithm}' is not allowed here: {reason}")


def build_agent(design: ControllerDesign, algorithm: str, agent_id: int, stopping: StoppingRule,
                backend: str = "daqp", weights: list[float] | None = None, scheme_settings: Any = None,
                tubes: TubeFamily | None = None) -> Agent:
    """The agent `agent_id` of `algorithm` (what one ROS agent node builds for itself)."""
    check_algorithm(design, algorithm, weights)
    design = design.for_algorithm(algorithm)
    if design.centre_consensus is not None:
        inner = build_agent(design.in_agreed_frame, algorithm, agent_id, stopping, backend, weights,
                            scheme_settings, tubes)
        return wrap_in_consensus(design, inner)
    if design.tubes is not None:
        inner = build_agent(design.without_tubes, algorithm, agent_id, stopping, backend, weights,
                            scheme_settings, design.tubes)
        return wrap_in_tube(design, inner)
    return build_agent_of(design, algorithm, agent_id, stopping, backend, weights, scheme_settings, tubes)


def build_agent_of(design, algorithm: str, agent_id: int, stopping: StoppingRule, backend: str = "daqp",
                   weights: list[float] | None = None, scheme_settings: Any = None,
                   tubes: TubeFamily | None = None) -> Agent:
    """The scheme's builder for this design's kind (linear or nonlinear), given the scheme's settings (its defaults
    when None); the design is already set up for the scheme and checked."""
    scheme = scheme_of(algorithm)
    request = AgentRequest(design, agent_id, stopping, backend, weights, scheme.settings(scheme_settings), tubes)
    return scheme.build(request, design.nonlinear)
