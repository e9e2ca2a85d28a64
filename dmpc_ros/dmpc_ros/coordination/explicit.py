"""Explicit (multiparametric) cooperative DMPC: the agents' block QPs solved offline, affine laws online.

Brahmbhatt, Ganesh & Avraamidou, "Explicit Distributed MPC: Reducing Computation and Communication Load by
Exploiting Facet Properties" (arXiv:2604.02177, 2026); Saini et al. 2025 (IF-mpDiMPC).
- explicit_iterative (I-mpDiMPC): cooperative Jacobi, each iteration a point location and an affine law instead of
  a QP, with the convex combination (7) (the structural step or the given weights).
- explicit_iteration_free (IF-mpDiMPC) and explicit_facet (FACET-DiMPC): one exchange per step (the measured
  states, in plan 0). Every agent holds every agent's law and solves the stacked affine equations (13)
  (I − K_u(v)) U = K_x(v) x + f(v) for region combinations v, starting from each agent's current region (the one
  holding θ_i at the measured state and the shifted plan, else last step's) and changing as few agents' regions as
  it can, and accepts the first U whose parameters lie in every chosen region: the fixed point
  of the Jacobi iteration. Candidates are the last regions and their neighbours, those sharing a hyperplane (IF)
  or a facet (FACET, LP (14)); then all regions, those nearest to each θ_i at the warm start first (a full search,
  up to `max_combinations`); then the iterative
  scheme run by the agent itself on every agent's law (no extra messages). Each fallback is counted.
Outside the explored parameter set a law is replaced by the online block QP (counted as qp_fallbacks), so the
agents still apply what the QP DMPC they replace would.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Mapping

import numpy as np
from scipy.linalg import block_diag

from ..models.linear import CoupledLinearSystem
from ..mpc.agent_problem import AgentBlockQP
from ..mpc.explicit_law import LOCATION_TOLERANCE, ExplicitLaw, ExplicitSettings
from ..mpc.qp import QPSolution
from .base import Agent, StepStatistics, StoppingRule
from .block_agent import FEASIBILITY_TOLERANCE, BlockUpdateAgent
from .plan import Plan
from .safe_input import InputGuard


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
    """I-mpDiMPC: cooperative Jacobi on an ExplicitBlock (identical iterates to the QP agent's, without QPs).

    With `wegstein`, each input entry's weight adapts as in Wegstein (1958): slope s = Δg/Δx of the best response
    g over the last two iterates, U ← q U + (1 − q) g with q = s/(s − 1) clipped to [0, WEGSTEIN_MAX] (damping
    where the iteration oscillates, a full step where it contracts). The structural step's guarantees (feasible,
    monotone iterates) do not hold then; the fixed point is the same."""

    WEGSTEIN_MAX = 0.9

    def __init__(self, *args, wegstein: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wegstein = wegstein
        self._last: tuple[np.ndarray, np.ndarray] | None = None   # (previous iterate, its best response)

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        self.block.misses = 0
        self._last = None
        return super().begin_step(step, state, inbox)

    def _combine(self, best: np.ndarray, old: np.ndarray) -> np.ndarray:
        if not self.wegstein:
            return super()._combine(best, old)
        last, self._last = self._last, (old.copy(), best.copy())
        if last is None:
            return super()._combine(best, old)
        moved, answered = old - last[0], best - last[1]
        slope = np.divide(answered, moved, out=np.zeros_like(moved), where=np.abs(moved) > 1e-12)
        q = np.divide(slope, slope - 1.0, out=np.zeros_like(slope), where=np.abs(slope - 1.0) > 1e-12)
        q = np.clip(q, 0.0, self.WEGSTEIN_MAX)
        return q * old + (1.0 - q) * best

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        plan = super().iterate(inbox)
        self._stats.counters["qp_fallbacks"] = self.block.misses
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


def stacked_equations(laws: list[RegionLaw], combination: tuple[int, ...],
                      size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(I − K_u(v), K_x(v), f(v)) of equations (13) for the region combination v: (I − K_u) U = K_x x + f."""
    system = np.eye(size)
    Kx, offsets = np.zeros((size, laws[0].Kx.shape[2])), np.zeros(size)
    for law, region in zip(laws, combination):
        system[law.own] -= law.Ku[region]
        Kx[law.own], offsets[law.own] = law.Kx[region], law.offsets[region]
    return system, Kx, offsets


class FixedPointLaw:
    """The fixed point of one region combination as a law of the plant state: U = G x + g while S x ≤ s (the stacked
    equations (13) solved once for the combination; S x − s are the chosen regions' rows at θ_i(x, U))."""

    def __init__(self, laws: list[RegionLaw], combination: tuple[int, ...], size: int) -> None:
        system, Kx, offsets = stacked_equations(laws, combination, size)
        try:
            inverse = np.linalg.inv(system)
        except np.linalg.LinAlgError:
            self.G = None
            return
        self.G, self.g = inverse @ Kx, inverse @ offsets
        rows = [(law.Phi_u[law.starts[r]:law.starts[r + 1]], law.Phi_x[law.starts[r]:law.starts[r + 1]],
                 law.phi[law.starts[r]:law.starts[r + 1]]) for law, r in zip(laws, combination)]
        self.S = np.vstack([Phi_u @ self.G + Phi_x for Phi_u, Phi_x, _ in rows])
        self.s = np.concatenate([phi - Phi_u @ self.g for Phi_u, _, phi in rows])

    def at(self, x: np.ndarray) -> np.ndarray | None:
        """U at x if x lies in the combination's set, else None."""
        if self.G is None or np.any(self.S @ x > self.s + LOCATION_TOLERANCE):
            return None
        return self.G @ x + self.g


class IterationFreeAgent(Agent):
    """IF-mpDiMPC / FACET-DiMPC agent (module docstring): one exchange per step, the fixed point by region search."""

    CACHED_COMBINATIONS = 4096   # fixed-point laws kept (the combinations a run revisits are few)

    def __init__(self, agent_id: int, blocks: list[ExplicitBlock], neighbours: list[list[tuple[int, ...]]],
                 system: CoupledLinearSystem, terminal_gain: np.ndarray, weight: float, stopping: StoppingRule,
                 settings: ExplicitSettings, guard: InputGuard) -> None:
        """blocks[j] and neighbours[j] (per region: its neighbours) are agent j's; `system` is the prediction model
        (its reference must be constant: explicit_check)."""
        self.agent_id, self.blocks, self.neighbours = agent_id, blocks, neighbours
        A, B = system.full_matrices()
        self.K, self.weight, self.stopping, self.settings, self.guard = terminal_gain, weight, stopping, settings, guard
        self.horizon = N = blocks[agent_id].horizon
        self.n_x, self.n_u = A.shape[0], B.shape[1]
        self.laws = [RegionLaw(b, self.n_x, self.n_u) for b in blocks]
        self.state_slices = [system.state_slice(j) for j in range(system.num_agents)]
        self.input_slices = [system.input_slice(j) for j in range(system.num_agents)]
        members = set().union(*(set(b.network.members) for b in blocks))
        self.required_plans = frozenset(members - {agent_id})
        self.input_sets = [b.input_sets[i] for i, b in enumerate(blocks)]
        # predictions X = Φ x + Γ U (all agents, k = 0..N) and the constant reference, built once
        self._Phi, self._Gamma = np.zeros(((N + 1) * self.n_x, self.n_x)), np.zeros(((N + 1) * self.n_x, N * self.n_u))
        power = np.eye(self.n_x)
        for k in range(N + 1):
            self._Phi[k * self.n_x:(k + 1) * self.n_x] = power
            for j in range(k):
                self._Gamma[k * self.n_x:(k + 1) * self.n_x, j * self.n_u:(j + 1) * self.n_u] = \
                    np.linalg.matrix_power(A, k - 1 - j) @ B
            power = A @ power
        self._x_ref, self._u_ref = self._plant_reference()
        own_cost, own = blocks[agent_id].own_cost, self.state_slices[agent_id]
        self._cost_weight = block_diag(*([own_cost.Q] * N + [own_cost.P] + [own_cost.R] * N))   # on [X_i; U_i]
        self._cost_centre = np.concatenate([np.tile(self._x_ref[own], N + 1),
                                            np.tile(self._u_ref[self.input_slices[agent_id]], N)])
        self._fixed_points: dict[tuple[int, ...], FixedPointLaw] = {}
        self.regions: tuple[int, ...] | None = None     # the accepted combination of the last step
        self.U = np.zeros(N * self.n_u)                  # plant-wide plan (time-major)
        self.x = np.zeros(self.n_x)
        self.step, self.iteration = -1, 0
        self._stats = StepStatistics()
        self._candidate = np.zeros(N * self.n_u)
        self._states = np.zeros((N + 1, self.n_x))

    # -- contract -------------------------------------------------------------------------------------------------
    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        if self.step >= 0:
            self.U = self._shifted()
            self.x = self._states[1].copy()    # the others' states as predicted until their plans arrive
        else:
            self.U = np.tile(self._u_ref, self.horizon)
        self.x[self.state_slices[self.agent_id]] = state
        self.step, self.iteration, self.solved = step, 0, True
        self._stats = StepStatistics()
        self._candidate = self.U.copy()
        self._states = self._predict()
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
        started = time.perf_counter()
        U = self._search()
        if U is None:
            self._stats.count("iterative_fallbacks")
            U = self._iterate_locally()
        self._stats.solve_times.append(time.perf_counter() - started)
        if U is None:   # no law and no QP gave a plan: keep the candidate (the guard applies it safely)
            self.solved = False
            self._stats.fallbacks += 1
        else:
            self.U = U
        self._stats.iterations = self.iteration
        self._states = self._predict()
        self._plan = self._make_plan(final=True)
        return self._plan

    def planned_input(self) -> np.ndarray:
        return self.U[self.input_slices[self.agent_id]].copy()

    def candidate_input(self) -> np.ndarray:
        return self._candidate[self.input_slices[self.agent_id]].copy()

    def measured_state(self) -> np.ndarray:
        return self.x[self.state_slices[self.agent_id]].copy()

    def constraint_margin(self) -> float:
        law = self.laws[self.agent_id]
        return self.blocks[self.agent_id].block.slack(self.x[law.state_index], self.U[law.view_to_plant])

    # -- the region search ----------------------------------------------------------------------------------------
    def _search(self) -> np.ndarray | None:
        """The fixed point from each agent's current region (the one holding θ_i(x, warm start), else last step's)
        and its neighbours, else from every region; candidates are ranked by how little θ_i(x, warm start) violates
        them, and each phase may try `max_combinations` combinations."""
        budget = self.settings.max_combinations
        if self.regions is not None:   # the last combination still holds: the common case, no ranking needed
            self._stats.count("combinations")
            U = self._fixed_point(self.regions).at(self.x)
            if U is not None:
                return U
        ranks = self._region_ranks(self.U)
        located = [int(np.argmin(rank)) if np.min(rank) <= LOCATION_TOLERANCE else None for rank in ranks]
        centres = [c if c is not None else (None if self.regions is None else self.regions[i])
                   for i, c in enumerate(located)]
        if all(c is not None for c in centres):
            candidates = [[c] + sorted(self.neighbours[i][c], key=ranks[i].__getitem__) for i, c in enumerate(centres)]
            found, tried = self._first_fixed_point(candidates, budget)
            self._stats.count("combinations", tried)
            if found is not None:
                return found
        self._stats.count("full_searches")
        found, tried = self._first_fixed_point([list(np.argsort(rank, kind="stable")) for rank in ranks], budget)
        self._stats.count("combinations", tried)
        return found

    def _first_fixed_point(self, candidates: list[list[int]], budget: int) -> tuple[np.ndarray | None, int]:
        """The first combination (fewest agents away from candidates[i][0]) whose fixed point lies inside every
        chosen region, and how many combinations were tried."""
        M = len(self.laws)
        tried = 0
        for changes in range(M + 1):
            for moved in itertools.combinations(range(M), changes):
                options = [candidates[i][1:] if i in moved else candidates[i][:1] for i in range(M)]
                for combination in itertools.product(*options):
                    if tried >= budget:
                        return None, tried
                    tried += 1
                    U = self._cached_or_solved(combination)
                    if U is not None:
                        self.regions = combination
                        return U, tried
        return None, tried

    def _cached_or_solved(self, combination: tuple[int, ...]) -> np.ndarray | None:
        """The combination's fixed point at x if it lies in every chosen region: from its cached law, else by one
        solve of the stacked equations (13) (the law is built only once a combination is accepted)."""
        law = self._fixed_points.get(combination)
        if law is not None:
            return law.at(self.x)
        system, Kx, offsets = stacked_equations(self.laws, combination, self.U.size)
        try:
            U = np.linalg.solve(system, Kx @ self.x + offsets)
        except np.linalg.LinAlgError:
            return None
        for law, region in zip(self.laws, combination):
            rows = slice(law.starts[region], law.starts[region + 1])
            if np.any(law.Phi_u[rows] @ U + law.Phi_x[rows] @ self.x > law.phi[rows] + LOCATION_TOLERANCE):
                return None
        self._fixed_point(combination)   # accepted: its law serves the next steps
        return U

    def _fixed_point(self, combination: tuple[int, ...]) -> FixedPointLaw:
        law = self._fixed_points.get(combination)
        if law is None:
            if len(self._fixed_points) >= self.CACHED_COMBINATIONS:
                self._fixed_points.pop(next(iter(self._fixed_points)))
            law = self._fixed_points[combination] = FixedPointLaw(self.laws, combination, self.U.size)
        return law

    def _region_ranks(self, U: np.ndarray) -> list[np.ndarray]:
        """Per agent and region: the largest violation of the region's rows at θ_i(x, U) (≤ 0 inside)."""
        ranks = []
        for block, law in zip(self.blocks, self.laws):
            explicit = block.law
            theta = explicit.layout.theta(self.x[law.state_index], U[law.view_to_plant])
            ranks.append(np.maximum.reduceat(explicit.Phi @ theta - explicit.phi, explicit.starts))
        return ranks

    def _iterate_locally(self) -> np.ndarray | None:
        """I-mpDiMPC on every agent's law (online QPs outside the explored set), run by this agent alone; its final
        regions' fixed point is taken when it holds (exact where the iteration stopped at its tolerance)."""
        U = self._repaired(self.U.copy())
        for block in self.blocks:
            block.misses = 0
        for iteration in range(1, self.stopping.max_iterations + 1):
            new = U.copy()
            for block, law in zip(self.blocks, self.laws):
                solution = block.solve(self.x[law.state_index], U[law.view_to_plant], self.step)
                if not solution.usable:
                    self._stats.count_failure(solution.infeasible)
                    continue
                new[law.own] = self.weight * solution.z + (1.0 - self.weight) * U[law.own]
            done = all(self.stopping.converged(new[law.own], U[law.own]) for law in self.laws)
            self._stats.stop(self.stopping.at_limit(iteration), done,
                             max(self.stopping.change(new[law.own], U[law.own]) for law in self.laws))
            U = new
            if done:
                break
        misses = sum(block.misses for block in self.blocks)
        self._stats.count("qp_fallbacks", misses)
        self.regions = None
        if not misses and all(block.region is not None for block in self.blocks):
            combination = tuple(block.region for block in self.blocks)
            exact = self._fixed_point(combination).at(self.x)
            if exact is not None:   # the fixed point itself: no residual left
                self.regions, U = combination, exact
                self._stats.stop(False, True, 0.0)
        return U if np.all(np.isfinite(U)) else None

    def _repaired(self, U: np.ndarray) -> np.ndarray:
        """The warm start projected onto the own block's repair rows when it violates one (first step, after a
        disturbance): the cooperative iteration needs a feasible start (block_agent's feasibility recovery); with the
        whole plant in view every agent projects onto the same set and gets the same point."""
        law, block = self.laws[self.agent_id], self.blocks[self.agent_id].block
        x_view = self.x[law.state_index]
        if block.slack(x_view, U[law.view_to_plant], repair=True) >= -FEASIBILITY_TOLERANCE:
            return U
        projected, ok, _ = block.project(x_view, U[law.view_to_plant])
        self._stats.fallbacks += 1
        if not ok:
            self._stats.infeasible += 1
            return U
        U = U.copy()
        U[law.view_to_plant] = projected
        return U

    # -- predictions ----------------------------------------------------------------------------------------------
    def _predict(self) -> np.ndarray:
        return (self._Phi @ self.x + self._Gamma @ self.U).reshape(self.horizon + 1, self.n_x)

    def _shifted(self) -> np.ndarray:
        """The plant-wide plan shifted one step, tail u = ū + K(x̂_N − x̄) scaled into each input set."""
        tail = self._u_ref + self.K @ (self._states[-1] - self._x_ref)
        for columns, input_set in zip(self.input_slices, self.input_sets):
            tail[columns] = input_set.scaled_into(tail[columns])
        return np.concatenate([self.U[self.n_u:], tail])

    def _plant_reference(self) -> tuple[np.ndarray, np.ndarray]:
        x_ref, u_ref = np.zeros(self.n_x), np.zeros(self.n_u)
        for law, block in zip(self.laws, self.blocks):
            xs, us = block.reference.at(0)
            x_ref[law.state_index], u_ref[block.network.input_index] = xs, us
        return x_ref, u_ref

    def _make_plan(self, final: bool) -> Plan:
        own = self.state_slices[self.agent_id]
        states = self._states[:, own].copy()
        inputs = self.U.reshape(self.horizon, -1)[:, self.input_slices[self.agent_id]].copy()
        error = np.concatenate([states.ravel(), inputs.ravel()]) - self._cost_centre
        cost = float(error @ self._cost_weight @ error)   # own_cost.trajectory for the constant reference, at once
        return Plan(agent=self.agent_id, step=self.step, iteration=self.iteration, states=states, inputs=inputs,
                    cost=cost, feasible=self.solved, converged=final, final=final)
