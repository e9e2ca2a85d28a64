"""The scenario file format (YAML), validated once at load time.

A scenario names a model (for now the mass-spring-damper chain), the controller design and algorithm,
the simulation (steps, initial state, disturbances) and the network (delay, drops). See
dmpc_ros/config/mass_spring.yaml for an annotated example.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml
from scipy.linalg import block_diag

from ..coordination import ALGORITHMS, AdmmSettings, ControllerDesign, StoppingRule
from ..coordination.collision import CollisionAvoidance
from ..coordination.consensus import CentreConsensus, check_step_size
from ..models import CoupledLinearSystem, MassSpringChain
from ..models.formation import CentrePath, Formation, formation_metrics
from ..models.platoon import TOPOLOGIES, Platoon, SpeedProfile, platoon_metrics
from ..models.linear import CouplingTerm
from ..mpc.qp import BACKENDS
from ..mpc.terminal import admissible_target, lqr_terminal
from ..mpc.tubes import PlanCompatibility, TubeError, TubeFamily, Zonotope, coupled_tubes, tighten
from ..mpc.reference import ReferenceTrajectory
from .validation import (ScenarioError, check_number, choice, number, per_agent, reject_unknown, section,
                         weight_matrix)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
MAX_AGENTS = 1000
MAX_VEHICLES = 100


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
    position_reference: tuple[float, ...] = ()   # setpoint per mass [m] (velocity setpoint 0)
    coupling_terms: tuple[CouplingTerm, ...] = ()  # Q's couplings as PSD pair terms (bidirectional platoon, formation)
    robust: str = "nominal"                        # nominal | tube (tube-based robust DMPC)
    consensus: ConsensusSettings | None = None     # formation: agree on the centre first
    admm: AdmmSettings = AdmmSettings()

    @property
    def stopping(self) -> StoppingRule:
        return StoppingRule(self.max_iterations, self.tolerance)


TARGET_INTERIOR = 0.01   # share of each bound a terminal-set target keeps clear of it


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    model: MassSpringChain | Platoon | Formation
    sample_time: float
    coupling_tolerance: float
    controller: ControllerSettings
    steps: int
    initial_state: np.ndarray
    disturbance_bound: np.ndarray      # per state, |w| ≤ bound (zeros: none)
    disturbance_seed: int
    network_delay: int
    drop_probability: float
    network_seed: int
    outage_probability: float = 0.0             # a link is down for a whole step (every plan of it lost)
    max_outage_steps: int = 0                   # … at most this many steps in a row
    disturbance_kind: str = "uniform"           # uniform in the box | vertices (worst case: ±bound)
    tubes: TubeFamily | None = None             # robust: tube, per-agent RPI sets and ancillary gains
    speed_profile: SpeedProfile | None = None   # platoon: the leader's reference speed
    centre_path: CentrePath | None = None       # formation: the centre's path relative to its start
    source: str = field(default="", compare=False)

    @property
    def num_agents(self) -> int:
        return self.model.num_agents

    def plant(self) -> CoupledLinearSystem:
        """The simulated plant: the exact zero-order-hold discretization (no couplings dropped)."""
        return self.model.discrete(self.sample_time, coupling_tolerance=0.0)

    def prediction_model(self) -> CoupledLinearSystem:
        return self.model.discrete(self.sample_time, coupling_tolerance=self.coupling_tolerance)

    def design(self) -> ControllerDesign:
        model = self.prediction_model()
        if self.tubes is not None:   # the nominal problem: constraints tightened by the tubes
            model = replace(model, subsystems=tuple(tighten(sub, self.tubes.tubes[i], self.tubes.gains[i], i)
                                                    for i, sub in enumerate(model.subsystems)))
        reference = self.reference_trajectory(model)
        if self.controller.terminal_set:
            reference = self.admissible_reference(model, reference)
        # ADMM splits the cost by agent, so the scenario's problem (and its centralized reference) then uses
        # the separable terminal cost Σ x_i,N' P_ii x_i,N.
        collision = consensus = None
        if isinstance(self.model, Formation):
            tubes = None if self.tubes is None else tuple(Zonotope(z.G[:2]) for z in self.tubes.tubes)
            collision = CollisionAvoidance(self.model.edges, self.model.min_distance, position_tubes=tubes)
            settings = self.controller.consensus
            if settings is not None:   # the agents work relative to their agreed centre: the path from 0
                relative = ReferenceTrajectory(reference.states - self._anchor_shift(), reference.inputs)
                consensus = CentreConsensus(self.model.edges, self.model.offsets, settings.step_size, settings.rounds,
                                            relative, settings.tolerance)
        return ControllerDesign(model, self.controller.Q, self.controller.R, self.controller.horizon,
                                reference, self.controller.terminal_set,
                                separable_terminal_cost=self.controller.algorithm == "admm",
                                coupling_terms=self.controller.coupling_terms, collision=collision,
                                centre_consensus=consensus, tubes=self.tubes)

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

    def formation_anchor(self) -> np.ndarray:
        """Where the centre path starts: the average of the centres the robots' initial positions imply (the
        value the centre consensus converges to)."""
        positions = self.initial_state.reshape(-1, 4)[:, :2]
        return np.mean(positions - np.asarray(self.model.offsets), axis=0)

    def _anchor_shift(self) -> np.ndarray:
        """The formation anchor added to every robot's position (stacked state layout)."""
        return np.tile(np.r_[self.formation_anchor(), 0.0, 0.0], self.num_agents)

    def reference_trajectory(self, model: CoupledLinearSystem) -> ReferenceTrajectory:
        """The setpoints every agent knows: the platoon's ideal trajectory along the speed profile (sampled
        for the run plus one horizon of preview), or the chain's constant position setpoints."""
        if isinstance(self.model, Formation):
            states, inputs = self.model.reference(self.centre_path, self.sample_time, self.reference_length)
            return ReferenceTrajectory(states + self._anchor_shift(), inputs)
        if isinstance(self.model, Platoon):
            speed, acceleration = self.speed_profile.sample(self.sample_time, self.reference_length)
            return ReferenceTrajectory(*self.model.reference_states(speed, acceleration, self.sample_time))
        return ReferenceTrajectory.constant(*self.reference(model))

    def metrics(self, x: np.ndarray, u: np.ndarray) -> dict:
        """Scenario-specific closed-loop figures (platoon: spacing, string stability, comfort; else none)."""
        if isinstance(self.model, Platoon):
            leader_speed = self.reference_trajectory(self.prediction_model()).states[:, 0]
            return platoon_metrics(self.model, x, u, leader_speed)
        if isinstance(self.model, Formation):
            return formation_metrics(self.model, x, self.sample_time)
        return {}

    def reference(self, model: CoupledLinearSystem) -> tuple[np.ndarray, np.ndarray]:
        """Steady state (x̄, ū) for the position setpoints: x̄ = (p̄_i, 0), ū solves (I − A) x̄ = B ū."""
        x_ref = np.zeros(model.n_x)
        x_ref[0::2] = self.controller.position_reference or 0.0
        if not np.any(x_ref):
            return x_ref, np.zeros(model.n_u)
        A, B = model.full_matrices()
        u_ref, *_ = np.linalg.lstsq(B, x_ref - A @ x_ref, rcond=None)
        return x_ref, u_ref

    def disturbance(self) -> np.ndarray | None:
        """steps × n_x disturbance drawn uniformly in the box, seeded (None when the bound is zero)."""
        if not np.any(self.disturbance_bound):
            return None
        rng = np.random.default_rng(self.disturbance_seed)
        shape = (self.steps, self.disturbance_bound.size)
        draws = rng.choice([-1.0, 1.0], shape) if self.disturbance_kind == "vertices" else rng.uniform(-1.0, 1.0, shape)
        return draws * self.disturbance_bound

    def with_overrides(self, **changes) -> "Scenario":
        """A copy with controller fields (algorithm, max_iterations, ...) or top-level fields replaced."""
        controller_fields = {k: v for k, v in changes.items() if k in ControllerSettings.__dataclass_fields__}
        top = {k: v for k, v in changes.items() if k not in controller_fields}
        if "algorithm" in controller_fields:
            choice(controller_fields, "controller.", "algorithm", ALGORITHMS)
            check_model_algorithm(self.model, controller_fields["algorithm"])
            if self.tubes is not None:
                check_tube_algorithm(controller_fields["algorithm"], self.tubes.compatibility)
        return replace(self, controller=replace(self.controller, **controller_fields), **top)


def scenario_path(name_or_path: str) -> Path:
    """A YAML path as given, or config/<name>.yaml of the installed package."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
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
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML: {error}") from error
    try:
        return parse_scenario(data, source=str(path))
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None


def parse_scenario(data: object, source: str = "") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(f"the scenario must be a mapping, got {type(data).__name__}")
    reject_unknown(data, "", {"name", "description", "model", "controller", "simulation", "network"})
    model = section(data, "", "model", required=True)
    kind = choice(model, "model.", "type", MODEL_TYPES)
    reject_unknown(model, "model.", {"type", "sample_time", "coupling_tolerance"} | MODEL_FIELDS[kind])
    sample_time = number(model, "model.", "sample_time", minimum=0.0, strict_minimum=True)
    coupling_tolerance = number(model, "model.", "coupling_tolerance", default=1e-6, minimum=0.0, maximum=1.0)
    controller = section(data, "", "controller", required=True)
    reject_unknown(controller, "controller.", {"algorithm", "horizon", "max_iterations", "tolerance", "solver",
                                               "weights", "terminal_set", "admm", "robust", "tube"}
                  | CONTROLLER_FIELDS[kind])
    path = None
    if kind == "mass_spring_chain":
        plant_model = parse_chain(section(model, "model.", "masses", required=True))
        profile = None
        Q, R, extra = parse_chain_weights(controller, plant_model)
    elif kind == "formation":
        plant_model = parse_formation(section(model, "model.", "robots", required=True))
        path, profile = parse_centre_path(model.get("path")), None
        Q, R, terms = parse_formation_weights(controller, plant_model)
        centre = choice(model, "model.", "centre", ("consensus", "known"), default="consensus")
        extra = {"coupling_terms": terms, "consensus": parse_consensus(section(controller, "controller.", "consensus"),
                                                                        plant_model) if centre == "consensus" else None}
    else:
        plant_model = parse_platoon(section(model, "model.", "vehicles", required=True))
        profile = parse_speed_profile(model.get("speed_profile"), plant_model)
        Q, R, terms = parse_platoon_weights(controller, plant_model)
        extra = {"coupling_terms": terms}
    M = plant_model.num_agents
    weights = controller.get("weights")
    if weights is not None:
        weights = per_agent(controller, "controller.", "weights", M, 1.0, minimum=0.0, strict_minimum=True)
    settings = ControllerSettings(
        algorithm=choice(controller, "controller.", "algorithm", ALGORITHMS),
        horizon=number(controller, "controller.", "horizon", minimum=1, maximum=500, integer=True),
        max_iterations=number(controller, "controller.", "max_iterations", default=10, minimum=1, maximum=100000, integer=True),
        tolerance=number(controller, "controller.", "tolerance", default=1e-6, minimum=0.0),
        solver=choice(controller, "controller.", "solver", BACKENDS, default="daqp"),
        weights=weights,
        terminal_set=bool(controller.get("terminal_set", False)),
        Q=Q, R=R, admm=parse_admm(section(controller, "controller.", "admm")),
        robust=choice(controller, "controller.", "robust", ("nominal", "tube"), default="nominal"), **extra,
    )
    check_model_algorithm(plant_model, settings.algorithm)
    if settings.terminal_set and (profile is not None or path is not None):
        raise ScenarioError("controller.terminal_set: true is not allowed for a platoon or a formation: their "
                            "reference changes over time and a terminal set is built around one setpoint")
    if np.min(np.diag(settings.R)) <= 0:
        raise ScenarioError("controller.input_weight: must be positive definite (every diagonal entry > 0)")

    simulation = section(data, "", "simulation")
    reject_unknown(simulation, "simulation.", {"steps", "initial_state", "disturbance_bound", "disturbance_seed",
                                               "disturbance_kind"})
    steps = number(simulation, "simulation.", "steps", default=50, minimum=1, maximum=1_000_000, integer=True)
    subsystems = plant_model.subsystems()
    if isinstance(plant_model, Formation):
        x0 = parse_rows(simulation.get("initial_state"), "simulation.initial_state", M, ("px", "py", "vx", "vy"),
                        noun="lists (one per agent)")
    elif isinstance(plant_model, Platoon):
        x0 = parse_platoon_initial_state(simulation.get("initial_state", "equilibrium"), plant_model, profile,
                                         sample_time)
    else:
        x0 = parse_rows(simulation.get("initial_state"), "simulation.initial_state", M, ("position", "velocity"),
                        noun="pairs (one per agent)")
    bound = parse_disturbance_bound(simulation.get("disturbance_bound"), subsystems)
    tubes = None
    tube = section(controller, "controller.", "tube")
    if settings.robust == "tube":
        compatibility = parse_tube_faults(tube, subsystems, settings)
        tubes = build_tubes(plant_model, sample_time, coupling_tolerance, settings, bound, compatibility)
    elif tube:
        raise ScenarioError("controller.tube: only allowed with controller.robust: tube")

    network = section(data, "", "network")
    reject_unknown(network, "network.", {"delay", "drop_probability", "seed", "outage_probability", "max_outage_steps"})
    return Scenario(
        name=str(data.get("name", Path(source).stem if source else "scenario")),
        description=str(data.get("description", "")),
        model=plant_model, sample_time=sample_time, coupling_tolerance=coupling_tolerance, controller=settings,
        steps=steps, initial_state=x0, disturbance_bound=bound,
        disturbance_seed=number(simulation, "simulation.", "disturbance_seed", default=0, minimum=0, integer=True),
        network_delay=number(network, "network.", "delay", default=0, minimum=0, maximum=1000, integer=True),
        drop_probability=number(network, "network.", "drop_probability", default=0.0, minimum=0.0, maximum=0.99),
        network_seed=number(network, "network.", "seed", default=0, minimum=0, integer=True),
        outage_probability=number(network, "network.", "outage_probability", default=0.0, minimum=0.0, maximum=1.0),
        max_outage_steps=number(network, "network.", "max_outage_steps", default=0, minimum=0, maximum=1000,
                                integer=True),
        disturbance_kind=choice(simulation, "simulation.", "disturbance_kind", ("uniform", "vertices"), default="uniform"),
        tubes=tubes, speed_profile=profile, centre_path=path, source=source,
    )


MODEL_TYPES = ("mass_spring_chain", "platoon", "formation")
MODEL_FIELDS = {"mass_spring_chain": {"masses"}, "platoon": {"vehicles", "speed_profile"},
                "formation": {"robots", "path", "centre"}}
CONTROLLER_FIELDS = {"mass_spring_chain": {"state_weight", "input_weight", "position_reference"},
                     "formation": {"formation_weight", "tracking_weight", "velocity_weight", "input_weight", "consensus"},
                     "platoon": {"spacing_weight", "speed_weight", "acceleration_weight", "input_weight",
                                 "coupling_weight"}}


def parse_chain_weights(controller: dict, chain: MassSpringChain) -> tuple[np.ndarray, np.ndarray, dict]:
    """Q, R (per-mass diagonals or matrices) and the position setpoints of the mass-spring chain."""
    M = chain.num_masses
    Q = block_diag(*[weight_matrix(q, f"controller.state_weight{suffix}", 2)
                     for q, suffix in agent_values(controller.get("state_weight", [1.0, 0.1]), M)])
    R = block_diag(*[weight_matrix(r, f"controller.input_weight{suffix}", 1)
                     for r, suffix in agent_values(controller.get("input_weight", [0.1]), M)])
    targets = tuple(per_agent(controller, "controller.", "position_reference", M, 0.0))
    for i, (target, limit) in enumerate(zip(targets, chain.position_limit)):
        if abs(target) > limit:
            raise ScenarioError(f"controller.position_reference[{i}]: {target} is not allowed: outside the position "
                                f"limit ±{limit} of mass {i}")
    return Q, R, {"position_reference": targets}


def parse_platoon(vehicles: dict) -> Platoon:
    path = "model.vehicles."
    reject_unknown(vehicles, path, {"count", "time_constant", "acceleration_min", "acceleration_max", "jerk_limit",
                                    "speed_max", "min_gap", "standstill_gap", "time_headway", "topology"})
    M = number(vehicles, path, "count", minimum=2, maximum=MAX_VEHICLES, integer=True)
    positive = dict(minimum=0.0, strict_minimum=True)
    platoon = Platoon(
        time_constant=tuple(per_agent(vehicles, path, "time_constant", M, 0.4, minimum=0.01)),
        acceleration_min=tuple(per_agent(vehicles, path, "acceleration_min", M, -4.0, maximum=-0.01)),
        acceleration_max=tuple(per_agent(vehicles, path, "acceleration_max", M, 2.0, **positive)),
        jerk_limit=tuple(per_agent(vehicles, path, "jerk_limit", M, 5.0, **positive)),
        speed_max=number(vehicles, path, "speed_max", default=40.0, **positive),
        min_gap=number(vehicles, path, "min_gap", default=2.0, minimum=0.0),
        standstill_gap=number(vehicles, path, "standstill_gap", default=5.0, minimum=0.0),
        time_headway=number(vehicles, path, "time_headway", default=0.6, minimum=0.0, maximum=10.0),
        topology=choice(vehicles, path, "topology", TOPOLOGIES, default="predecessor_follower"),
    )
    if platoon.standstill_gap < platoon.min_gap:
        raise ScenarioError(f"{path}standstill_gap: {platoon.standstill_gap} is not allowed: must be ≥ min_gap "
                            f"{platoon.min_gap} (the desired gap would violate the minimum gap)")
    return platoon


def parse_platoon_weights(controller: dict, platoon: Platoon) -> tuple[np.ndarray, np.ndarray, tuple]:
    path = "controller."
    nonnegative = dict(minimum=0.0)
    weights = dict(
        spacing=number(controller, path, "spacing_weight", default=1.0, **nonnegative),
        speed=number(controller, path, "speed_weight", default=1.0, minimum=0.0, strict_minimum=True),
        acceleration=number(controller, path, "acceleration_weight", default=0.1, **nonnegative),
        input_weight=number(controller, path, "input_weight", default=0.1, minimum=0.0, strict_minimum=True),
        coupling=number(controller, path, "coupling_weight", default=0.0, **nonnegative),
    )
    if weights["coupling"] > 0 and platoon.topology != "bidirectional":
        raise ScenarioError(f"{path}coupling_weight: {weights['coupling']} is not allowed with topology "
                            f"{platoon.topology}: only the bidirectional topology couples neighbours' spacing errors")
    return platoon.weights(**weights)


def parse_speed_profile(value: object, platoon: Platoon) -> SpeedProfile:
    """[[t, v], ...] knots, times strictly increasing, speeds within [0, speed_max], slopes every vehicle can
    follow (within its acceleration limits)."""
    name = "model.speed_profile"
    if not isinstance(value, list) or not value or not all(isinstance(k, list) and len(k) == 2 for k in value):
        raise ScenarioError(f"{name}: {value!r} is not allowed: give [[time s, speed m/s], ...] knots")
    times = [check_number(k[0], f"{name}[{i}][0]", minimum=0.0) for i, k in enumerate(value)]
    speeds = [check_number(k[1], f"{name}[{i}][1]", minimum=0.0, maximum=platoon.speed_max) for i, k in enumerate(value)]
    a_min, a_max = max(platoon.acceleration_min), min(platoon.acceleration_max)
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise ScenarioError(f"{name}[{i}][0]: {times[i]} is not allowed: times must increase strictly")
        slope = (speeds[i] - speeds[i - 1]) / (times[i] - times[i - 1])
        if not a_min <= slope <= a_max:
            raise ScenarioError(f"{name}[{i}]: slope {slope:.3g} m/s² is not allowed: every vehicle must be able "
                                f"to follow it, i.e. within [{a_min}, {a_max}] m/s²")
    return SpeedProfile(tuple(times), tuple(speeds))


def parse_platoon_initial_state(value: object, platoon: Platoon, profile: SpeedProfile,
                                sample_time: float) -> np.ndarray:
    """'equilibrium' (the ideal platoon at the profile's initial speed) or one list per vehicle: [v, a] for the
    leader, [gap, v, a] for followers; gaps must respect the minimum gap."""
    name = "simulation.initial_state"
    if value == "equilibrium":
        speed, _ = profile.sample(sample_time, 1)
        return platoon.reference_states(speed, np.zeros(1), sample_time)[0][0]
    M = platoon.num_agents
    if not isinstance(value, list) or len(value) != M:
        raise ScenarioError(f"{name}: {value!r} is not allowed: 'equilibrium' or {M} lists "
                            f"([v, a] for the leader, then [gap, v, a] per follower)")
    rows = []
    for i, entry in enumerate(value):
        size = platoon.state_size(i)
        if not isinstance(entry, list) or len(entry) != size:
            raise ScenarioError(f"{name}[{i}]: {entry!r} is not allowed: must be {'[v, a]' if i == 0 else '[gap, v, a]'}")
        rows.extend(check_number(v, f"{name}[{i}][{j}]") for j, v in enumerate(entry))
        if i > 0 and entry[0] < platoon.min_gap:
            raise ScenarioError(f"{name}[{i}][0]: gap {entry[0]} is not allowed: below the minimum gap {platoon.min_gap} m")
    return np.asarray(rows, float)


def parse_tube_faults(tube: dict, subsystems: list, settings: ControllerSettings) -> PlanCompatibility:
    """controller.tube: missed_steps D (a neighbour plan may be late or lost for up to D steps) and plan_change,
    a mapping from state or input symbol to the compatibility bound δ (absent symbols: unconstrained)."""
    reject_unknown(tube, "controller.tube.", {"missed_steps", "plan_change"})
    D = number(tube, "controller.tube.", "missed_steps", default=0, minimum=0, maximum=settings.horizon - 1,
               integer=True)
    name = "controller.tube.plan_change"
    value = tube.get("plan_change", {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be a mapping from state or input symbol to bound")
    states = [tuple(n.rsplit("_", 1)[0] for n in sub.state_names) for sub in subsystems]
    inputs = [tuple(n.rsplit("_", 1)[0] for n in sub.input_names) for sub in subsystems]
    known = sorted({s for row in states + inputs for s in row})
    for key, bound in value.items():
        if key not in known:
            raise ScenarioError(f"{name}.{key}: unknown state or input; allowed: {', '.join(known)}")
        check_number(bound, f"{name}.{key}", minimum=0.0, strict_minimum=True)
    compatibility = PlanCompatibility(D, tuple(np.array([value.get(s, np.inf) for s in row], float) for row in states),
                                      tuple(np.array([value.get(s, np.inf) for s in row], float) for row in inputs))
    check_tube_algorithm(settings.algorithm, compatibility)
    return compatibility


def check_model_algorithm(model, algorithm: str) -> None:
    """A formation's collision half-planes come from the neighbours' plans: decentralized agents have none."""
    if isinstance(model, Formation) and algorithm == "decentralized":
        raise ScenarioError("controller.algorithm: decentralized is not allowed for a formation: without the "
                            "neighbours' plans no agent can keep the robots apart (use noncooperative, jacobi, "
                            "gauss_seidel or admm)")


def check_tube_algorithm(algorithm: str, compatibility: PlanCompatibility) -> None:
    """ADMM agents keep copies of their neighbours instead of shifted plans and add no compatibility rows: the
    fault settings would promise a bound they do not enforce."""
    if algorithm == "admm" and (compatibility.missed_steps or any(
            np.any(np.isfinite(c)) for c in compatibility.state_change + compatibility.input_change)):
        raise ScenarioError(f"controller.algorithm: admm is not allowed with controller.tube.missed_steps "
                            f"{compatibility.missed_steps} / plan_change: its copies of a neighbour are not shifted "
                            "plans and it adds no compatibility rows (use missed_steps 0 and no plan_change)")


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
        gains.append(lqr_terminal(system.A[i][i], system.B[i][i], settings.Q[xs, xs], settings.R[us, us])[1])
    try:
        mismatch = compatibility.mismatch(system)
        W = [bound[system.state_slice(i)] + mismatch[i] for i in range(system.num_agents)]
        family = replace(coupled_tubes(system, gains, W), compatibility=compatibility)
        for i, sub in enumerate(system.subsystems):
            tighten(sub, family.tubes[i], gains[i], i)
    except TubeError as error:
        raise ScenarioError(f"controller.robust: tube is not possible here: {error}") from None
    return family


@dataclass(frozen=True)
class ConsensusSettings:
    step_size: float
    rounds: int
    tolerance: float


def parse_formation(robots: dict) -> Formation:
    path = "model.robots."
    reject_unknown(robots, path, {"count", "shape", "shape_after", "switch_time", "graph", "speed_limit",
                                  "acceleration_limit", "min_distance"})
    M = number(robots, path, "count", minimum=2, maximum=MAX_AGENTS, integer=True)
    shape = parse_rows(robots.get("shape"), f"{path}shape", M, ("x", "y")).reshape(M, 2)
    after = parse_rows(robots.get("shape_after", robots.get("shape")), f"{path}shape_after", M, ("x", "y")).reshape(M, 2)
    edges = parse_graph(robots.get("graph", "ring"), f"{path}graph", M)
    formation = Formation(
        offsets=tuple(map(tuple, shape)), offsets_after=tuple(map(tuple, after)),
        switch_time=number(robots, path, "switch_time", default=float("inf"), minimum=0.0), edges=edges,
        speed_limit=number(robots, path, "speed_limit", default=1.0, minimum=0.0, strict_minimum=True),
        acceleration_limit=number(robots, path, "acceleration_limit", default=1.0, minimum=0.0, strict_minimum=True),
        min_distance=number(robots, path, "min_distance", default=0.5, minimum=0.0),
    )
    for name, offsets in (("shape", shape), ("shape_after", after)):
        for a, b in edges:
            if np.linalg.norm(offsets[a] - offsets[b]) < formation.min_distance:
                raise ScenarioError(f"{path}{name}: robots {a} and {b} are {np.linalg.norm(offsets[a] - offsets[b]):.3g} m "
                                    f"apart in the formation, closer than min_distance {formation.min_distance} m")
    return formation


def parse_graph(value: object, name: str, count: int) -> tuple[tuple[int, int], ...]:
    """'ring', 'complete', 'path' or a list of [i, j] edges (0 ≤ i, j < count, i ≠ j)."""
    if value == "ring":
        return tuple(sorted({tuple(sorted((i, (i + 1) % count))) for i in range(count)}))
    if value == "path":
        return tuple((i, i + 1) for i in range(count - 1))
    if value == "complete":
        return tuple((i, j) for i in range(count) for j in range(i + 1, count))
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{name}: {value!r} is not allowed: ring, path, complete or a list of [i, j] edges")
    edges = set()
    for e, edge in enumerate(value):
        if not (isinstance(edge, list) and len(edge) == 2 and all(isinstance(v, int) and 0 <= v < count for v in edge)
                and edge[0] != edge[1]):
            raise ScenarioError(f"{name}[{e}]: {edge!r} is not allowed: must be [i, j] with two different robots in 0..{count - 1}")
        edges.add(tuple(sorted(edge)))
    return tuple(sorted(edges))


def parse_centre_path(value: object) -> CentrePath:
    name = "model.path"
    if value is None:
        return CentrePath(((0.0, 0.0, 0.0),))
    rows = parse_rows(value, name, len(value) if isinstance(value, list) else -1, ("t", "x", "y")).reshape(-1, 3)
    if rows[0, 0] != 0.0 or rows[0, 1] != 0.0 or rows[0, 2] != 0.0:
        raise ScenarioError(f"{name}[0]: {value[0]!r} is not allowed: the path starts at [0, 0, 0] (time 0 at the "
                            f"agreed centre); later knots are relative to it")
    for i in range(1, rows.shape[0]):
        if rows[i, 0] <= rows[i - 1, 0]:
            raise ScenarioError(f"{name}[{i}][0]: {rows[i, 0]} is not allowed: times must increase strictly")
    return CentrePath(tuple(map(tuple, rows)))


def parse_formation_weights(controller: dict, formation: Formation) -> tuple[np.ndarray, np.ndarray, tuple]:
    path = "controller."
    return formation.weights(
        formation=number(controller, path, "formation_weight", default=1.0, minimum=0.0),
        tracking=number(controller, path, "tracking_weight", default=0.1, minimum=0.0),
        velocity=number(controller, path, "velocity_weight", default=0.5, minimum=0.0, strict_minimum=True),
        input_weight=number(controller, path, "input_weight", default=0.1, minimum=0.0, strict_minimum=True),
    )


def parse_consensus(consensus: dict, formation: Formation) -> ConsensusSettings:
    path = "controller.consensus."
    reject_unknown(consensus, path, {"step_size", "rounds", "tolerance"})
    settings = ConsensusSettings(
        step_size=number(consensus, path, "step_size", default=0.2, minimum=0.0, strict_minimum=True),
        rounds=number(consensus, path, "rounds", default=60, minimum=1, maximum=10000, integer=True),
        tolerance=number(consensus, path, "tolerance", default=1e-6, minimum=0.0, strict_minimum=True))
    try:
        check_step_size(formation.num_agents, formation.edges, settings.step_size)
    except ValueError as error:
        raise ScenarioError(f"{path}step_size: {error}") from None
    return settings


def parse_rows(value: object, name: str, count: int, fields: tuple[str, ...], noun: str = "lists") -> np.ndarray:
    """`count` lists of len(fields) numbers, stacked into one vector."""
    if value is None:
        raise ScenarioError(f"{name}: missing; give {count} [{', '.join(fields)}] {noun}")
    if not isinstance(value, list) or len(value) != count:
        raise ScenarioError(f"{name}: {value!r} is not allowed: expected {count} [{', '.join(fields)}] {noun}")
    rows = []
    for i, entry in enumerate(value):
        if not isinstance(entry, list) or len(entry) != len(fields):
            raise ScenarioError(f"{name}[{i}]: {entry!r} is not allowed: must be [{', '.join(fields)}]")
        rows.extend(check_number(v, f"{name}[{i}][{j}]") for j, v in enumerate(entry))
    return np.asarray(rows, float)


def parse_disturbance_bound(value: object, subsystems: list) -> np.ndarray:
    """Stacked per-state bounds |w| from a list in the agents' state order (all agents alike) or a mapping
    from state symbol (e.g. {v: 0.01}) to bound; absent: no disturbance."""
    name = "simulation.disturbance_bound"
    symbols = [tuple(n.rsplit("_", 1)[0] for n in sub.state_names) for sub in subsystems]
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


def parse_admm(admm: dict) -> AdmmSettings:
    reject_unknown(admm, "controller.admm.", {"penalty", "over_relaxation", "residual_balancing"})
    balancing = admm.get("residual_balancing", False)
    if not isinstance(balancing, bool):
        raise ScenarioError(f"controller.admm.residual_balancing: {balancing!r} is not allowed: must be true or false")
    return AdmmSettings(
        penalty=number(admm, "controller.admm.", "penalty", default=0.3, minimum=0.0, strict_minimum=True),
        over_relaxation=number(admm, "controller.admm.", "over_relaxation", default=1.6, minimum=1.0, maximum=1.99),
        residual_balancing=balancing,
    )


def agent_values(value: object, count: int) -> list[tuple[object, str]]:
    """One value for every agent, or `per_agent: [...]` with exactly one value per agent."""
    if isinstance(value, dict):
        reject_unknown(value, "", {"per_agent"})
        values = value.get("per_agent")
        if not isinstance(values, list) or len(values) != count:
            raise ScenarioError(f"per_agent: expected a list of {count} entries (one per agent), got {values!r}")
        return [(v, f".per_agent[{i}]") for i, v in enumerate(values)]
    return [(value, "")] * count


def parse_chain(masses: dict) -> MassSpringChain:
    path = "model.masses."
    reject_unknown(masses, path, {"count", "mass", "spring_to_next", "damper_to_next", "spring_to_wall",
                                  "damper_to_wall", "force_limit", "position_limit", "velocity_limit",
                                  "net_force_limit"})
    M = number(masses, path, "count", minimum=1, maximum=MAX_AGENTS, integer=True)
    positive = dict(minimum=0.0, strict_minimum=True)
    nonnegative = dict(minimum=0.0)
    ends = [1.0 if i in (0, M - 1) else 0.0 for i in range(M)]
    return MassSpringChain(
        mass=tuple(per_agent(masses, path, "mass", M, 1.0, **positive)),
        spring_to_next=tuple(per_agent(masses, path, "spring_to_next", M, 1.0, **nonnegative)),
        damper_to_next=tuple(per_agent(masses, path, "damper_to_next", M, 0.1, **nonnegative)),
        spring_to_wall=tuple(per_agent(masses, path, "spring_to_wall", M, ends, **nonnegative)
                             if "spring_to_wall" in masses else ends),
        damper_to_wall=tuple(per_agent(masses, path, "damper_to_wall", M, 0.0, **nonnegative)),
        force_limit=tuple(per_agent(masses, path, "force_limit", M, float("inf"), **positive)),
        position_limit=tuple(per_agent(masses, path, "position_limit", M, float("inf"), **positive)),
        velocity_limit=tuple(per_agent(masses, path, "velocity_limit", M, float("inf"), **positive)),
        net_force_limit=number(masses, path, "net_force_limit", default=float("inf"), **positive),
    )
