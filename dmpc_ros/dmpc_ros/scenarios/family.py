"""Model families: the plugin seam of the scenario format.

A family turns its part of a scenario (the `model:` section and its own `controller:` fields) into a plant
model, weights and the family's own settings, and answers what the common scenario code asks of it: the
reference, the initial state, the design's extras, its metrics and its plots. Families are found by name
(`model.type`): the modules of `dmpc_ros.families` and the Python entry points of group `dmpc_ros.models`,
so a user's package adds one without editing dmpc_ros. Nothing here knows any family.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..coordination import ControllerDesign
from ..models.layout import PlanarLayout
from ..models.linear import CoupledLinearSystem, CouplingTerm, Subsystem
from ..models.robot import UnicycleBase
from ..mpc.reference import ReferenceTrajectory
from ..mpc.terminal import NotStabilizable, check_stabilizable
from ..mpc.tubes import TubeFamily
from ..plugins import discover
from ..progress import report
from .checks import check_reference
from .validation import ScenarioError

ENTRY_POINT_GROUP = "dmpc_ros.models"
BUILTIN_PACKAGE = "dmpc_ros.families"


class PlantModel(Protocol):
    """What the common code needs from a family's model object."""

    @property
    def num_agents(self) -> int: ...

    def subsystems(self) -> list[Subsystem]: ...

    def discrete(self, sample_time: float, coupling_tolerance: float = ...) -> CoupledLinearSystem: ...


class ScenarioView(Protocol):
    """What a family's hooks read of the scenario they are given (schema.Scenario; declared here, below schema,
    because schema's scenarios hold their family)."""

    name: str
    model: Any                      # the family's own model object (FamilyParts.model)
    sample_time: float
    steps: int
    initial_state: np.ndarray
    controller: Any                 # schema.ControllerSettings: algorithm, horizon, Q, R, terminal_set, robust ...
    tubes: TubeFamily | None
    family_settings: Any            # FamilyParts.settings
    sections: dict                  # controller/simulation/network as given

    @property
    def num_agents(self) -> int: ...

    @property
    def reference_length(self) -> int: ...

    def plant(self) -> Any: ...

    def prediction_model(self) -> CoupledLinearSystem: ...


@dataclass(frozen=True)
class FamilyParts:
    """What a family's parser returns: the model, the plant-wide weights (with Q's couplings as PSD pair
    terms, which ADMM needs) and the family's own settings (a setpoint, a speed profile, a path ...)."""

    model: Any
    Q: np.ndarray
    R: np.ndarray
    coupling_terms: tuple[CouplingTerm, ...] = ()
    settings: Any = None


@dataclass(frozen=True)
class DesignExtras:
    """Family-specific parts of the controller design (formation: collision planes and the centre consensus)."""

    collision: Any = None
    centre_consensus: Any = None


class ModelFamily(ABC):
    """One `model.type`. Subclasses set `name`, the fields they read and implement the hooks."""

    name: str = ""
    model_fields: frozenset[str] = frozenset()        # keys of `model:` besides type, sample_time, coupling_tolerance
    controller_fields: frozenset[str] = frozenset()   # the family's own keys of `controller:` (weights, setpoints)
    time_varying_reference: bool = False              # True: no terminal set (it is built around one setpoint)
    initial_state_default: object = None              # simulation.initial_state when absent (None: required)
    nonlinear: bool = False             # its design is a NonlinearDesign: a scheme needs a nonlinear builder
    collision_avoidance: bool = False   # its design keeps agents apart by half-planes from the neighbours' plans

    @abstractmethod
    def parse(self, model: dict, controller: dict, sample_time: float) -> FamilyParts:
        """The model section (validated; errors name the field) and the family's controller fields."""

    @abstractmethod
    def initial_state(self, value: object, parts: FamilyParts, sample_time: float) -> np.ndarray:
        """Stacked x(0) from `simulation.initial_state`."""

    def from_model(self, model: object) -> FamilyParts:
        """Parts for a model object built in Python (families that offer a Python API override this)."""
        raise ScenarioError(f"model.type {self.name}: this family is configured from a scenario file only")

    def reference(self, scenario: ScenarioView, system: CoupledLinearSystem) -> ReferenceTrajectory:
        """The setpoints every agent knows (default: regulate to the origin)."""
        return ReferenceTrajectory.constant(np.zeros(system.n_x), np.zeros(system.n_u))

    def design_extras(self, scenario: ScenarioView, reference: ReferenceTrajectory) -> DesignExtras:
        return DesignExtras()

    def check_model(self, scenario: ScenarioView, system: CoupledLinearSystem) -> None:
        """Load-time checks of the prediction model and the reference (ScenarioError naming the field): a linear
        model must be stabilizable and detectable, its reference inside the sets and, if constant, a steady state."""
        report("checking stabilizability and detectability")
        try:
            check_stabilizable(*system.full_matrices(), scenario.controller.Q,
                               [name for sub in system.subsystems for name in sub.state_names])
        except NotStabilizable as error:
            raise ScenarioError(f"model: {error}") from None
        check_reference(system, self.reference(scenario, system))

    def controller_design(self, scenario: ScenarioView, design: ControllerDesign):
        """The design the controllers run (default: the linear design itself; a nonlinear family wraps it)."""
        return design

    def plant(self, scenario: ScenarioView):
        """The simulated plant (default: the exact discretization of the model, no couplings dropped)."""
        return scenario.model.discrete(scenario.sample_time, coupling_tolerance=0.0)

    def check_algorithm(self, scenario_parts: FamilyParts, algorithm: str) -> None:
        """Raise ScenarioError (naming controller.algorithm) if the family cannot run `algorithm` for a reason of
        its own (what schemes honour is theirs to say: the traits above reach their checks through
        coordination.scheme.Problem)."""

    def metrics(self, scenario: ScenarioView, x: np.ndarray, u: np.ndarray) -> dict:
        """Family-specific closed-loop figures for summary.json and the table; a `constraint_violation` entry (of
        constraints the plant's sets do not hold, e.g. collisions) counts in max_constraint_violation too."""
        return {}

    def layout(self, scenario: ScenarioView) -> PlanarLayout:
        """Where the agents are in the map frame, for the nodes' Path and MarkerArray topics (default: agent i at
        x = i m, its first state on the y axis)."""
        return PlanarLayout.generic([s.n_x for s in scenario.model.subsystems()])

    def robot_base(self, scenario: ScenarioView) -> UnicycleBase | None:
        """How an agent in robot mode maps a robot's pose and velocity command to its state and input (a
        models.robot.UnicycleBase); None: the family's subsystems are not robot bases."""
        return None

    def plots(self, scenario: ScenarioView, result: Any, directory: Path) -> list[Path]:
        """Family-specific PNGs beyond the generic states/inputs and convergence plots."""
        return []

    # -- plug-and-play (team_changes:, scenarios/team_changes.py; the rules: coordination/team_change.py) -------
    member_noun: str = "agent"   # what the one-line reasons call a member ("vehicle", "robot")

    def parse_joiner(self, entry: dict, where: str, parts: FamilyParts) -> tuple[Any, np.ndarray]:
        """(the joiner's own parameters, its state when it joins) from a `team_changes[i].join` mapping, validated
        (ScenarioError naming `where`); default: the family has no team changes."""
        raise ScenarioError(f"{where}: not allowed for model.type {self.name}: its members cannot join or leave a "
                            f"running team")

    def leave_refusal(self, parts: FamilyParts, index: int) -> str | None:
        """Why agent `index` may not leave (None: it may); default: the family has no team changes."""
        return f"model.type {self.name}: its members cannot join or leave a running team"

    def shifted(self, scenario: ScenarioView, elapsed: float) -> FamilyParts:
        """The scenario's parts with its references moved on by `elapsed` seconds (a team re-formed at that time
        starts its own step 0 there)."""
        raise ScenarioError(f"model.type {self.name}: its members cannot join or leave a running team")

    def team_change(self, scenario: ScenarioView, index: int, change: Any, x: np.ndarray) -> tuple[
            FamilyParts, np.ndarray]:
        """(parts, stacked state) of the team after `change` (a coordination.team_change.TeamChange) at the
        scenario's step 0: a joiner takes agent index `index` (the current count), a leaver is agent `index`; the
        coupling graph, predecessor links and references are re-formed here."""
        raise ScenarioError(f"model.type {self.name}: its members cannot join or leave a running team")

    def change_metrics(self, scenario: ScenarioView, x: np.ndarray, u: np.ndarray, source: int | None) -> dict:
        """Figures of the stretch after a change (`source`: the agent the change disturbs first, or None)."""
        return self.metrics(scenario, x, u)


_FAMILIES: dict[str, ModelFamily] = {}
_BROKEN: dict[str, str] = {}   # entry point name → why its plugin failed to import


def register_family(family: ModelFamily) -> ModelFamily:
    """Add a family by its name (also how tests register one in-process); a second one of a name is refused."""
    if not isinstance(family, ModelFamily) or not family.name:
        raise TypeError(f"{family!r} is not a named ModelFamily")
    known = _FAMILIES.get(family.name)
    if known is not None and type(known) is not type(family):
        raise ValueError(f"model family '{family.name}' is registered twice: {type(known).__module__} and "
                         f"{type(family).__module__}")
    _FAMILIES[family.name] = family
    return family


@cache
def _load() -> None:
    """Once per process: the built-in families (modules of dmpc_ros.families with a FAMILY), then the entry points
    (a family object or its class)."""
    _BROKEN.update(discover(BUILTIN_PACKAGE, "FAMILY", ENTRY_POINT_GROUP,
                            lambda found: register_family(found() if isinstance(found, type) else found)))


def family_names() -> tuple[str, ...]:
    _load()
    return tuple(sorted(_FAMILIES))


def model_family(name: object) -> ModelFamily:
    """The family of `model.type` = name, or a ScenarioError listing the known ones."""
    _load()
    if isinstance(name, str) and name in _FAMILIES:
        return _FAMILIES[name]
    if isinstance(name, str) and name in _BROKEN:
        raise ScenarioError(f"model.type: '{name}' is registered but its plugin failed to load ({_BROKEN[name]})")
    raise ScenarioError(f"model.type: {name!r} is not allowed: must be one of {', '.join(family_names())} "
                        f"(more through entry points of group {ENTRY_POINT_GROUP})")


def family_of(model: object) -> ModelFamily:
    """The family that builds scenarios from a Python model object (its class names it: `family = '<name>'`)."""
    name = getattr(model, "family", None)
    if not isinstance(name, str):
        raise ScenarioError(f"model: a {type(model).__name__} is not allowed: give a mapping (a scenario file's "
                            f"model section) or a model object with a `family` attribute, e.g. dmpc_ros.LinearNetwork")
    return model_family(name)
