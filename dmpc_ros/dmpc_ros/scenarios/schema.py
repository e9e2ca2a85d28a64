"""The scenario file format (YAML), validated once at load time.

A scenario names a model (`model.type`: a family from the registry, see scenarios/family.py), the controller
design and algorithm, the simulation (steps, initial state, disturbances) and the network (delay, drops). This
module parses the common sections; the family parses the model section and its own controller fields. See
dmpc_ros/config/mass_spring.yaml for an annotated example.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..coordination import ControllerDesign, StoppingRule
from .coupled_limit_check import coupled_limit_note
from ..coordination.scheme import Problem, Scheme, allowed_for, scheme_names, scheme_of, settings_sections
from ..coordination.team_change import TeamChange
from ..models.linear import CoupledLinearSystem, CouplingTerm
from ..mpc.input_parametrization import TAILS, ControlHorizons
from ..mpc.reference import ReferenceTrajectory
from ..mpc.terminal import NotStabilizable, admissible_target, lqr_terminal
from ..mpc.tubes import PlanCompatibility, TubeError, TubeFamily, coupled_tubes, tighten
from ..progress import report
from ..sim.disturbances import PlantDisturbance, ScriptedDisturbance, add, scripted_sequences
from ..sim.network import DEFAULT_RETRANSMIT_DELAY, LOSS_MODELS, host_map
from .checks import check_initial_state, check_nonempty_sets
from .csv_series import scenario_directory
from .disturbance_entries import parse_disturbances
from .family import FamilyParts, ModelFamily, family_of, model_family
from .parameters import OVERRIDES, PARAMETERS
from .security import SecuritySettings, parse_security
from .team_changes import parse_team_changes
from .validation import (ScenarioError, agent_values, check_number, choice, flag, number, per_agent, reject_unknown,
                         section, symbol, text)
from .yaml_file import read_yaml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
MAX_SAMPLE_TIME = 3600.0   # [s] model.sample_time above this (or inf) is refused
# + the schemes' settings sections
COMMON_CONTROLLER_FIELDS = {"algorithm", "horizon", "max_iterations", "tolerance", "solver", "weights",
                            "terminal_set", "robust", "tube", "control_horizon", "control_tail"}


@dataclass(frozen=True)
class ControllerSettings:
    algorithm: str
    horizon: int
    max_iterations: int
    tolerance: float
    solver: str
    weights: list[float] | None
    terminal_set: bool
    Q: np.ndarray
    R: np.ndarray
    coupling_terms: tuple[CouplingTerm, ...] = ()  # Q's couplings as PSD pair terms (bidirectional platoon, formation)
    robust: str = "nominal"                        # nominal | tube (tube-based robust DMPC)
    scheme_settings: Any = None   # the scheme's own settings (its parser's object for controller.<section>)
    control_horizons: ControlHorizons | None = None   # controller.control_horizon / control_tail (None: N_c = N)

    @property
    def stopping(self) -> StoppingRule:
        return StoppingRule(self.max_iterations, self.tolerance)

    @property
    def control_horizon(self) -> int | list[int]:
        """The override's value (OVERRIDES): 0 unset, one number when every agent has it, else the list."""
        if self.control_horizons is None:
            return 0
        values = list(self.control_horizons.values)
        return values[0] if len(set(values)) == 1 else values

    @property
    def control_tail(self) -> str:
        return "hold" if self.control_horizons is None else self.control_horizons.tail


TARGET_INTERIOR = 0.01   # share of each bound a terminal-set target keeps clear of it


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    family: ModelFamily
    model: Any                         # the family's model object (num_agents, subsystems(), discrete())
    sample_time: float
    coupling_tolerance: float
    controller: ControllerSettings
    steps: int
    initial_state: np.ndarray
    disturbance_bound: np.ndarray      # per state, |w| ≤ bound (zeros: none)
    disturbance_seed: int
    network_latency: float                       # [s] per message in dmpc sim
    drop_probability: float
    network_seed: int
    outage_probability: float = 0.0             # a link is down for a whole step (every plan of it lost)
    max_outage_steps: int = 0                   # … at most this many steps in a row
    hosts: tuple[tuple[int, ...], ...] | None = None   # agents per host (dmpc sim's lossy links; None: one each)
    link_loss: float = 0.0                      # per message and direction between two hosts (sim/network.py)
    loss_model: str = "best_effort"             # … lost (best_effort) or retransmitted, i.e. late (reliable)
    retransmit_delay: float = DEFAULT_RETRANSMIT_DELAY   # [s] per lost transmission (reliable)
    disturbance_kind: str = "uniform"           # uniform in the box | vertices (worst case: ±bound)
    tubes: TubeFamily | None = None             # robust: tube, per-agent RPI sets and ancillary gains
    strict: bool = False                        # end the run at the first step that had no solution (exit code 3)
    family_settings: Any = None                 # the family's own settings (setpoints, speed profile, path, ...)
    scripted_disturbances: tuple[ScriptedDisturbance, ...] = ()   # simulation.disturbances: steps, ramps, pulses, CSV
    security: SecuritySettings = SecuritySettings()   # authentication of plans and inputs (ROS runs; security.py)
    source: str = field(default="", compare=False)
    sections: dict = field(default_factory=dict, compare=False, repr=False)   # controller/simulation/network as given
    notes: tuple[str, ...] = field(default=(), compare=False)   # what the load-time checks advise (not errors)
    team_changes: tuple[TeamChange, ...] = ()   # members that join or leave at step boundaries (team_changes.py)

    @property
    def num_agents(self) -> int:
        return self.model.num_agents

    def plant(self):
        """The simulated plant (the family's: a linear model's exact discretization, no couplings dropped)."""
        return self.family.plant(self)

    def prediction_model(self) -> CoupledLinearSystem:
        return self.model.discrete(self.sample_time, coupling_tolerance=self.coupling_tolerance)

    def design(self, with_laws: bool = True) -> ControllerDesign:
        """The controller design of the scenario's algorithm (a scheme that splits the cost by agent, ADMM, gets
        the separable terminal cost Σ x_i,N' P_ii x_i,N, and so does its centralized reference). An explicit
        scheme's laws come from the cache (with_laws=False: not loaded, for the build itself)."""
        model = self.prediction_model()
        limits = model.subsystems if self.tubes is not None else None
        if self.tubes is not None:   # the nominal problem: constraints tightened by the tubes
            model = replace(model, subsystems=tuple(tighten(sub, self.tubes.tubes[i], self.tubes.gains[i], i)
                                                    for i, sub in enumerate(model.subsystems)))
        reference = self.family.reference(self, model)
        if self.controller.terminal_set:
            reference = self.admissible_reference(model, reference)
        extras = self.family.design_extras(self, reference)
        design = ControllerDesign(model, self.controller.Q, self.controller.R, self.controller.horizon,
                                  reference, self.controller.terminal_set,
                                  coupling_terms=self.controller.coupling_terms, collision=extras.collision,
                                  centre_consensus=extras.centre_consensus, tubes=self.tubes,
                                  applied_limits=limits, control_horizons=self.controller.control_horizons)
        offline = scheme_of(self.controller.algorithm).offline
        if with_laws and offline is not None:   # solved offline (dmpc explicit build)
            design = offline.load(design, self.controller.scheme_settings, self.source)
        return self.family.controller_design(self, design.for_algorithm(self.controller.algorithm))

    def admissible_reference(self, model: CoupledLinearSystem, reference: ReferenceTrajectory) -> ReferenceTrajectory:
        """With a terminal set: a setpoint on (or beyond) a limit — of the tightened sets in tube mode — has no
        terminal set with interior around it; the controller then regulates to the admissible steady state
        closest to it, 1 % inside every bound, and builds the terminal set there. Setpoints inside stay."""
        A, B = model.full_matrices()
        states, inputs = model.stacked_constraints()
        x_ref, u_ref = reference.at(0)
        if np.all(states.H @ x_ref <= states.h - TARGET_INTERIOR * np.abs(states.h)) and \
                np.all(inputs.H @ u_ref <= inputs.h - TARGET_INTERIOR * np.abs(inputs.h)):
            return reference
        return ReferenceTrajectory.constant(*admissible_target(A, B, self.controller.Q, self.controller.R, x_ref, u_ref,
                                                               states, inputs, TARGET_INTERIOR))

    @property
    def reference_length(self) -> int:
        """Reference samples: the run plus one horizon of preview."""
        return self.steps + self.controller.horizon + 1

    def reference_trajectory(self, model: CoupledLinearSystem) -> ReferenceTrajectory:
        """The setpoints every agent knows (the family's: a speed profile, a path, setpoints)."""
        return self.family.reference(self, model)

    def metrics(self, x: np.ndarray, u: np.ndarray) -> dict:
        """Family-specific closed-loop figures (platoon: spacing, string stability, comfort; ...)."""
        return self.family.metrics(self, x, u)

    def random_disturbance(self) -> np.ndarray | None:
        """steps × n_x disturbance drawn uniformly in the box, seeded (None when the bound is zero)."""
        if not np.any(self.disturbance_bound):
            return None
        rng = np.random.default_rng(self.disturbance_seed)
        shape = (self.steps, self.disturbance_bound.size)
        draws = rng.choice([-1.0, 1.0], shape) if self.disturbance_kind == "vertices" else rng.uniform(-1.0, 1.0, shape)
        return draws * self.disturbance_bound

    def scripted(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(steps × n_x, steps × n_u) sums of simulation.disturbances (sim/disturbances.py; None: no entry)."""
        n_x = self.disturbance_bound.size
        n_u = sum(len(sub.input_names) for sub in self.model.subsystems()) if self.scripted_disturbances else 0
        return scripted_sequences(self.scripted_disturbances, self.steps, self.sample_time, n_x, n_u)

    def disturbance(self) -> np.ndarray | None:
        """steps × n_x additive w(k) on x(k+1): the seeded random draws plus the scripted state entries (None when
        there is neither)."""
        return add(self.random_disturbance(), self.scripted()[0])

    def input_disturbance(self) -> np.ndarray | None:
        """steps × n_u d(k) added to the applied inputs: the scripted input entries (None: none)."""
        return self.scripted()[1]

    def plant_disturbance(self) -> PlantDisturbance:
        """Everything the plant adds, computed once: what `dmpc sim` and the ROS plant node both apply."""
        return PlantDisturbance(self.disturbance(), self.input_disturbance())

    def with_overrides(self, **changes) -> "Scenario":
        """A copy with fields of OVERRIDES replaced (algorithm, horizon, max_iterations, tolerance, solver,
        steps), validated like the file itself, cross-field rules included (ScenarioError naming the field)."""
        unknown = sorted(set(changes) - set(OVERRIDES))
        if unknown:
            raise TypeError(f"with_overrides: {unknown[0]} cannot be overridden; allowed: {', '.join(OVERRIDES)}")
        sections = copy.deepcopy(self.sections)
        for name, value in changes.items():
            where, key = OVERRIDES[name]
            sections.setdefault(where, {})[key] = value
        parts = FamilyParts(self.model, self.controller.Q, self.controller.R, self.controller.coupling_terms,
                            self.family_settings)
        return build_scenario(self.family, parts, sections, self.sample_time, self.coupling_tolerance, self.source)


def parse_control_horizons(controller: dict, num_agents: int, horizon: int) -> ControlHorizons | None:
    """controller.control_horizon: N_c, one number for every agent or one per agent, 1 ≤ N_c,i ≤ controller.horizon
    (absent: every input a decision variable); controller.control_tail: what the inputs after N_c are, `hold` (the
    last free input, default) or `terminal` (the terminal law u = ū + K (x − x̄) along the prediction)."""
    tail = choice(controller, "controller.", "control_tail", TAILS, default="hold")
    if controller.get("control_horizon") is None:
        return None
    values = per_agent(controller, "controller.", "control_horizon", num_agents, horizon, minimum=1, maximum=horizon,
                       integer=True)
    return ControlHorizons(tuple(int(v) for v in values), tail)


def parse_tube_faults(tube: dict, subsystems: list, settings: ControllerSettings) -> PlanCompatibility:
    """controller.tube: missed_steps D (a neighbour plan may be late or lost for up to D steps) and plan_change,
    a mapping from state or input symbol to the compatibility bound δ (absent symbols: unconstrained)."""
    reject_unknown(tube, "controller.tube.", {"missed_steps", "plan_change"})
    D = number(tube, "controller.tube.", "missed_steps", default=0, minimum=0, integer=True)
    if D > settings.horizon - 1:
        raise ScenarioError(f"controller.tube.missed_steps: {D} is not allowed with controller.horizon "
                            f"{settings.horizon}: a plan shifted D steps must still cover a step, so D ≤ N − 1 = "
                            f"{settings.horizon - 1}")
    name = "controller.tube.plan_change"
    value = tube.get("plan_change", {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be a mapping from state or input symbol to bound")
    states = [tuple(symbol(n) for n in sub.state_names) for sub in subsystems]
    inputs = [tuple(symbol(n) for n in sub.input_names) for sub in subsystems]
    known = sorted({s for row in states + inputs for s in row})
    for key, bound in value.items():
        if key not in known:
            raise ScenarioError(f"{name}.{key}: unknown state or input; allowed: {', '.join(known)}")
        check_number(bound, f"{name}.{key}", minimum=0.0, strict_minimum=True)
    compatibility = PlanCompatibility(D, tuple(np.array([value.get(s, np.inf) for s in row], float) for row in states),
                                      tuple(np.array([value.get(s, np.inf) for s in row], float) for row in inputs))
    return compatibility


def build_tubes(plant_model, sample_time: float, coupling_tolerance: float, settings: ControllerSettings,
                bound: np.ndarray, compatibility: PlanCompatibility) -> TubeFamily:
    """Tubes for controller.robust = tube: W_i from simulation.disturbance_bound plus the neighbours' plan
    mismatch the message faults allow, K_i the LQR gain of the local dynamics (A_ii, B_ii) with the agent's
    Q_ii, R_ii; checked (stabilizing K_i, converging coupled tubes, non-empty tightened sets) here, at
    configuration."""
    if coupling_tolerance != 0.0:
        raise ScenarioError(f"model.coupling_tolerance: {coupling_tolerance} is not allowed with controller.robust: "
                            f"tube; it must be 0 so the nominal model is the plant (dropped couplings are not in W)")
    if not np.any(bound):
        raise ScenarioError("simulation.disturbance_bound: must be > 0 somewhere with controller.robust: tube "
                            "(it is the disturbance set W the tubes are built for)")
    system = plant_model.discrete(sample_time, coupling_tolerance=0.0)
    gains, W = [], []
    for i, sub in enumerate(system.subsystems):
        xs, us = system.state_slice(i), system.input_slice(i)
        try:
            gains.append(lqr_terminal(system.A[i][i], system.B[i][i], settings.Q[xs, xs], settings.R[us, us])[1])
        except NotStabilizable as error:
            raise ScenarioError(f"controller.robust: tube is not possible here: the ancillary gain of agent {i} "
                                f"({sub.name}) comes from its local model (A_ii, B_ii), and {error}") from None
    try:
        mismatch = compatibility.mismatch(system)
        W = [bound[system.state_slice(i)] + mismatch[i] for i in range(system.num_agents)]
        family = replace(coupled_tubes(system, gains, W), compatibility=compatibility)
        for i, sub in enumerate(system.subsystems):
            tighten(sub, family.tubes[i], gains[i], i)
    except TubeError as error:
        raise ScenarioError(f"controller.robust: tube is not possible here: {error}{mismatch_hint(system, W, bound)}") \
            from None
    return family


def mismatch_hint(system: CoupledLinearSystem, W: list[np.ndarray], bound: np.ndarray) -> str:
    """When the neighbours' plan changes (unbounded: the width of their sets) dominate W, say how to bound them."""
    if not W:
        return ""
    extra = max(float(np.max(W[i] - bound[system.state_slice(i)], initial=0.0)) for i in range(system.num_agents))
    if extra <= max(float(np.max(bound)), 0.0):
        return ""
    coupled = sorted({symbol(system.subsystems[j].input_names[c]) for i in range(system.num_agents)
                      for j in system.dynamic_neighbours(i)
                      for c in np.flatnonzero(np.any(system.B[i][j] != 0, axis=0))})
    return (f"; most of W comes from the neighbours' plan changes between iterates (up to {extra:.3g}, the width "
            f"of their sets, as nothing bounds them): bound them with controller.tube.plan_change"
            f"{' for ' + ', '.join(coupled) if coupled else ''}")




def parse_disturbance_bound(value: object, subsystems: list) -> np.ndarray:
    """Stacked per-state bounds |w| from a list in the agents' state order (all agents alike) or a mapping
    from state symbol (e.g. {v: 0.01}) to bound; absent: no disturbance."""
    name = "simulation.disturbance_bound"
    symbols = [tuple(symbol(n) for n in sub.state_names) for sub in subsystems]
    if value is None:
        return np.zeros(sum(len(s) for s in symbols))
    if isinstance(value, dict):
        known = sorted({s for row in symbols for s in row})
        unknown = [k for k in value if k not in known]
        if unknown:
            raise ScenarioError(f"{name}.{unknown[0]}: unknown state; allowed: {', '.join(known)}")
        bounds = {k: check_number(v, f"{name}.{k}", minimum=0.0) for k, v in value.items()}
        return np.array([bounds.get(s, 0.0) for row in symbols for s in row])
    rows = []
    for (entry, suffix), row in zip(agent_values(value, len(subsystems)), symbols):
        if not isinstance(entry, list) or len(entry) != len(row):
            raise ScenarioError(f"{name}{suffix}: {entry!r} is not allowed: must be [{', '.join(row)}] bounds "
                                f"(one list, one per agent, or a mapping from state to bound)")
        rows.extend(check_number(v, f"{name}{suffix}[{j}]", minimum=0.0) for j, v in enumerate(entry))
    return np.asarray(rows, float)


def scenario_path(name_or_path: str) -> Path:
    """A YAML path as given, or config/<name>.yaml of the installed package."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_dir():
            raise ScenarioError(f"scenario file {candidate} is a directory; give a YAML file")
        if not candidate.is_file():
            raise ScenarioError(f"scenario file {candidate} does not exist")
        return candidate
    for directory in config_directories():
        path = directory / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in config_directories() for p in d.glob("*.yaml")})
    raise ScenarioError(f"scenario '{name_or_path}' not found; known scenarios: {', '.join(known) or 'none'}")


def config_directories() -> list[Path]:
    """The source tree's config/ (editable and symlink installs) and the ament share directory."""
    directories = [CONFIG_DIR] if CONFIG_DIR.is_dir() else []
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory("dmpc_ros")) / "config"
        if share.is_dir() and share not in directories:
            directories.append(share)
    except Exception:  # package not in the ament index (plain pip install): source tree only
        pass
    return directories


def load_scenario(name_or_path: str) -> Scenario:
    path = scenario_path(name_or_path)
    data = read_yaml(path)
    try:
        return parse_scenario(data, source=str(path))
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None


def parse_scenario(data: object, source: str = "") -> Scenario:
    """A scenario from file data; `model` may also be a model object built in Python (e.g. a LinearNetwork),
    whose family then supplies the weights (the Python API's path: the other sections are validated alike)."""
    if not isinstance(data, dict):
        raise ScenarioError(f"the scenario must be a mapping, got {type(data).__name__}")
    with scenario_directory(source):   # CSV files the scenario names are relative to its folder
        return parse_scenario_data(data, source)


def parse_scenario_data(data: dict, source: str) -> Scenario:
    reject_unknown(data, "", {"name", "description", "model", "controller", "simulation", "network", "security",
                              "team_changes"})
    model = data.get("model")
    if model is None:
        raise ScenarioError("model: missing; a mapping is required")
    controller = section(data, "", "controller", required=True)
    if isinstance(model, dict):
        family = model_family(model.get("type"))
        reject_unknown(model, "model.", {"type", "sample_time", "coupling_tolerance"} | set(family.model_fields))
        sample_time = number(model, "model.", "sample_time", minimum=0.0, strict_minimum=True,
                             maximum=MAX_SAMPLE_TIME)
        coupling_tolerance = number(model, "model.", "coupling_tolerance", default=1e-6, minimum=0.0, maximum=1.0)
        reject_unknown(controller, "controller.", controller_fields(family))
        parts = family.parse(model, controller, sample_time)
    else:
        family = family_of(model)
        reject_unknown(controller, "controller.", controller_fields(family))
        parts = family.from_model(model)
        sample_time = float(model.sample_time)
        coupling_tolerance = float(getattr(model, "coupling_tolerance", 0.0))
    sections = {key: copy.deepcopy(data.get(key)) for key in ("name", "description", "controller", "simulation",
                                                               "network", "security", "team_changes")
                if data.get(key) is not None}
    return build_scenario(family, parts, sections, sample_time, coupling_tolerance, source)


def build_scenario(family: ModelFamily, parts: FamilyParts, sections: dict, sample_time: float,
                   coupling_tolerance: float, source: str = "") -> Scenario:
    """The common sections (controller, simulation, network) around a family's parts, with the load-time checks
    a control engineer expects: stabilizable model, non-empty sets, admissible initial state and setpoints. A linear
    algebra failure on extreme numbers (a weight of 1e308) is one ScenarioError line, not a traceback."""
    try:
        return checked_scenario(family, parts, sections, sample_time, coupling_tolerance, source)
    except np.linalg.LinAlgError as error:
        raise ScenarioError(f"controller: the design cannot be computed from this model and these weights ({error}); "
                            f"look for extreme values in the weights, limits or dynamics") from None


def checked_scenario(family: ModelFamily, parts: FamilyParts, sections: dict, sample_time: float,
                     coupling_tolerance: float, source: str = "") -> Scenario:
    controller = section(sections, "", "controller", required=True)
    M = parts.model.num_agents
    weights = controller.get("weights")
    if weights is not None:
        weights = per_agent(controller, "controller.", "weights", M, 1.0, minimum=0.0, strict_minimum=True)
    scheme = parse_algorithm(controller)
    scheme_sections = parse_scheme_sections(controller)
    settings = ControllerSettings(
        algorithm=scheme.name,
        horizon=number(controller, "controller.", "horizon", **PARAMETERS["horizon"].bounds),
        max_iterations=number(controller, "controller.", "max_iterations", default=StoppingRule.max_iterations,
                              **PARAMETERS["max_iterations"].bounds),
        tolerance=number(controller, "controller.", "tolerance", default=1e-6, **PARAMETERS["tolerance"].bounds),
        solver=choice(controller, "controller.", "solver", PARAMETERS["solver"].choices, default="daqp"),
        weights=weights,
        terminal_set=parse_flag(controller, "controller.", "terminal_set"),
        Q=parts.Q, R=parts.R, coupling_terms=parts.coupling_terms,
        robust=choice(controller, "controller.", "robust", ("nominal", "tube"), default="nominal"),
        scheme_settings=scheme.settings(scheme_sections.get(scheme.settings_section)),
    )
    settings = replace(settings, control_horizons=parse_control_horizons(controller, M, settings.horizon))
    family.check_algorithm(parts, settings.algorithm)
    if settings.terminal_set and family.time_varying_reference:
        raise ScenarioError(f"controller.terminal_set: true is not allowed for model.type {family.name}: its "
                            f"reference changes over time and a terminal set is built around one setpoint")
    if np.min(np.diag(settings.R)) <= 0:
        raise ScenarioError("controller.input_weight: must be positive definite (every diagonal entry > 0)")

    simulation = section(sections, "", "simulation")
    reject_unknown(simulation, "simulation.", {"steps", "initial_state", "disturbance_bound", "disturbance_seed",
                                               "disturbance_kind", "disturbances", "strict"})
    steps = number(simulation, "simulation.", "steps", default=50, **PARAMETERS["steps"].bounds)
    subsystems = parts.model.subsystems()
    check_nonempty_sets(subsystems)
    x0 = family.initial_state(simulation.get("initial_state", family.initial_state_default), parts, sample_time)
    check_initial_state(subsystems, x0)
    report(f"discretizing the model ({M} agents, {system_size(subsystems)} states)")
    system = parts.model.discrete(sample_time, coupling_tolerance=coupling_tolerance)
    bound = parse_disturbance_bound(simulation.get("disturbance_bound"), subsystems)
    with scenario_directory(source):
        scripted = parse_disturbances(simulation.get("disturbances"), subsystems)
    tubes = compatibility = None
    tube = section(controller, "controller.", "tube")
    if settings.robust == "tube":
        compatibility = parse_tube_faults(tube, subsystems, settings)
    problem = Problem(system, settings.horizon, nonlinear=family.nonlinear, collision=family.collision_avoidance,
                      control_horizons=settings.control_horizons,
                      tube_mode=settings.robust == "tube", compatibility=compatibility,
                      constant_reference=not family.time_varying_reference,
                      weights=None if weights is None else tuple(weights))
    check_scheme(scheme, problem, scheme_sections_given(controller, scheme))
    if settings.robust == "tube":
        report("computing the robust tubes")
        tubes = build_tubes(parts.model, sample_time, coupling_tolerance, settings, bound, compatibility)
    elif tube:
        raise ScenarioError("controller.tube: only allowed with controller.robust: tube")

    network = section(sections, "", "network")
    if "delay" in network:   # it counted negotiation iterations; a late plan now waits in simulated time
        raise ScenarioError(f"network.delay: {network['delay']!r} is not allowed: the simulated network's delay is "
                            "network.latency, in seconds per message (a plan later than the agents' iteration "
                            "timeout is replaced by a substitute, as in a ROS run)")
    reject_unknown(network, "network.", {"latency", "drop_probability", "seed", "outage_probability",
                                         "max_outage_steps", "hosts", "link_loss", "loss_model", "retransmit_delay"})
    scenario = Scenario(
        name=text(sections.get("name", Path(source).stem if source else "scenario"), "name"),
        description=text(sections.get("description", ""), "description", limit=10_000, lines=True),
        family=family, model=parts.model, sample_time=sample_time, coupling_tolerance=coupling_tolerance,
        controller=settings, steps=steps, initial_state=x0, disturbance_bound=bound,
        disturbance_seed=number(simulation, "simulation.", "disturbance_seed", default=0, minimum=0, integer=True),
        network_latency=number(network, "network.", "latency", default=0.0, minimum=0.0, maximum=3600.0),
        drop_probability=number(network, "network.", "drop_probability", default=0.0, minimum=0.0, maximum=0.99),
        network_seed=number(network, "network.", "seed", default=0, minimum=0, integer=True),
        outage_probability=number(network, "network.", "outage_probability", default=0.0, minimum=0.0, maximum=1.0),
        max_outage_steps=number(network, "network.", "max_outage_steps", default=0, minimum=0, maximum=1000,
                                integer=True),
        hosts=parse_hosts(network.get("hosts"), parts.model.num_agents),
        link_loss=number(network, "network.", "link_loss", default=0.0, minimum=0.0, maximum=0.99),
        loss_model=choice(network, "network.", "loss_model", LOSS_MODELS, default="best_effort"),
        retransmit_delay=number(network, "network.", "retransmit_delay", default=DEFAULT_RETRANSMIT_DELAY,
                                minimum=0.0, maximum=3600.0),
        disturbance_kind=choice(simulation, "simulation.", "disturbance_kind", ("uniform", "vertices"),
                                default="uniform"),
        tubes=tubes, family_settings=parts.settings, source=source, sections=sections, scripted_disturbances=scripted,
        strict=flag(simulation, "simulation.", "strict", False),
        notes=tuple(note for note in (coupled_limit_note(scheme, problem),) if note),
        security=parse_security(section(sections, "", "security"), source),
        team_changes=parse_team_changes(sections.get("team_changes"), family, parts, steps, {
            "controller.robust: tube": "the tubes are built for one team" if settings.robust == "tube" else "",
            "simulation disturbances": "their per-state layout is the initial team's"
            if np.any(bound) or scripted else ""}),
    )
    family.check_model(scenario, system)
    return scenario


def parse_hosts(value: Any, num_agents: int) -> tuple[tuple[int, ...], ...] | None:
    """network.hosts: the agents of each host, as a list of lists of agent ids or as text "0,1/2,3" (hosts split
    by /, agents by ,; the `dmpc sim --hosts` form); every agent on exactly one host. Absent: None (each agent a
    host of its own)."""
    name = "network.hosts"
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = [[int(a) for a in part.split(",")] for part in value.split("/")]
        except ValueError:
            raise ScenarioError(f"{name}: {value[:60]!r} is not allowed: must be agent ids, hosts split by / and "
                                "agents by , (e.g. 0,1/2,3)") from None
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(h, (list, tuple)) and h for h in value):
        raise ScenarioError(f"{name}: {str(value)[:60]} is not allowed: must be a non-empty list of non-empty lists "
                            "of agent ids (e.g. [[0, 1], [2, 3]])")
    try:
        where = host_map(value)
    except ValueError as error:
        raise ScenarioError(f"network.{error}") from None
    if sorted(where) != list(range(num_agents)):
        absent = sorted(set(range(num_agents)) - set(where))
        extra = sorted(set(where) - set(range(num_agents)))
        raise ScenarioError(f"{name}: {str(value)[:60]} is not allowed: every agent 0 … {num_agents - 1} must be on "
                            f"one host ({f'missing {absent}' if absent else f'no agent {extra}'})")
    return tuple(tuple(int(a) for a in h) for h in value)


def parse_flag(data: dict, path: str, key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ScenarioError(f"{path}{key}: {value!r} is not allowed: must be true or false")
    return value


def system_size(subsystems) -> int:
    return sum(sub.n_x for sub in subsystems)


def controller_fields(family: ModelFamily) -> set[str]:
    """The keys `controller:` may have: the common ones, the family's and every scheme's settings section."""
    return COMMON_CONTROLLER_FIELDS | set(family.controller_fields) | set(settings_sections())


def parse_algorithm(controller: dict) -> Scheme:
    """The scheme of controller.algorithm (ScenarioError listing the known ones, or naming a broken plugin)."""
    if controller.get("algorithm") is None:
        raise ScenarioError(f"controller.algorithm: missing; must be one of {', '.join(scheme_names())}")
    try:
        return scheme_of(controller["algorithm"])
    except ValueError as error:
        raise ScenarioError(f"controller.{error}") from None


def parse_scheme_sections(controller: dict) -> dict[str, Any]:
    """Every scheme settings section given, validated by its scheme's parser, whichever scheme runs (switching
    --algorithm to compare schemes must not need another file); section name → settings object."""
    return {name: scheme.parse_settings(section(controller, "controller.", name))
            for name, scheme in settings_sections().items() if controller.get(name) is not None}


def scheme_sections_given(controller: dict, scheme: Scheme) -> dict:
    """The scheme's own section as written (empty when it has none or it is absent)."""
    return section(controller, "controller.", scheme.settings_section) if scheme.settings_section else {}


def check_scheme(scheme: Scheme, problem: Problem, given: dict) -> None:
    """A scheme that cannot honour the problem (a shared constraint, collision planes, tube mode, a nonlinear model,
    ...) is refused with its reason and the schemes that can; so is a given setting of its section it would not
    honour."""
    reason = scheme.refusal(problem)
    if reason:
        others = ", ".join(name for name in allowed_for(problem) if name != scheme.name)
        raise ScenarioError(f"controller.algorithm: {scheme.name} is not allowed here: {reason}; allowed here: "
                            f"{others or 'none'}")
    message = scheme.check_settings(given, problem) if scheme.check_settings is not None else None
    if message:
        raise ScenarioError(message)
