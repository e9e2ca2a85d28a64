"""Explicit (multiparametric) cooperative DMPC: the agents' block QPs solved offline, affine laws online.

Brahmbhatt, Ganesh & Avraamidou, "Explicit Distributed MPC: Reducing Computation and Communication Load by
Exploiting Facet Properties" (arXiv:2604.02177, 2026); Saini et al. 2025 (IF-mpDiMPC).
- explicit_iterative (I-mpDiMPC): cooperative Jacobi, each iteration a point location and an affine law instead of
  a QP, with the convex combination (7) (the structural step or the given weights).
- explicit_iteration_free (IF-mpDiMPC) and explicit_facet (FACET-DiMPC): one exchange per step (the measured
  states, in plan 0). Every agent holds every agent's law and solves the stacked affine equations (13)
  (I − K_u(v)) U = K_x(v) x + f(v) for region combinations v, starting from the last step's regions and changing as
  few agents' regions as it can, and accepts the first U whose parameters lie in every chosen region: the fixed point
  of the Jacobi iteration. Candidates are the last regions and their neighbours, those sharing a hyperplane (IF)
  or a facet (FACET, LP (14)); then all regions (a full search, up to `max_combinations`); then the iterative
  scheme run by the agent itself on every agent's law (no extra messages). Each fallback is counted.
Outside the explored parameter set a law is replaced by the online block QP (counted as qp_fallbacks), so the
agents still apply what the QP DMPC they replace would.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Mapping

import numpy as np

from ..models.linear import CoupledLinearSystem
from ..mpc.agent_problem import AgentBlockQP
from ..mpc.explicit_law import LOCATION_TOLERANCE, ExplicitLaw, ExplicitSettings
from ..mpc.qp import QPSolution
from .base import Agent, StepStatistics, StoppingRule
from .block_agent import BlockUpdateAgent
from .plan import Plan
from .safe_input import InputGuard
from .scheme import AgentRequest, jacobi_weight


class ExplicitBlock:
    """A block QP whose solve() evaluates the explicit law (point location, affine law); outside the explored set
    it solves the QP online and counts a miss. Everything else is the block's."""

    def __init__(self, block: AgentBlockQP, law: ExplicitLaw, point_location: str) -> None:
        self.block, self.law, self.point_location = block, law, point_location
        self.region: int | None = None   # the last region found (where the walk starts)
        self.misses = 0

    def __getattr__(self, name: str):
        return getattr(self.block, name)

    def solve(self, x0: np.ndarray, U: np.ndarray, step: int = 0, warm_start: np.ndarray | None = None,
              extra_linear: np.ndarray | None = None) -> QPSolution:
        started = time.perf_counter()
        theta = self.law.layout.theta(x0, U)
        region = self.law.locate(theta, self.point_location, self.region)
        if region is None:
            self.misses += 1
            return self.block.solve(x0, U, step, warm_start, extra_linear)
        self.region = region
        return QPSolution(self.law.evaluate(region, theta), True, "explicit", time.perf_counter() - started, 0)


class ExplicitIterativeAgent(BlockUpdateAgent):
    """I-mpDiMPC: cooperative Jacobi on an ExplicitBlock (identical iterates to the QP agent's, without QPs)."""

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        self.block.misses = 0
        return super().begin_step(step, state, inbox)

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        plan = super().iterate(inbox)
        self._stats.qp_fallbacks = self.block.misses
        return plan


class RegionLaw:
    """One agent's law on the plant-wide stacked inputs: per region U_i = K_x x + K_u U + f on Φ_x x + Φ_u U ≤ φ
    (U time-major over all agents' inputs; K_u has no own columns)."""

    def __init__(self, block: ExplicitBlock, n_x: int, n_u: int) -> None:
        net, N = block.network, block.horizon
        law = block.law
        layout = law.layout
        view_to_plant = (np.arange(N)[:, None] * n_u + net.input_index[None, :]).ravel()   # flat view → plant
        self.own = view_to_plant[block.own_columns]
        self.state_index, self.view_to_plant = net.state_index, view_to_plant
        u_columns = view_to_plant[layout.other_columns]
        p_x = net.n_x
        self.Kx = np.zeros((law.num_regions, block.own_columns.size, n_x))
        self.Kx[:, :, net.state_index] = law.gains[:, :, :p_x]
        self.Ku = np.zeros((law.num_regions, block.own_columns.size, N * n_u))
        self.Ku[:, :, u_columns] = law.gains[:, :, p_x:]
        self.offsets = law.offsets
        self.Phi_x = np.zeros((law.Phi.shape[0], n_x))
        self.Phi_x[:, net.state_index] = law.Phi[:, :p_x]
        self.Phi_u = np.zeros((law.Phi.shape[0], N * n_u))
        self.Phi_u[:, u_columns] = law.Phi[:, p_x:]
        self.phi, self.starts = law.phi, np.r_[law.starts, law.phi.size]
        self.num_regions = law.num_regions


class IterationFreeAgent(Agent):
    """IF-mpDiMPC / FACET-DiMPC agent (module docstring): one exchange per step, the fixed point by region search."""

    def __init__(self, agent_id: int, blocks: list[ExplicitBlock], neighbours: list[list[tuple[int, ...]]],
                 system: CoupledLinearSystem, terminal_gain: np.ndarray, weight: float, stopping: StoppingRule,
                 settings: ExplicitSettings, guard: InputGuard) -> None:
        """blocks[j] and neighbours[j] (per region: its neighbours) are agent j's; `system` is the prediction model."""
        self.agent_id, self.blocks, self.neighbours = agent_id, blocks, neighbours
        self.A, self.B = system.full_matrices()
        self.K, self.weight, self.stopping, self.settings, self.guard = terminal_gain, weight, stopping, settings, guard
        self.horizon = N = blocks[agent_id].horizon
        self.n_x, self.n_u = self.A.shape[0], self.B.shape[1]
        self.laws = [RegionLaw(b, self.n_x, self.n_u) for b in blocks]
        self.state_slices = [system.state_slice(j) for j in range(system.num_agents)]
        self.input_slices = [system.input_slice(j) for j in range(system.num_agents)]
        members = set().union(*(set(b.network.members) for b in blocks))
        self.required_plans = frozenset(members - {agent_id})
        self.reference = blocks[agent_id].reference
        self.input_sets = [b.input_sets[i] for i, b in enumerate(blocks)]
        self.regions: tuple[int, ...] | None = None     # the accepted combination of the last step
        self.U = np.zeros(N * self.n_u)                  # plant-wide plan (time-major)
        self.x = np.zeros(self.n_x)
        self.step, self.iteration = -1, 0
        self._stats = StepStatistics()
        self._candidate = np.zeros(N * self.n_u)
        self._states = np.zeros((N + 1, self.n_x))
        self._heard: dict[int, Plan] = {}

    # -- contract -------------------------------------------------------------------------------------------------
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        self.U = self._shifted() if self.step >= 0 else self._reference_inputs(step)
        self.x = self._predicted_x(step, state)
        self.step, self.iteration, self.solved = step, 0, True
        self._stats = StepStatistics()
        self._candidate = self.U.copy()
        self._states = self._predict(self.x, self.U)
        self._plan = self._make_plan(final=False)
        return self._plan

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        self.iteration += 1
        for j in sorted(self.required_plans):
            plan = inbox.get(j)
            if plan is None or plan.step != self.step or not plan.finite or \
                    plan.states.shape[1] != self.state_slices[j].stop - self.state_slices[j].start:
                self._stats.messages_missing += 1
                continue
            self.x[self.state_slices[j]] = plan.states[0]
            self._heard[j] = plan
        started = time.perf_counter()
        U = self._search()
        if U is None:
            self._stats.iterative_fallbacks += 1
            U = self._iterate_locally()
        self._stats.solve_times.append(time.perf_counter() - started)
        if U is None:   # no law and no QP gave a plan: keep the candidate (the guard applies it safely)
            self.solved = False
            self._stats.fallbacks += 1
        else:
            self.U = U
        self._stats.iterations = self.iteration
        self._states = self._predict(self.x, self.U)
        self._plan = self._make_plan(final=True)
        return self._plan

    def planned_input(self) -> np.ndarray:
        return self.U[self.input_slices[self.agent_id]].copy()

    def candidate_input(self) -> np.ndarray:
        return self._candidate[self.input_slices[self.agent_id]].copy()

    def measured_state(self) -> np.ndarray:
        return self.x[self.state_slices[self.agent_id]].copy()

    def constraint_margin(self) -> float:
        own = self.blocks[self.agent_id]
        law = self.laws[self.agent_id]
        return own.block.slack(self.x[law.state_index], self.U[law.view_to_plant])

    # -- the region search ----------------------------------------------------------------------------------------
    def _search(self) -> np.ndarray | None:
        """The fixed point from the last regions and their neighbours, else from every region (capped)."""
        x, M = self.x, len(self.laws)
        constant = [law.Kx @ x + law.offsets for law in self.laws]              # regions × n_z,i
        slack = [law.phi - law.Phi_x @ x for law in self.laws]
        budget = self.settings.max_combinations
        if self.regions is not None:
            candidates = [[r] + list(self.neighbours[i][r]) for i, r in enumerate(self.regions)]
            found, tried = self._first_fixed_point(candidates, constant, slack, budget)
            self._stats.combinations += tried
            if found is not None:
                return found
            budget -= tried
        self._stats.full_searches += 1
        start = self._located_regions(self.U)
        candidates = [[s] + [r for r in range(self.laws[i].num_regions) if r != s] for i, s in enumerate(start)]
        found, tried = self._first_fixed_point(candidates, constant, slack, max(budget, M))
        self._stats.combinations += tried
        return found

    def _first_fixed_point(self, candidates: list[list[int]], constant: list[np.ndarray], slack: list[np.ndarray],
                           budget: int) -> tuple[np.ndarray | None, int]:
        """The first combination (fewest agents away from candidates[i][0]) whose stacked equations have a solution
        inside every chosen region, and how many combinations were tried."""
        M, size = len(self.laws), self.horizon * self.n_u
        tried = 0
        for changes in range(M + 1):
            for moved in itertools.combinations(range(M), changes):
                options = [candidates[i][1:] if i in moved else candidates[i][:1] for i in range(M)]
                for combination in itertools.product(*options):
                    if tried >= budget:
                        return None, tried
                    tried += 1
                    system, rhs = np.eye(size), np.zeros(size)
                    for i, r in enumerate(combination):
                        law = self.laws[i]
                        system[law.own] -= law.Ku[r]
                        rhs[law.own] = constant[i][r]
                    try:
                        U = np.linalg.solve(system, rhs)
                    except np.linalg.LinAlgError:
                        continue
                    if all(self._inside(i, r, U, slack[i]) for i, r in enumerate(combination)):
                        self.regions = tuple(combination)
                        return U, tried
        return None, tried

    def _inside(self, agent: int, region: int, U: np.ndarray, slack: np.ndarray) -> bool:
        law = self.laws[agent]
        rows = slice(law.starts[region], law.starts[region + 1])
        return bool(np.all(law.Phi_u[rows] @ U <= slack[rows] + LOCATION_TOLERANCE))

    def _located_regions(self, U: np.ndarray) -> list[int]:
        """Each agent's region at θ_i of (x, U) (region 0 where θ_i lies outside every region)."""
        located = []
        for block, law in zip(self.blocks, self.laws):
            region = block.law.scan(block.law.layout.theta(self.x[law.state_index], U[law.view_to_plant]))
            located.append(0 if region is None else region)
        return located

    def _iterate_locally(self) -> np.ndarray | None:
        """I-mpDiMPC on every agent's law (online QPs outside the explored set), run by this agent alone."""
        U = self.U.copy()
        for block in self.blocks:
            block.misses = 0
        for _ in range(self.stopping.max_iterations):
            new = U.copy()
            for i, (block, law) in enumerate(zip(self.blocks, self.laws)):
                solution = block.solve(self.x[law.state_index], U[law.view_to_plant], self.step)
                if not solution.usable:
                    self._stats.count_failure(solution.infeasible)
                    continue
                new[law.own] = self.weight * solution.z + (1.0 - self.weight) * U[law.own]
            done = all(self.stopping.converged(new[law.own], U[law.own]) for law in self.laws)
            U = new
            if done:
                break
        self._stats.qp_fallbacks += sum(block.misses for block in self.blocks)
        self.regions = tuple(block.region for block in self.blocks) \
            if all(block.region is not None for block in self.blocks) else None
        return U if np.all(np.isfinite(U)) else None

    # -- predictions ----------------------------------------------------------------------------------------------
    def _reference_inputs(self, step: int) -> np.ndarray:
        """Every agent's reference inputs over the horizon (the first view of the QP agents too)."""
        U = np.zeros(self.horizon * self.n_u)
        for law, block in zip(self.laws, self.blocks):
            U[law.view_to_plant] = block.reference.window(step, self.horizon)[1].ravel()
        return U

    def _predict(self, x: np.ndarray, U: np.ndarray) -> np.ndarray:
        states = np.empty((self.horizon + 1, self.n_x))
        states[0] = x
        for t, u in enumerate(U.reshape(self.horizon, -1)):
            states[t + 1] = self.A @ states[t] + self.B @ u
        return states

    def _predicted_x(self, step: int, state: np.ndarray) -> np.ndarray:
        """The plant state as this agent knows it before the exchange: its measurement, the others predicted."""
        x = self._states[1].copy() if self.step >= 0 else np.zeros(self.n_x)
        x[self.state_slices[self.agent_id]] = state
        return x

    def _shifted(self) -> np.ndarray:
        """The plant-wide plan shifted one step, tail u = ū + K(x̂_N − x̄) scaled into each input set."""
        x_ref, u_ref = self._plant_reference(self.step + self.horizon)
        tail = u_ref + self.K @ (self._states[-1] - x_ref)
        for columns, input_set in zip(self.input_slices, self.input_sets):
            tail[columns] = input_set.scaled_into(tail[columns])
        return np.concatenate([self.U[self.n_u:], tail])

    def _plant_reference(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        x_ref, u_ref = np.zeros(self.n_x), np.zeros(self.n_u)
        for law, block in zip(self.laws, self.blocks):
            xs, us = block.reference.at(step)
            x_ref[law.state_index], u_ref[block.network.input_index] = xs, us
        return x_ref, u_ref

    def _make_plan(self, final: bool) -> Plan:
        own = self.state_slices[self.agent_id]
        states = self._states[:, own].copy()
        inputs = self.U[self.laws[self.agent_id].own].reshape(self.horizon, -1).copy()
        cost = self.blocks[self.agent_id].own_cost.trajectory(states, inputs, self.step)
        return Plan(agent=self.agent_id, step=self.step, iteration=self.iteration, states=states, inputs=inputs,
                    cost=cost, feasible=self.solved, converged=final, final=final)


# -- builders (registered in factory.SCHEMES) ---------------------------------------------------------------------
def explicit_block(request: AgentRequest, agent: int) -> ExplicitBlock:
    design = request.design
    block = design.block(agent, "plant", "affected", request.backend)
    return ExplicitBlock(block, design.explicit.laws[agent], design.explicit.settings.point_location)


def explicit_iterative_agent(request: AgentRequest) -> Agent:
    i = request.agent_id
    return ExplicitIterativeAgent(i, explicit_block(request, i), request.design.terminal_gain(),
                                  jacobi_weight(request), request.stopping)


def iteration_free_agent(request: AgentRequest, neighbours: str) -> Agent:
    """IF-mpDiMPC (neighbours = "hyperplane") or FACET-DiMPC (neighbours = "facet")."""
    design, M = request.design, request.design.system.num_agents
    blocks = [explicit_block(request, j) for j in range(M)]
    adjacency = [getattr(law.solution, f"{neighbours}_neighbours") for law in design.explicit.laws]
    return IterationFreeAgent(request.agent_id, blocks, adjacency, design.system, design.terminal_gain(),
                              jacobi_weight(request), request.stopping, design.explicit.settings,
                              design.input_guard(request.agent_id))


def explicit_check(design, weights: list[float] | None) -> str | None:
    """Why the explicit schemes cannot run this design (None if they can)."""
    if design.collision is not None:
        return "its laws are computed offline, and the separating half-planes change every step"
    if not design.reference.is_constant:
        return "its laws are computed offline for one setpoint, and this design's reference changes over time"
    if design.explicit is None:
        return "no explicit solution is loaded: build it with `dmpc explicit build <scenario>`"
    if len(design.explicit.laws) != design.system.num_agents:
        return f"{len(design.explicit.laws)} explicit laws were loaded for {design.system.num_agents} agents"
    return None
