"""Build the agents of a coordination algorithm from one controller design (model, cost, horizon)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
from scipy.linalg import block_diag

from ..models.linear import CoupledLinearSystem, PolytopicConstraint, Subsystem
from ..mpc.agent_problem import AgentBlockQP
from ..models.linear import CouplingTerm
from ..mpc.explicit_law import ExplicitLaws
from ..mpc.condensed import CondensedProblem, PlantPrediction, QuadraticCost, objective_couplings
from ..mpc.reference import ReferenceTrajectory
from ..mpc.terminal import lqr_terminal, maximal_admissible_set
from ..mpc.tubes import TubeFamily
from ..progress import counted, report
from .admm import AdmmAgent, AdmmSettings
from .base import Agent, StoppingRule
from .centralized import CentralizedController
from .block_agent import BlockUpdateAgent
from .collision import CollisionAvoidance
from .consensus import CentreConsensus, CentreConsensusAgent
from .decentralized import DecentralizedAgent
from .explicit import explicit_check, explicit_iterative_agent, iteration_free_agent
from .safe_input import InputGuard
from .scheme import AgentRequest, Scheme, jacobi_weight
from .tube import TubeAgent
from .dual_decomposition import DualDecompositionAgent, check_decoupled, dual_step_size, shared_constraint_maps



def scheme_conflict(system: CoupledLinearSystem, algorithm: str) -> str | None:
    """Why `algorithm` cannot honour this problem (None if it can)."""
    if system.shared_input_constraint is not None and not SCHEMES[algorithm].shared_constraint:
        honouring = ", ".join(name for name, traits in SCHEMES.items() if traits.shared_constraint)
        return (f"the model has a constraint shared by all agents' inputs ({system.shared_input_constraint.h.size} "
                f"rows on the stacked u), which {algorithm} ignores, so its agents would break it; use one of "
                f"{honouring}")
    return None


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

    def agents(self, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
               weights: list[float] | None = None, admm: AdmmSettings = AdmmSettings()) -> list[Agent]:
        """Every agent of `algorithm` (the simulator's; a nonlinear design offers the same)."""
        return build_agents(self, algorithm, stopping, backend, weights, admm)

    def agent(self, algorithm: str, agent_id: int, stopping: StoppingRule, backend: str = "daqp",
              weights: list[float] | None = None, admm: AdmmSettings = AdmmSettings()) -> Agent:
        """Agent `agent_id` of `algorithm` (what one ROS agent node builds)."""
        return build_agent(self, algorithm, agent_id, stopping, backend, weights, admm)

    def centralized(self) -> CentralizedController:
        """The centralized MPC as a controller (the reference and the `centralized` scheme)."""
        return CentralizedController(self)

    def input_guard(self, agent: int) -> InputGuard:
        """What the agent's applied input must satisfy: the plant's own input set (untightened in tube mode)."""
        return InputGuard.of((self.applied_limits or self.system.subsystems)[agent])

    def for_algorithm(self, algorithm: str) -> "ControllerDesign":
        """The design `algorithm` solves: what the scheme needs is set here (ADMM: the separable terminal cost),
        so its centralized reference, built from the same design, solves the same problem."""
        if SCHEMES[algorithm].separable_terminal_cost and not self.separable_terminal_cost:
            return replace(self, separable_terminal_cost=True)
        return self

    def in_agreed_frame(self) -> "ControllerDesign":
        """The design the MPC agents use behind a centre consensus: reference relative to the agreed centre."""
        return replace(self, reference=self.centre_consensus.reference, centre_consensus=None)

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
        """Structure bounds of cooperative Jacobi's step (plant-wide, computed once per design at set-up)."""
        report("computing Jacobi's step bound (plant-wide condensed problem)")
        return self.condensed().parallel_step

    @cached_property
    def shared_cost(self) -> QuadraticCost:
        """The cost every agent's block takes its weights from (built once per design)."""
        return self.cost()

    def block(self, agent: int, objective: str, constraints: str, backend: str) -> AgentBlockQP:
        """Agent `agent`'s block problem on its neighbourhood."""
        return AgentBlockQP(self.system, self.horizon, self.shared_cost, agent, objective, constraints, backend,
                            self.terminal_set, self.terminal_gain(), self.collision)

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
        return ControllerDesign(local, self.Q[xs, xs], self.R[us, us], self.horizon, self.reference.block(xs, us),
                                self.use_terminal_set)


def build_agents(design: ControllerDesign, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
                 weights: list[float] | None = None, admm: AdmmSettings = AdmmSettings(),
                 tubes: TubeFamily | None = None) -> list[Agent]:
    """Agents of `algorithm`, one per subsystem (in-process simulation); each builds its own neighbourhood
    problem. `tubes` (inner agents of tube mode) carries the plan-compatibility bounds."""
    check_algorithm(design, algorithm, weights)
    design = design.for_algorithm(algorithm)
    if design.centre_consensus is not None:   # outermost: the agents inside work in the agreed frame
        inner = build_agents(design.in_agreed_frame(), algorithm, stopping, backend, weights, admm, tubes)
        return [wrap_in_consensus(design, agent) for agent in inner]
    if design.tubes is not None:
        inner = build_agents(replace(design, tubes=None), algorithm, stopping, backend, weights, admm, design.tubes)
        return [wrap_in_tube(design, agent) for agent in inner]
    M = design.system.num_agents
    return [build_agent(design, algorithm, i, stopping, backend, weights, admm, tubes)
            for i in counted(f"building the {algorithm} agents", range(M), M)]


def wrap_in_tube(design: ControllerDesign, agent: Agent) -> Agent:
    i = agent.agent_id
    return TubeAgent(agent, design.tubes.gains[i], design.tubes.tubes[i], design.system.subsystems[i].state_constraint,
                     design.input_guard(i))


def wrap_in_consensus(design: ControllerDesign, agent: Agent) -> Agent:
    sub = design.system.subsystems[agent.agent_id]
    return CentreConsensusAgent(agent, design.centre_consensus, design.horizon, sub.n_u)


def check_algorithm(design: ControllerDesign, algorithm: str, weights: list[float] | None) -> None:
    """Raise ValueError naming what is wrong with the algorithm choice or its convex-combination weights."""
    M = design.system.num_agents
    distributed = tuple(a for a, scheme in SCHEMES.items() if scheme.build is not None)
    if SCHEMES[algorithm].nonlinear_only if algorithm in SCHEMES else False:
        raise ValueError(f"algorithm '{algorithm}' is not allowed here: it needs a nonlinear model (model.type "
                         f"nonlinear)")
    if algorithm not in distributed:
        raise ValueError(f"algorithm '{algorithm}' has no agents: allowed {', '.join(distributed)}")
    conflict = scheme_conflict(design.system, algorithm)
    if conflict:
        raise ValueError(f"algorithm '{algorithm}' is not allowed here: {conflict}")
    if weights is not None and (len(weights) != M or any(w <= 0 for w in weights)):
        raise ValueError(f"weights must be {M} positive numbers, got {weights}")
    check = SCHEMES[algorithm].check
    reason = check(design, weights) if check is not None else None
    if reason:
        raise ValueError(f"algorithm '{algorithm}' is not allowed here: {reason}")


def build_agent(design: ControllerDesign, algorithm: str, agent_id: int, stopping: StoppingRule,
                backend: str = "daqp", weights: list[float] | None = None, admm: AdmmSettings = AdmmSettings(),
                tubes: TubeFamily | None = None) -> Agent:
    """The agent `agent_id` of `algorithm` (what one ROS agent node builds for itself)."""
    check_algorithm(design, algorithm, weights)
    design = design.for_algorithm(algorithm)
    if design.centre_consensus is not None:
        inner = build_agent(design.in_agreed_frame(), algorithm, agent_id, stopping, backend, weights, admm, tubes)
        return wrap_in_consensus(design, inner)
    if design.tubes is not None:
        inner = build_agent(replace(design, tubes=None), algorithm, agent_id, stopping, backend, weights, admm,
                            design.tubes)
        return wrap_in_tube(design, inner)
    return SCHEMES[algorithm].build(AgentRequest(design, agent_id, stopping, backend, weights, admm, tubes))


# -- the built-in schemes -----------------------------------------------------------------------------------------
def block_update_agent(request: AgentRequest, objective: str, constraints: str, weight: float,
                       sequential: bool) -> BlockUpdateAgent:
    """A block-update agent (Jacobi, Gauss-Seidel, non-cooperative) on its neighbourhood's block problem."""
    design, agent_id, tubes = request.design, request.agent_id, request.tubes
    order = list(range(design.system.num_agents)) if sequential else None
    block = design.block(agent_id, objective, constraints, request.backend)
    required = None if design.collision is None else \
        block.interacting_agents() | design.collision.partners(agent_id)
    return BlockUpdateAgent(agent_id, block, design.terminal_gain(), weight, request.stopping, order=order,
                            required_plans=required, collision=design.collision,
                            compatibility=None if tubes is None else tubes.compatibility)


def jacobi_check(design: ControllerDesign, weights: list[float] | None) -> str | None:
    if weights is not None and abs(sum(weights) - 1.0) > 1e-9:
        return f"cooperative Jacobi weights must sum to 1 (convex combination), got sum {sum(weights):.6g}"
    return None


def decentralized_agent(request: AgentRequest) -> Agent:
    block = request.design.block(request.agent_id, "own", "own", request.backend)
    return DecentralizedAgent(request.agent_id, block, request.design.terminal_gain(), 1.0,
                              StoppingRule(1, request.stopping.tolerance), required_plans=set())


def decentralized_check(design: ControllerDesign, weights: list[float] | None) -> str | None:
    if design.collision is not None:
        return ("it cannot keep robots apart: the separating half-planes need the neighbours' plans; allowed here: "
                "noncooperative (own cost, plans exchanged) or a cooperative scheme")
    return None


def admm_agent(request: AgentRequest) -> Agent:
    design = request.design
    uncovered = objective_couplings(design.system, design.separable_remainder())
    if uncovered:
        raise ValueError(f"algorithm 'admm' needs every objective coupling given as a positive semidefinite pair "
                         f"term (ControllerDesign.coupling_terms); the cost couples agents "
                         f"{', '.join(f'{i}–{j}' for i, j in uncovered[:4])} without one")
    return AdmmAgent(request.agent_id, design, request.stopping, request.admm, request.backend)


def dual_decomposition_agent(request: AgentRequest) -> Agent:
    design = request.design
    maps, bound = shared_constraint_maps(design)
    check_decoupled(design)
    local = design.local_design(request.agent_id)
    block = local.block(0, "plant", "affected", request.backend)
    return DualDecompositionAgent(request.agent_id, block, local.terminal_gain(), request.stopping, maps, bound,
                                  design.dual_step_size)


SCHEMES: dict[str, Scheme] = {
    "centralized": Scheme(None, shared_constraint=True),
    "decentralized": Scheme(decentralized_agent, check=decentralized_check),
    "noncooperative": Scheme(lambda r: block_update_agent(r, "own", "own", 1.0, False)),
    "jacobi": Scheme(lambda r: block_update_agent(r, "plant", "affected", jacobi_weight(r), False),
                     shared_constraint=True, check=jacobi_check),
    "gauss_seidel": Scheme(lambda r: block_update_agent(r, "plant", "affected", 1.0, True), shared_constraint=True),
    "admm": Scheme(admm_agent, separable_terminal_cost=True),
    "dual_decomposition": Scheme(dual_decomposition_agent, shared_constraint=True),
    "explicit_iterative": Scheme(explicit_iterative_agent, shared_constraint=True, check=explicit_check,
                                 offline=True),
    "explicit_iteration_free": Scheme(lambda r: iteration_free_agent(r, "hyperplane"), shared_constraint=True,
                                      check=explicit_check, offline=True),
    "explicit_facet": Scheme(lambda r: iteration_free_agent(r, "facet"), shared_constraint=True,
                             check=explicit_check, offline=True),
    "sensitivity": Scheme(None, nonlinear_only=True),   # coordination/nonlinear.py builds its agents
}
ALGORITHMS = tuple(SCHEMES)
