"""The controller design of a nonlinear network: what its agents, its centralized NMPC and the drivers share.

`NonlinearDesign` offers what a driver asks of a `ControllerDesign` (agents by scheme name, the centralized
controller, plan records: assemble, predict, costs) so the simulator and the ROS nodes run it unchanged. Its
agents come from the schemes' nonlinear builders (coordination/scheme.py); a scheme without one is refused with
its reason.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import casadi as ca
import numpy as np

from ..models.linear import CoupledLinearSystem
from ..models.nonlinear import NonlinearNetwork
from ..mpc.input_parametrization import ControlHorizons
from ..mpc.nonlinear_ocp import OptimalControlProblem, SolverSettings
from ..mpc.reference import ReferenceTrajectory
from typing import Any

from .base import Agent, StepStatistics, StoppingRule
from .factory import build_agent_of, build_controllers, check_algorithm
from .plan import Plan
from .safe_input import InputGuard
from .safety_filter import MapStep
from .scheme import Problem


@dataclass(frozen=True)
class NonlinearCost:
    """Σ_k l(x_k, u_k) + V(x_N) of the plant-wide problem (tracking terms, the agents' coupling costs)."""

    design: "NonlinearDesign"

    @cached_property
    def _functions(self) -> tuple[ca.Function, ca.Function]:
        net = self.design.network
        x, u = ca.SX.sym("x", net.n_x), ca.SX.sym("u", net.n_u)
        xr, ur = ca.SX.sym("xr", net.n_x), ca.SX.sym("ur", net.n_u)
        stage, terminal = 0, 0
        for i in range(net.num_agents):
            xs, us = net.state_slice(i), net.input_slice(i)
            dx, du = x[xs] - xr[xs], u[us] - ur[us]
            stage += ca.bilin(ca.DM(net.state_weights[i]), dx, dx) + ca.bilin(ca.DM(net.input_weights[i]), du, du)
            terminal += ca.bilin(ca.DM(self.design.terminal_weights[i]), dx, dx)
        for c in net.couplings:
            if c.cost is not None:
                stage += c.cost(x[net.state_slice(c.agent)], x[net.state_slice(c.neighbour)])
        return ca.Function("stage", [x, u, xr, ur], [stage]), ca.Function("terminal", [x, xr], [terminal])

    @property
    def functions(self) -> tuple[ca.Function, ca.Function]:
        """(l(x, u, x̄, ū), V_f(x, x̄)) as CasADi Functions (what the horizons scheme's NLPs are built from)."""
        return self._functions

    def stage(self, x: np.ndarray, u: np.ndarray, step: int) -> float:
        x_ref, u_ref = self.design.reference.at(step)
        return float(self._functions[0](x, u, x_ref, u_ref))

    def trajectory(self, states: np.ndarray, inputs: np.ndarray, step: int) -> float:
        N = inputs.shape[0]
        x_ref, u_ref = self.design.reference.window(step, N)
        stage = self._functions[0].map(N)(states[:N].T, inputs.T, x_ref[:N].T, u_ref.T)
        return float(np.sum(np.asarray(stage))) + float(self._functions[1](states[N], x_ref[N]))


@dataclass(frozen=True)
class NonlinearDesign:
    """Network, horizon, references, separable terminal cost (each agent's block of the linearized DARE, scaled by
    `network.terminal_weight`) and the local solver settings."""

    network: NonlinearNetwork
    system: CoupledLinearSystem            # the linearization: slices, sets, sample time for the drivers
    horizon: int
    reference: ReferenceTrajectory
    terminal_weights: tuple[np.ndarray, ...]
    solver: SolverSettings = SolverSettings()
    control_horizons: ControlHorizons | None = None   # controller.control_horizon (schemes that honour it)
    terminal_set: bool = False             # controller.terminal_set: a scheme that declares nonlinear_terminal_set
    collision = None
    centre_consensus = None
    tubes = None
    explicit = None

    def for_algorithm(self, algorithm: str) -> "NonlinearDesign":
        return self

    def input_guard(self, agent: int) -> InputGuard:
        return InputGuard.of(self.system.subsystems[agent])

    nonlinear = True    # builds agents with Scheme.build_nonlinear (class attribute, not a field)

    def problem(self, weights: list[float] | None = None) -> Problem:
        """What a scheme's applicability check sees of this design (coordination/scheme.Problem)."""
        return Problem(self.system, self.horizon, nonlinear=True, control_horizons=self.control_horizons,
                       constant_reference=self.reference.is_constant,
                       weights=None if weights is None else tuple(weights))

    def agents(self, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
               weights: list[float] | None = None, scheme_settings: Any = None) -> list[Agent]:
        return [self.agent(algorithm, i, stopping, backend, weights, scheme_settings)
                for i in range(self.network.num_agents)]

    def agent(self, algorithm: str, agent_id: int, stopping: StoppingRule, backend: str = "daqp",
              weights: list[float] | None = None, scheme_settings: Any = None) -> Agent:
        check_algorithm(self, algorithm, weights)
        return build_agent_of(self, algorithm, agent_id, stopping, backend, weights, scheme_settings)

    def controllers(self, algorithm: str, stopping: StoppingRule, backend: str = "daqp",
                    weights: list[float] | None = None, scheme_settings: Any = None) -> list:
        return build_controllers(self, algorithm, stopping, backend, weights, scheme_settings)

    def centralized(self) -> "CentralizedNMPC":
        return CentralizedNMPC(self)

    # -- records ------------------------------------------------------------------------------------------------
    @cached_property
    def shared_cost(self) -> NonlinearCost:
        return NonlinearCost(self)

    def cost(self) -> NonlinearCost:
        return self.shared_cost

    @cached_property
    def _one_step(self) -> ca.Function:
        """x⁺ = Φ(x, u, x⁺) of the whole plant, solved for x⁺ by Newton's method: every agent's prediction map
        interpolates its neighbours' states towards their next ones."""
        net = self.network
        x, u, x_next = ca.SX.sym("x", net.n_x), ca.SX.sym("u", net.n_u), ca.SX.sym("x_next", net.n_x)
        parts = []
        for i in range(net.num_agents):
            z = [v for j in net.neighbours(i) for v in (x[net.state_slice(j)], u[net.input_slice(j)],
                                                          x_next[net.state_slice(j)])]
            parts.append(net.discrete_map(i)(x[net.state_slice(i)], u[net.input_slice(i)],
                                             ca.vcat(z) if z else ca.DM(0, 1)))
        residual = ca.Function("residual", [x_next, ca.vertcat(x, u)], [ca.vcat(parts) - x_next])
        solver = ca.rootfinder("step", "newton", residual, {"abstol": 1e-13, "error_on_fail": False})
        held = ca.Function("held", [x, u], [ca.substitute(ca.vcat(parts), x_next, x)])   # the first guess
        return ca.Function("Phi", [x, u], [solver(held(x, u), ca.vertcat(x, u))])

    def assemble(self, plans: dict) -> np.ndarray:
        """The plant-wide plan (time-major inputs) from every agent's Plan."""
        return np.hstack([plans[i].inputs for i in range(self.network.num_agents)]).ravel()

    def predict(self, x: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Predicted states (N+1 × n_x) of plan U from x under the prediction model."""
        N = self.horizon
        inputs = np.asarray(U, float).reshape(N, -1)
        rollout = self._one_step.mapaccum(N)(np.asarray(x, float), inputs.T)
        return np.vstack([x, np.asarray(rollout, float).T])

    def plan_cost(self, x: np.ndarray, U: np.ndarray, step: int) -> float:
        return self.shared_cost.trajectory(self.predict(x, U), np.asarray(U, float).reshape(self.horizon, -1), step)

    def trajectory_cost(self, states: np.ndarray, inputs: np.ndarray, step: int) -> float:
        return self.shared_cost.trajectory(states, inputs, step)

    def stage_cost(self, x: np.ndarray, u: np.ndarray, step: int) -> float:
        return self.shared_cost.stage(x, u, step)

    def one_step(self, agent: int, x: np.ndarray, known: Mapping[int, Plan], step: int) -> MapStep:
        """x_i(k+1) = Φ_i(x_i, u_i, z_i) as a function of u_i at the measured x_i, each neighbour at its newest known
        plan (shifted when stale, its reference when none): what the input guard keeps inside X_i
        (coordination/safety_filter.py)."""
        if agent not in self._step_maps:
            phi = self.network.discrete_map(agent)
            xs, us, zs = (ca.SX.sym(name, phi.size1_in(k)) for k, name in enumerate(("x", "u", "z")))
            self._step_maps[agent] = (phi, ca.Function("dPhi", [xs, us, zs], [ca.jacobian(phi(xs, us, zs), us)]))
        phi, dphi = self._step_maps[agent]
        parts = []
        for j in self.network.neighbours(agent):
            plan = known.get(j)
            if plan is None:
                x_ref, u_ref = self.reference_blocks((j,), step)
                states, inputs, lag = x_ref[j], u_ref[j], 0
            else:
                states, inputs, lag = plan.states, plan.inputs, max(step - plan.step, 0)
            last = states.shape[0] - 1
            parts += [states[min(lag, last)], inputs[min(lag, inputs.shape[0] - 1)], states[min(lag + 1, last)]]
        z = np.concatenate(parts) if parts else np.zeros(0)
        return MapStep(lambda u: phi(x, u, z), lambda u: dphi(x, u, z))

    @cached_property
    def _step_maps(self) -> dict[int, tuple[ca.Function, ca.Function]]:
        """Each agent's Φ_i and ∂Φ_i/∂u_i, built when first asked for."""
        return {}

    def reference_blocks(self, members, step: int) -> tuple[dict, dict]:
        """Each member's reference states (N+1 × n_x) and inputs (N × n_u) over the horizon from `step`."""
        x_ref, u_ref = self.reference.window(step, self.horizon)
        net = self.network
        return ({m: x_ref[:, net.state_slice(m)] for m in members}, {m: u_ref[:, net.input_slice(m)] for m in members})

    def initial_guess(self, x: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(states, inputs) plant-wide: the reference inputs rolled out from x (a start for the first solve)."""
        inputs = np.array(self.reference.window(step, self.horizon)[1], float)
        return self.predict(x, inputs.ravel()), inputs


class CentralizedNMPC:
    """The whole NLP (every agent's OCP at once) solved by IPOPT from the shifted previous solution: the reference
    the distributed schemes are measured against, and the `centralized` controller, under the agents' input rules."""

    def __init__(self, design: NonlinearDesign) -> None:
        self.design = design
        net, N = design.network, design.horizon
        members = tuple(range(net.num_agents))
        self.ocp = OptimalControlProblem(net, members, N, dict(enumerate(design.terminal_weights)),
                                         SolverSettings("ipopt", tolerance=min(design.solver.tolerance, 1e-8),
                                                        max_iterations=max(design.solver.max_iterations, 200)),
                                         control_horizons=design.control_horizons)
        self.guards = [design.input_guard(i) for i in members]
        self._w: np.ndarray | None = None
        self._lam: np.ndarray | None = None
        self._plan = np.zeros((N, net.n_u))
        self._candidate = np.zeros(net.n_u)
        self._x = np.zeros(net.n_x)
        self._solved = True
        self.last_solve_time = 0.0
        self.statistics = StepStatistics()

    def plan(self, x: np.ndarray, step: int, extra=None) -> tuple[np.ndarray, np.ndarray, bool]:
        """(states, inputs, solved) of the plan it applies at state x and step `step`."""
        design, layout = self.design, self.ocp.layout
        net = design.network
        if self._w is None:
            states, inputs = design.initial_guess(x, step)
        else:
            inputs = np.vstack([self._plan[1:], self._plan[-1:]])
            states = design.predict(x, inputs.ravel())
        w = layout.pack({m: states[:, net.state_slice(m)] for m in layout.members},
                        {m: inputs[:, net.input_slice(m)] for m in layout.members})
        p = self.ocp.parameters({}, {}, *design.reference_blocks(layout.members, step))
        solution = self.ocp.solve(w, np.asarray(x, float), p, self._lam)
        self.last_solve_time = solution.solve_time
        self.statistics = StepStatistics(iterations=1, solve_times=[solution.solve_time],
                                         call_times=[solution.solve_time])
        self._candidate = inputs[0].copy()
        if solution.ok:
            self._w, self._lam = solution.w, solution.dynamics_multipliers
            inputs = np.hstack([layout.inputs(solution.w, m) for m in layout.members])
            states = np.hstack([layout.states(solution.w, m, x[net.state_slice(m)]) for m in layout.members])
        else:
            self.statistics.fallbacks += 1
            self.statistics.count_failure(solution.infeasible)
        self._plan, self._x, self._solved = inputs, np.asarray(x, float), solution.ok
        return states, inputs, solution.ok

    def control(self) -> np.ndarray:
        """u(k): each agent's part of the plan's first input, guarded like an agent's."""
        u, sources = np.empty(self._plan.shape[1]), []
        net = self.design.network
        for i, guard in enumerate(self.guards):
            us, xs = net.input_slice(i), net.state_slice(i)
            u[us], rule = guard.apply(self._plan[0, us], self._candidate[us], self._x[xs])
            sources.append(rule)
        rule = next((r for r in sources if r != "plan"), "plan")
        self.statistics.input_source = ("solved" if self._solved else "candidate") if rule == "plan" else rule
        return u

