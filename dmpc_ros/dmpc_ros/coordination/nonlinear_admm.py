"""Edge-based consensus ADMM with local NLPs, the main scheme of GRAMPC-D (Burk, Völz & Graichen) and the baseline of
the sensitivity-based paper.

Agent i keeps copies v_ij of the trajectories of the neighbours j that enter its OCP (dynamics, coupling costs, pair
constraints) as variables of its own NLP. Every edge "i copies j" has a consensus z_ij and a multiplier y_ij; with
two pieces per edge (the copy and the original) z_ij = ½ (v_ij + o_j) and the owner's multiplier is −y_ij, so both
ends compute the edge from the same two messages of the previous iteration:

    z = ½ (v_ij + o_j),   y_ij ← y_ij + ρ (v_ij − z);
    local NLP:  J_i + Σ_edges y'(piece − z) + ρ/2 ‖piece − z‖².

Plans carry the copies (`copy_<j>`: x_j,0..N then u_j,0..N−1). Stopping: the largest |v_ij − o_j| of the agent's
edges below the tolerance (relative), with the own state iterates settled, or max_iterations. At every step the
copies start from the neighbours' warm starts (their shifted plans), the multipliers from the previous step's,
shifted. Safeguard (coordination/merit.py): the final iterate is applied only if its merit (own cost plus ρ/2 times the
squared distance of each copy and original to the other end's newest value) is at most 10× the warm start's;
otherwise the warm start is applied and counted (`warm_start_applied`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..mpc.nonlinear_ocp import OCPSolution
from .admm import WARM_START_APPLIED, AdmmSettings
from .base import StoppingRule
from .merit import WarmStartSafeguard
from .nonlinear_agent import LocalNlpAgent, shifted_trajectory
from .plan import Plan


class NonlinearAdmmAgent(LocalNlpAgent):
    """One agent of nonlinear edge-based ADMM (penalty ρ = controller.admm.penalty)."""

    def __init__(self, agent_id: int, design, stopping: StoppingRule, settings: AdmmSettings) -> None:
        super().__init__(agent_id, design, stopping, copies=True)
        self.copiers = self.ocp.copiers
        self.required_plans = frozenset(self.neighbours) | frozenset(self.copiers)
        self.rho = settings.penalty
        self.copies: dict[int, np.ndarray] = {}
        self.y_copy: dict[int, np.ndarray] = {}   # edges where this agent copies j
        self.y_own: dict[int, np.ndarray] = {}    # edges where copier l copies this agent (−l's y)
        self.residual = np.inf
        self.safeguard = WarmStartSafeguard()
        self.first_step: int | None = None
        self._counterparts: dict[tuple, np.ndarray] = {}   # ("copy"|"own", j) → the other end's newest value

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        """The shared negotiation step, then the warm-start safeguard on a final plan.
        A fallback is a shifted plan (step 0 starts from the reference) within the own state bounds."""
        shifted_start = self.iteration == 0 and self.step > self.first_step and self.constraint_margin() >= 0.0
        warm_start = (self.X.copy(), self.U.copy()) if shifted_start else None
        if self.iteration == 0:
            self.safeguard.start(None, float("inf"))
        plan = super().iterate(inbox)   # _problem has set this iteration's counterparts
        # the reported residual adds the relative consensus residual to the relative change of the state iterates
        self._stats.residual = max(self._stats.residual, self.residual / self._scale())
        if warm_start is not None:      # at iteration 1 the copies and counterparts are the warm starts: no violation
            X, U = self.X, self.U
            self.X, self.U = warm_start
            self.safeguard.start(warm_start, self._own_cost(np.vstack([self.x0, self.X])))
            self.X, self.U = X, U
        if plan.final and self.safeguard.rejects(self._merit()):
            self.X, self.U = (a.copy() for a in self.safeguard.warm_start)
            self._stats.count(WARM_START_APPLIED)
            plan = self._plan = self._make_plan(converged=plan.converged, final=True, feasible=plan.feasible)
        return plan

    def _merit(self) -> float:
        """Own cost of the current plan plus ρ/2 Σ ‖piece − the other end's newest value‖² over the edges."""
        own = self.own_trajectory()
        pieces = {**{("copy", j): v for j, v in self.copies.items()}, **{("own", c): own for c in self.copiers}}
        violation = sum(float(np.sum((pieces[key] - value) ** 2)) for key, value in self._counterparts.items()
                        if key in pieces and pieces[key].shape == value.shape)
        return self._own_cost(np.vstack([self.x0, self.X])) + 0.5 * self.rho * violation

    def _start(self, first: bool) -> None:
        net, N, layout = self.design.network, self.horizon, self.ocp.layout
        if first:
            self.first_step = self.step
        self._counterparts = {}
        x_ref, u_ref = self.design.reference.window(self.step, N)
        for j in self.neighbours:
            self.copies[j] = np.concatenate([x_ref[:, net.state_slice(j)].ravel(),
                                             u_ref[:, net.input_slice(j)].ravel()])
        size = {a: layout.trajectory_size(a) for a in (*self.neighbours, *self.copiers, self.agent_id)}
        for edges, other in ((self.y_copy, self.neighbours), (self.y_own, self.copiers)):
            for j in other:   # a copy's multiplier lives on the copied agent's trajectory, an original's on the own
                owner = j if edges is self.y_copy else self.agent_id
                n_x, n_u = net.agents[owner].n_x, net.agents[owner].n_u
                edges[j] = np.zeros(size[owner]) if first else shifted_trajectory(edges[j], n_x, n_u, N)
        self.residual = np.inf

    def _problem(self, inbox: Mapping[int, Plan]) -> tuple[np.ndarray, np.ndarray]:
        layout, i, rho = self.ocp.layout, self.agent_id, self.rho
        own = self.own_trajectory()   # as announced at the previous iteration
        copied, owned, residual = {}, {}, 0.0
        for j in self.neighbours:
            plan = self.neighbour_plan(j, inbox)
            original = np.concatenate([plan.states.ravel(), plan.inputs.ravel()])
            if self.iteration == 1:   # the step starts from the neighbours' warm starts
                self.copies[j] = original.copy()
            v = self.copies[j]
            self._counterparts[("copy", j)] = original
            z = 0.5 * (v + original)
            self.y_copy[j] = self.y_copy[j] + rho * (v - z)
            copied[j] = (z, self.y_copy[j])
            residual = max(residual, float(np.max(np.abs(v - original))))
        for copier in self.copiers:
            plan = inbox.get(copier)
            v = plan.data.get(f"copy_{i}") if plan is not None and plan.step == self.step else None
            if v is None or v.size != own.size or not np.all(np.isfinite(v)):
                self._stats.messages_missing += 1
                owned[copier] = (own, self.y_own[copier])   # nothing heard: no pull this iteration
                continue
            v = v.ravel() if self.iteration > 1 else own   # a copier starts from this agent's warm start too
            self._counterparts[("own", copier)] = v
            z = 0.5 * (v + own)
            self.y_own[copier] = self.y_own[copier] + rho * (own - z)
            owned[copier] = (z, self.y_own[copier])
            residual = max(residual, float(np.max(np.abs(v - own))))
        self.residual = residual
        self._stats.primal_residual = residual
        x_ref, u_ref = self.design.reference_blocks((i,), self.step)
        p = self.ocp.consensus_parameters(self.ocp.parameters({}, {}, x_ref, u_ref), copied, owned, rho)
        w = layout.pack({i: np.vstack([self.x0, self.X])}, {i: self.U})
        for j, where in layout.copy_index.items():
            w[where] = self.copies[j]
        return p, w

    def _accept(self, solution: OCPSolution, parameters: np.ndarray) -> None:
        self.copies = {j: solution.w[where].copy() for j, where in self.ocp.layout.copy_index.items()}

    def _scale(self) -> float:
        return 1.0 + float(np.max(np.abs(self.own_trajectory()), initial=0.0))

    def _agreed(self) -> bool:
        return self.iteration > 1 and self.residual <= self.stopping.tolerance * self._scale()

    def _data(self) -> dict[str, np.ndarray]:
        return {f"copy_{j}": v for j, v in self.copies.items()}
