"""Sensitivity-based distributed MPC for neighbour-affine nonlinear systems (Pierer von Esch, Völz & Graichen,
"Sensitivity-based distributed model predictive control for nonlinear systems under inexact optimization").

Per iteration every agent i solves its own OCP with its neighbours' trajectories frozen at their last plans and its
cost augmented by γ_i'w_i, the first-order sensitivities of its neighbours' problems to its trajectories:

    γ_i = Σ_{j: i ∈ N_j} ∂L_j/∂(x_i, u_i),   L_j = J_j + Σ_k λ_j,k+1' (Φ_j(x_j,k, u_j,k, z_j,k) − x_j,k+1),

which agent j computes from its own adjoint states λ_j (the dynamics multipliers) and sends in its plan
(`sensitivity_<i>`, the layout: x_i,0..N then u_i,0..N−1). Exchange is neighbour to neighbour only. At a fixed point
the agents' optimality conditions are the centralized problem's. Stopping rule: the change of successive state
iterates below the tolerance, for the agent and the neighbours it listens to, or max_iterations. The terminal cost is
separable (each agent's block of the linearized DARE), with no terminal constraint, as in the paper.

Pair constraints (a minimum distance) are kept by both agents with the other frozen and left out of the
sensitivities, so where one is active the fixed point is a generalized Nash equilibrium rather than the centralized
optimum (documented; the centralized NMPC keeps the constraint once).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..mpc.nonlinear_ocp import OCPSolution, SoftLimits
from .base import StoppingRule
from .nonlinear_agent import LocalNlpAgent, shifted_trajectory
from .plan import Plan


class SensitivityAgent(LocalNlpAgent):
    """One agent of the sensitivity-based scheme, with its local solver (sqp, rti or ipopt)."""

    def __init__(self, agent_id: int, design, stopping: StoppingRule, soft_limits: SoftLimits = SoftLimits()) -> None:
        super().__init__(agent_id, design, stopping, soft_limits=soft_limits)
        net = design.network
        self.sensed_by = tuple(j for j in range(net.num_agents) if agent_id in net.neighbours(j))
        self.required_plans = frozenset(self.neighbours) | frozenset(self.sensed_by)
        self._sensitivities: dict[int, np.ndarray] = {}
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # neighbour → (S, r) of the limits it drives

    def _start(self, first: bool) -> None:
        layout, net, N = self.ocp.layout, self.design.network, self.horizon
        self._rows = {}   # linearized at this step's solutions only
        self._sensitivities = {j: np.zeros(layout.trajectory_size(j)) if first else
                               shifted_trajectory(self._sensitivities[j], net.agents[j].n_x, net.agents[j].n_u, N)
                               for j in self.neighbours}

    def _problem(self, inbox: Mapping[int, Plan]) -> tuple[np.ndarray, np.ndarray]:
        layout, i = self.ocp.layout, self.agent_id
        plans = {j: self.neighbour_plan(j, inbox) for j in self.neighbours}
        gamma = np.zeros(layout.own_size)
        for j in self.sensed_by:
            plan = inbox.get(j)
            if plan is None or plan.step != self.step or f"sensitivity_{i}" not in plan.data:
                continue
            s = plan.data[f"sensitivity_{i}"].ravel()
            split = (self.horizon + 1) * self.n_x
            gamma[layout.x_index[i]] += s[self.n_x:split].reshape(self.horizon, self.n_x)   # x_i,0 is measured
            np.add.at(gamma, layout.u_index[i], s[split:].reshape(self.horizon, self.n_u))   # held rows add up
        x_ref, u_ref = self.design.reference_blocks((i,), self.step)
        p = self.ocp.parameters({j: plan.states for j, plan in plans.items()},
                                {j: plan.inputs for j, plan in plans.items()}, x_ref, u_ref, gamma,
                                self._received_rows(inbox))
        return p, layout.pack({i: np.vstack([self.x0, self.X])}, {i: self.U})

    def begin_step(self, step: int, state: np.ndarray, inbox: Mapping[int, Plan]) -> Plan:
        """The warm start, carrying the rows of the limits each neighbour drives linearized at it, so that the
        neighbours keep them from their first iteration on."""
        plan = super().begin_step(step, state, inbox)
        if not self.ocp.layout.soft.get(self.agent_id):
            return plan
        missing = self._stats.messages_missing   # the previous step's plans, shifted: not missing ones
        parameters, w = self._problem(inbox)
        self._stats.messages_missing = missing
        self._rows = self.ocp.limit_rows(w, self.x0, parameters)
        self._plan = self._make_plan(converged=False, final=False, feasible=True)
        return self._plan

    def _received_rows(self, inbox: Mapping[int, Plan]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """(S, r) from each neighbour whose limited states this agent drives, sent in this step's plans."""
        layout, i, rows = self.ocp.layout, self.agent_id, {}
        for j, components in layout.neighbour_rows.items():
            plan = inbox.get(j)
            flat = None if plan is None or plan.step != self.step else plan.data.get(f"limit_rows_{i}")
            size = self.horizon * len(components)
            if flat is not None and flat.size == size * (1 + layout.trajectory_size(i)) and np.all(np.isfinite(flat)):
                flat = flat.ravel()
                rows[j] = (flat[size:].reshape(size, layout.trajectory_size(i)), flat[:size])
        return rows

    def _accept(self, solution: OCPSolution, parameters: np.ndarray) -> None:
        self._sensitivities = self.ocp.sensitivity(solution.w, self.x0, parameters,
                                                   self.ocp.price_multipliers(solution, self.x0, parameters))
        self._rows = self.ocp.limit_rows(solution.w, self.x0, parameters)

    def _data(self) -> dict[str, np.ndarray]:
        data = {f"sensitivity_{j}": s for j, s in self._sensitivities.items()}
        data.update({f"limit_rows_{j}": np.concatenate([r, S.ravel()]) for j, (S, r) in self._rows.items()})
        return data
