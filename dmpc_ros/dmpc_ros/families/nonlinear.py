"""`model.type: nonlinear`: a nonlinear network (models/nonlinear.py), a shipped example by name with its
parameters, or a `NonlinearNetwork` built in Python. Its controllers solve NLPs (coordination/nonlinear.py), the
plant integrates the true continuous dynamics, and `controller.nonlinear` picks the local solver. `model.setpoint`
or `model.setpoints` (as the linear family's, over the stacked state) replace the example's setpoints; their `null`
entries, and NaN entries of a Python-built network's setpoints, are solved for the steady state
(models/nonlinear_steady.py), as the linear family does."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.linalg import block_diag

from ..coordination.nonlinear import NonlinearDesign
from ..coordination.scheme import scheme_names, scheme_of
from ..models.layout import PlanarLayout
from ..models.linear import CoupledLinearSystem
from ..models.nonlinear import NonlinearNetwork, NonlinearPlant, NonlinearSetpoint
from ..models.nonlinear_examples import EXAMPLES, example_parameters
from ..models.nonlinear_steady import NoSteadyState, complete_setpoints
from ..mpc.nonlinear_ocp import HESSIANS, SOLVERS, SolverSettings
from ..mpc.qp_backends import backend_names
from ..mpc.reference import ReferenceTrajectory
from ..mpc.terminal import NotStabilizable, check_stabilizable
from ..progress import report
from ..scenarios.csv_reference import parse_csv_reference
from ..scenarios.family import FamilyParts, ModelFamily
from ..scenarios.validation import ScenarioError, check_number, choice, number, parse_rows, reject_unknown, section
from .linear import parse_setpoints, plot_setpoints

STEADY_STATE = 1e-7   # |ẋ| · sample_time at a setpoint, relative to 1 + |x̄|, above which it is no steady state
SOLVER_FIELDS = {"method", "hessian", "max_iterations", "tolerance", "qp_backend"}


class NonlinearFamily(ModelFamily):
    name = "nonlinear"
    nonlinear = True
    model_fields = frozenset({"example", "parameters", "reference", "setpoint", "setpoints"})
    controller_fields = frozenset({"nonlinear"})
    initial_state_default = "setpoint"

    def parse(self, model: dict, controller: dict, sample_time: float) -> FamilyParts:
        example = choice(model, "model.", "example", tuple(EXAMPLES))
        parameters = dict(section(model, "model.", "parameters"))
        allowed = set(example_parameters(example)) - {"sample_time"}
        reject_unknown(parameters, "model.parameters.", allowed)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in parameters.items()}
        for key, value in values.items():
            for k, entry in enumerate(value if isinstance(value, tuple) else (value,)):
                check_number(entry, f"model.parameters.{key}" + (f"[{k}]" if isinstance(value, tuple) else ""),
                             finite=True)
        try:
            network = EXAMPLES[example](sample_time=sample_time, **values)
        except (TypeError, ValueError) as error:
            raise ScenarioError(f"model.parameters: {error}") from None
        reference = parse_csv_reference(model.get("reference"), network)   # recorded references over the example's
        setpoints = given_setpoints(model, network, example)
        if setpoints and reference is not None:
            raise ScenarioError("model.setpoints: not allowed with model.reference (give one of them)")
        if setpoints:
            network = replace(network, setpoints=setpoints)
        return self.from_model(network if reference is None else replace(network, reference=reference))

    def from_model(self, model: object) -> FamilyParts:
        """The network with the free (NaN) entries of its setpoints solved for steady states."""
        if not isinstance(model, NonlinearNetwork):
            raise ScenarioError(f"model: a {type(model).__name__} is not a NonlinearNetwork")
        try:
            model = complete_setpoints(model)
        except NoSteadyState as error:
            raise ScenarioError(f"model.setpoints: {error}") from None
        return FamilyParts(model, block_diag(*model.state_weights), block_diag(*model.input_weights))

    def initial_state(self, value: object, parts: FamilyParts, sample_time: float) -> np.ndarray:
        """'setpoint' (the first reference sample), one list per agent, or the stacked state."""
        network: NonlinearNetwork = parts.model
        if isinstance(value, str) and value == "setpoint":
            return network.reference_at(0.0)[0]
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, list) and value and not isinstance(value[0], list):
            if len(value) != network.n_x:
                raise ScenarioError(f"simulation.initial_state: has {len(value)} entries, expected {network.n_x} "
                                    f"(all agents' states) or one list per agent")
            return np.array([check_number(v, f"simulation.initial_state[{k}]") for k, v in enumerate(value)])
        rows = [tuple(a.state_names) for a in network.agents]
        if len({len(r) for r in rows}) == 1:
            return parse_rows(value, "simulation.initial_state", network.num_agents, rows[0],
                              noun="lists (one per agent)")
        raise ScenarioError("simulation.initial_state: give 'setpoint' or the stacked state of all agents")

    def reference(self, scenario, system: CoupledLinearSystem) -> ReferenceTrajectory:
        """The network's reference function or setpoints, sampled per step (one sample when it never changes)."""
        network: NonlinearNetwork = scenario.model
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):   # refused below, in one line
            if network.reference is None and len(network.setpoints) == 1:
                samples = [network.reference_at(0.0)]
            else:
                samples = [network.reference_at(k * scenario.sample_time) for k in range(scenario.reference_length)]
        states, inputs = np.array([s[0] for s in samples]), np.array([s[1] for s in samples])
        if not (np.all(np.isfinite(states)) and np.all(np.isfinite(inputs))):   # e.g. √ of a negative tank level
            k = int(np.argmax(~np.all(np.isfinite(np.hstack([states, inputs])), axis=1)))
            raise ScenarioError(f"model.parameters: the example's reference is not finite at step {k} with these "
                                f"parameters (a negative level or rate?)")
        if len(samples) == 1:
            return ReferenceTrajectory.constant(states[0], inputs[0])
        return ReferenceTrajectory(states, inputs)

    def check_model(self, scenario, system: CoupledLinearSystem) -> None:
        """The settings a nonlinear model allows (the scheme's own checks ran with the scenario's), references
        inside the limits, setpoints at steady states of the true dynamics, and a stabilizable linearization at the
        first reference sample."""
        network: NonlinearNetwork = scenario.model
        if scenario.controller.robust != "nominal":
            raise ScenarioError("controller.robust: not allowed for model.type nonlinear (tubes are built for linear "
                                "models)")
        if scenario.controller.terminal_set and not scheme_of(scenario.controller.algorithm).nonlinear_terminal_set:
            with_set = [n for n in scheme_names() if scheme_of(n).nonlinear_terminal_set]
            raise ScenarioError(f"controller.terminal_set: not allowed for model.type nonlinear with algorithm "
                                f"{scenario.controller.algorithm} (its terminal cost is the separable CLF of the "
                                f"paper, without a terminal set); schemes with one: {', '.join(with_set) or 'none'} "
                                f"(dmpc sim/run: --no-reference skips the centralized reference run)")
        solver_settings(scenario)
        lower_x = np.concatenate([a.state_lower for a in network.agents])
        upper_x = np.concatenate([a.state_upper for a in network.agents])
        lower_u = np.concatenate([a.input_lower for a in network.agents])
        upper_u = np.concatenate([a.input_upper for a in network.agents])
        names = [n for a in network.agents for n in a.state_names]
        inputs = [n for a in network.agents for n in a.input_names]
        reference = self.reference(scenario, system)
        for k, (x_ref, u_ref) in enumerate(zip(reference.states, reference.inputs)):
            for value, lower, upper, labels in ((x_ref, lower_x, upper_x, names), (u_ref, lower_u, upper_u, inputs)):
                bad = np.flatnonzero((value < lower - 1e-9) | (value > upper + 1e-9))
                if bad.size:
                    b = int(bad[0])
                    raise ScenarioError(f"controller: the reference at step {k} has {labels[b]} = {value[b]:.6g}, "
                                        f"outside its limits [{lower[b]:.6g}, {upper[b]:.6g}]")
        if network.reference is None:
            for setpoint in network.setpoints:
                residual = network.steady_state_residual(setpoint.state, setpoint.input) * scenario.sample_time
                worst = int(np.argmax(np.abs(residual)))
                if abs(residual[worst]) > STEADY_STATE * (1 + np.max(np.abs(setpoint.state))):
                    raise ScenarioError(f"controller: the setpoint from t = {setpoint.time} s is not a steady state: "
                                        f"d{names[worst]}/dt = {residual[worst] / scenario.sample_time:.3g} there")
        report("checking the linearization's stabilizability and detectability")
        try:
            check_stabilizable(*system.full_matrices(), scenario.controller.Q, names)
        except NotStabilizable as error:
            raise ScenarioError(f"model: at the first reference sample, the linearization: {error}") from None

    def controller_design(self, scenario, design) -> NonlinearDesign:
        """The NLP design: each agent's terminal cost is its block of the linearization's DARE solution, scaled."""
        network: NonlinearNetwork = scenario.model
        P = design.lqr[0]
        blocks = tuple(network.terminal_weight * P[network.state_slice(i), network.state_slice(i)]
                       for i in range(network.num_agents))
        return NonlinearDesign(network, design.system, design.horizon, design.reference, blocks,
                               solver_settings(scenario), control_horizons=design.control_horizons,
                               terminal_set=design.use_terminal_set)

    def plant(self, scenario) -> NonlinearPlant:
        return NonlinearPlant(scenario.model, scenario.sample_time)

    def metrics(self, scenario, x: np.ndarray, u: np.ndarray) -> dict:
        network: NonlinearNetwork = scenario.model
        return {} if network.metrics is None else network.metrics(network, x, u)

    def layout(self, scenario) -> PlanarLayout:
        """Robots at the position states the network names (NonlinearNetwork.positions), else the generic layout."""
        network = scenario.model
        sizes = [agent.n_x for agent in network.agents]
        if network.positions is None:
            return PlanarLayout.generic(sizes)
        return PlanarLayout.planar(sizes, list(network.positions), network.safety_radius)

    def robot_base(self, scenario):
        return scenario.model.robot_base

    def plots(self, scenario, result, directory: Path) -> list[Path]:
        """setpoints.png (every state against its setpoint or reference, every input, the limits; as the linear
        family's), and paths.png for a network that names its planar positions: each agent's path and its
        reference path."""
        network: NonlinearNetwork = scenario.model
        setpoints = plot_setpoints(result, scenario, self.reference(scenario, None), directory)
        if network.positions is None:
            return [setpoints]
        from ..sim.plots import plt, save  # matplotlib only when plotting

        reference = self.reference(scenario, None)
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, (a, b) in enumerate(network.positions):
            s = network.state_slice(i)
            states = result.x[:, s]
            line, = ax.plot(states[:, a], states[:, b], label=network.agents[i].name)
            T = result.x.shape[0]
            ref = np.array([reference.at(k)[0][s] for k in range(T)])
            ax.plot(ref[:, a], ref[:, b], "--", color=line.get_color(), lw=0.8)
            ax.plot(states[0, a], states[0, b], "o", color=line.get_color())
        ax.set_xlabel("x [m]")
        ax.set_ylabel("y [m]")
        ax.set_aspect("equal")
        ax.legend(fontsize=8)
        ax.set_title(f"{scenario.name}: paths (dashed: reference, o: start)")
        return [setpoints, save(fig, directory / "paths.png")]


def given_setpoints(model: dict, network: NonlinearNetwork, example: str) -> tuple[NonlinearSetpoint, ...]:
    """model.setpoint / model.setpoints over the stacked state (null: free; `u` optional, absent: all free), parsed
    as the linear family's; () when neither is given."""
    states = tuple(n for a in network.agents for n in a.state_names)
    inputs = tuple(n for a in network.agents for n in a.input_names)
    given = parse_setpoints(model, "model", network.n_x, network.n_u, states, inputs)
    if given and network.reference is not None:
        raise ScenarioError(f"model.setpoints: not allowed: example {example} follows a reference path, not setpoints")
    return tuple(NonlinearSetpoint(s.time, s.state, np.full(network.n_u, np.nan) if s.input is None else s.input)
                 for s in given)


def solver_settings(scenario) -> SolverSettings:
    """controller.nonlinear: the local NLP solver (method sqp | rti | ipopt, hessian, max_iterations, tolerance,
    qp_backend: a back end of the registry serving the SQP's QPs, forms dense_once and dense_soft)."""
    given = section(scenario.sections.get("controller", {}), "controller.", "nonlinear")
    reject_unknown(given, "controller.nonlinear.", SOLVER_FIELDS)
    defaults = SolverSettings()
    return SolverSettings(
        method=choice(given, "controller.nonlinear.", "method", SOLVERS, default=defaults.method),
        hessian=choice(given, "controller.nonlinear.", "hessian", HESSIANS, default=defaults.hessian),
        max_iterations=number(given, "controller.nonlinear.", "max_iterations", default=defaults.max_iterations,
                              minimum=1, maximum=10000, integer=True),
        tolerance=number(given, "controller.nonlinear.", "tolerance", default=defaults.tolerance, minimum=0.0,
                         strict_minimum=True),
        qp_backend=choice(given, "controller.nonlinear.", "qp_backend",
                          tuple(n for n in backend_names("dense_once") if n in backend_names("dense_soft")),
                          default=defaults.qp_backend))


FAMILY = NonlinearFamily()
