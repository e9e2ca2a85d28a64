"""Dual decomposition for agents coupled only through a shared constraint (Σ_i G_i u_i(k) ≤ h at every k).

Each agent solves its own MPC (own model, cost and constraints) plus the priced share of the coupling
constraint, λ'(G_i U_i); prices rise where the plans together overdraw the budget:
    λ ← max(0, λ + η (Σ_j G_j U_j − h̄)),
the projected gradient step on the dual function. Every agent receives every sharing agent's inputs and
computes the same prices, so no coordinator is needed. With strictly convex local costs the dual function
is smooth with gradient Lipschitz constant L ≤ λ_max(Σ_j G_j H_j⁻¹ G_j'); the step η = 1/L makes the prices
converge and the plans approach the centralized optimum. Primal feasibility of the shared constraint holds
only in the limit; the violation of the assembled plan is the agent's primal residual.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..mpc.agent_problem import AgentBlockQP
from ..mpc.condensed import objective_couplings
from .base import StoppingRule
from .block_agent import BlockUpdateAgent
from .plan import Plan


def shared_constraint_maps(design) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """G_j (N r × N m_j, time-major) for every agent touching the shared rows, and the stacked bound h̄."""
    system, N = design.system, design.horizon
    shared = system.shared_input_constraint
    if shared is None:
        raise ValueError("dual decomposition needs a shared constraint (e.g. model.masses.net_force_limit)")
    maps = {}
    for j in range(system.num_agents):
        block = shared.H[:, system.input_slice(j)]
        if np.any(block):
            maps[j] = np.kron(np.eye(N), block)
    return maps, np.tile(shared.h, N)


def check_decoupled(design) -> None:
    """Dual decomposition on the shared constraint alone is exact only for dynamically decoupled agents."""
    system = design.system
    for i in range(system.num_agents):
        if system.dynamic_neighbours(i):
            raise ValueError(f"dual decomposition needs dynamically decoupled agents: agent {i} is coupled to "
                             f"{list(system.dynamic_neighbours(i))} (use jacobi, gauss_seidel or admm)")
    if objective_couplings(system, design.Q):
        raise ValueError("dual decomposition needs a cost without coupling terms between agents")


def dual_step_size(local_hessians: dict[int, np.ndarray], maps: dict[int, np.ndarray]) -> float:
    """η = 1/L with L = λ_max(Σ_j G_j H_j⁻¹ G_j'), the dual gradient's Lipschitz constant."""
    curvature = sum(G @ np.linalg.solve(local_hessians[j], G.T) for j, G in maps.items())
    return 1.0 / float(np.max(np.linalg.eigvalsh(curvature)))


class DualDecompositionAgent(BlockUpdateAgent):
    def __init__(self, agent_id: int, block: AgentBlockQP, terminal_gain: np.ndarray, stopping: StoppingRule,
                 maps: dict[int, np.ndarray], bound: np.ndarray, step_size: float) -> None:
        """`block` is built on the agent's own subsystem alone (ControllerDesign.local_design)."""
        super().__init__(agent_id, block, terminal_gain, 1.0, stopping, required_plans=set(maps) - {agent_id},
                         members=[agent_id])
        self.maps, self.bound, self.step_size = maps, bound, step_size
        self.prices = np.zeros(bound.size)
        self._others: dict[int, np.ndarray] = {}   # newest inputs of the other sharing agents (time-major)

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        rows = self.bound.size // self.horizon
        self.prices = np.concatenate([self.prices[rows:], self.prices[-rows:]])  # shift, hold the last price
        self._others = {j: np.vstack([u[1:], u[-1:]]) for j, u in self._others.items()}
        return super().begin_step(step, state, inbox)

    def _absorb(self, inbox: Mapping[int, Plan]) -> None:
        """Price update from the plans of the previous iteration (own one and every sharing agent's)."""
        own = self._input_index[self.agent_id]
        total = self.maps[self.agent_id] @ self.U[own] if self.agent_id in self.maps else np.zeros(self.bound.size)
        for j in self.required_plans:
            plan = inbox.get(j)
            if plan is None or plan.step != self.step:
                self._stats.messages_missing += 1
            elif plan.inputs.shape[0] != self.horizon or not np.all(np.isfinite(plan.inputs)) \
                    or plan.inputs.size * self.maps[j].shape[0] != self.maps[j].size:
                self._stats.messages_rejected += 1
            else:
                self._others[j] = plan.inputs
            if j in self._others:
                total = total + self.maps[j] @ self._others[j].ravel()
        excess = total - self.bound
        previous = self.prices
        self.prices = np.maximum(0.0, self.prices + self.step_size * excess)
        self._stats.primal_residual = float(np.max(excess, initial=0.0))
        self._stats.dual_residual = float(np.max(np.abs(self.prices - previous), initial=0.0))

    def _linear_offset(self) -> np.ndarray | None:
        return self.maps[self.agent_id].T @ self.prices if self.agent_id in self.maps else None

    def _record_change(self, change: np.ndarray) -> None:
        """Keep the constraint excess as primal residual (set in _absorb)."""

    def _converged(self, new: np.ndarray, old: np.ndarray) -> bool:
        tolerance = self.stopping.tolerance
        return (self.stopping.converged(new, old)
                and self._stats.dual_residual <= tolerance * (1 + np.max(self.prices, initial=0))
                and self._stats.primal_residual <= tolerance * (1 + np.max(np.abs(self.bound), initial=0)))

    def _residual(self, new: np.ndarray, old: np.ndarray) -> float:
        """The largest of the relative plan change, price change and constraint excess (_converged's three tests)."""
        return max(self.stopping.change(new, old),
                   self._stats.dual_residual / (1 + np.max(self.prices, initial=0)),
                   self._stats.primal_residual / (1 + np.max(np.abs(self.bound), initial=0)))

    def _make_plan(self, converged: bool, final: bool, feasible: bool, predicted: np.ndarray | None = None) -> Plan:
        plan = super()._make_plan(converged, final, feasible, predicted)
        plan.data["prices"] = self.prices.reshape(self.horizon, -1).copy()
        return plan
