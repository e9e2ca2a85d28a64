"""Coordination schemes: the plugin seam of the controller (`controller.algorithm`).

A scheme is one `Scheme` object: its name, the parser of its own settings section (`controller.<section>`), its
applicability check (which problems it can honour, with the reason when it cannot), its builders (one agent of a
linear design, one agent of a nonlinear design) and the counters its agents report. Schemes are found by name: the
modules of `dmpc_ros.schemes` that define `SCHEMES` (a tuple of Scheme), then the Python entry points of group
`dmpc_ros.schemes` (a Scheme or a tuple of them), so a user's package adds one without editing dmpc_ros; a plugin
that fails to import is named when its scheme is asked for. Nothing here, and nothing that uses the registry,
knows any scheme by name.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ..models.linear import CoupledLinearSystem
from ..mpc.input_parametrization import ControlHorizons
from ..mpc.tubes import PlanCompatibility, TubeFamily
from ..plugins import discover
from .base import StoppingRule

ENTRY_POINT_GROUP = "dmpc_ros.schemes"
BUILTIN_PACKAGE = "dmpc_ros.schemes"


@dataclass(frozen=True)
class Problem:
    """What a scheme's applicability check sees of a problem: at load time from the scenario, at build time from
    the design (`ControllerDesign.problem`, `NonlinearDesign.problem`), so both refuse alike."""

    system: CoupledLinearSystem          # the prediction model (a nonlinear model's linearization)
    horizon: int
    nonlinear: bool = False              # a NonlinearNetwork: the scheme needs a nonlinear builder
    collision: bool = False              # agents keep apart by half-planes from the neighbours' plans, every step
    tube_mode: bool = False              # robust: tightened nominal problem, ancillary feedback (controller.robust)
    compatibility: PlanCompatibility | None = None   # tube mode's plan-compatibility bounds (controller.tube)
    constant_reference: bool = True
    weights: tuple[float, ...] | None = None   # controller.weights (convex-combination weights), None: structural
    control_horizons: ControlHorizons | None = None   # controller.control_horizon and control_tail


@dataclass(frozen=True)
class AgentRequest:
    """What a scheme's builder gets: the design (already set up for the scheme), the agent and the run's settings;
    `settings` is the scheme's own settings object (what its parser returned), opaque to everything else."""

    design: Any                          # a ControllerDesign or a NonlinearDesign
    agent_id: int
    stopping: StoppingRule
    backend: str = "daqp"
    weights: list[float] | None = None
    settings: Any = None
    tubes: TubeFamily | None = None      # inner agents of tube mode: the plan-compatibility bounds


@dataclass(frozen=True)
class OfflinePart:
    """A scheme's work before a run (the explicit schemes' laws): `build(design)` computes and stores it (`dmpc
    explicit build`); `load(design, settings, source)` returns the design with it, or refuses with the command."""

    build: Callable[[Any], Any]
    load: Callable[[Any, Any, str], Any]


# How a scheme keeps a state limit its neighbours drive (models/coupled_limits.py), said at load time
COUPLED_LIMITS = {
    "every_iterate": "kept by every iterate (each agent keeps every row its inputs affect, from a feasible start)",
    "penalty": "kept as an exact penalty: the fixed point keeps it when the plant can, a violation is priced, "
               "reported and sent to the driving neighbour",
    "at_convergence": "kept only once the agents agree: an iterate cut at the iteration limit may violate it",
    "not_kept": "not kept: each agent keeps its own rows with its neighbours' plans frozen, and a neighbour may "
                "push the state over its limit whatever the agent does",
}


@dataclass(frozen=True)
class Scheme:
    """One coordination scheme (module docstring). Hooks left None mean: no settings, no check, no such agent."""

    name: str
    summary: str                                                  # one line, for listings
    build_linear: Callable[[AgentRequest], Any] | None = None     # an Agent (the centralized scheme: its controller)
    build_nonlinear: Callable[[AgentRequest], Any] | None = None
    runs_as_agents: bool = True            # False: one controller for the whole plant (the centralized scheme)
    settings_section: str | None = None    # its section of `controller:` (several schemes may share one)
    parse_settings: Callable[[dict], Any] | None = None   # section mapping → settings (ScenarioError naming the key)
    check: Callable[[Problem], str | None] | None = None  # why it cannot honour the problem (None: it can)
    check_settings: Callable[[dict, Problem], str | None] | None = None   # a given setting it would not honour
    counters: Mapping[str, str] = field(default_factory=dict)   # what its agents count per step: name → meaning
    separable_terminal_cost: bool = False  # splits the cost by agent: terminal cost Σ x_i,N' P_ii x_i,N
    offline: OfflinePart | None = None
    coupled_limits: str = "not_kept"       # a key of COUPLED_LIMITS: how it keeps limits its neighbours drive
    control_tails: tuple[str, ...] = ()    # the tails after a control horizon N_c < N its linear agents honour
    nonlinear_control_tails: tuple[str, ...] = ()   # … and its nonlinear ones
    nonlinear_terminal_set: bool = False   # its nonlinear agents keep a terminal set (controller.terminal_set)
    linear_refusal: str = "it needs a nonlinear model (model.type nonlinear)"
    nonlinear_refusal: str = "it solves QPs of a linear model"

    def __post_init__(self) -> None:
        if self.coupled_limits not in COUPLED_LIMITS:
            raise ValueError(f"scheme {self.name}: coupled_limits {self.coupled_limits!r} is not allowed: one of "
                             f"{', '.join(COUPLED_LIMITS)}")

    def settings(self, given: Any = None) -> Any:
        """The settings its builders get: the given ones, else those of an empty section (None without settings)."""
        if self.parse_settings is None:
            return None
        return self.parse_settings({}) if given is None else given

    def refusal(self, problem: Problem) -> str | None:
        """Why this scheme cannot run `problem` (None if it can): a missing builder, then its own check."""
        if problem.nonlinear and self.build_nonlinear is None:
            return self.nonlinear_refusal
        if not problem.nonlinear and self.build_linear is None:
            return self.linear_refusal
        if problem.weights is not None and (len(problem.weights) != problem.system.num_agents
                                            or any(w <= 0 for w in problem.weights)):
            return f"weights must be {problem.system.num_agents} positive numbers, got {list(problem.weights)}"
        return self._control_horizon_refusal(problem) or (self.check(problem) if self.check is not None else None)

    def _control_horizon_refusal(self, problem: Problem) -> str | None:
        horizons = problem.control_horizons
        if horizons is None or not horizons.shortened(problem.horizon):
            return None
        tails = self.nonlinear_control_tails if problem.nonlinear else self.control_tails
        if horizons.tail in tails:
            return None
        kind = "nonlinear" if problem.nonlinear else "linear"
        allowed = f"control_tail {' or '.join(tails)}" if tails else "controller.control_horizon = controller.horizon"
        return (f"it does not parametrize its {kind} agents' inputs with controller.control_tail {horizons.tail} "
                f"after controller.control_horizon < controller.horizon: allowed {allowed}")

    def build(self, request: AgentRequest, nonlinear: bool) -> Any:
        builder = self.build_nonlinear if nonlinear else self.build_linear
        return builder(request)


_SCHEMES: dict[str, Scheme] = {}
_BROKEN: dict[str, str] = {}   # entry point name → why its plugin failed to import


def register_scheme(scheme: Scheme) -> Scheme:
    """Add a scheme by its name (also how tests register one in-process); another object of a taken name is refused."""
    if not isinstance(scheme, Scheme) or not scheme.name:
        raise TypeError(f"{scheme!r} is not a named Scheme")
    known = _SCHEMES.get(scheme.name)
    if known is not None and known is not scheme:
        raise ValueError(f"coordination scheme '{scheme.name}' is registered twice")
    _SCHEMES[scheme.name] = scheme
    return scheme


def _register_all(found: object) -> None:
    for scheme in (found if isinstance(found, (tuple, list)) else (found,)):
        register_scheme(scheme)


@cache
def _load() -> None:
    """Once per process: the built-in schemes (modules of dmpc_ros.schemes with SCHEMES), then the entry points."""
    _BROKEN.update(discover(BUILTIN_PACKAGE, "SCHEMES", ENTRY_POINT_GROUP, _register_all))


def scheme_names(runs_as_agents: bool | None = None) -> tuple[str, ...]:
    """Every registered scheme's name (registration order), or those that do / do not run as agents."""
    _load()
    return tuple(name for name, s in _SCHEMES.items() if runs_as_agents is None or s.runs_as_agents == runs_as_agents)


def scheme_of(name: object) -> Scheme:
    """The scheme called `name`, or a ValueError listing the known ones (naming a plugin that failed to load)."""
    _load()
    if isinstance(name, str) and name in _SCHEMES:
        return _SCHEMES[name]
    if isinstance(name, str) and name in _BROKEN:
        raise ValueError(f"algorithm: '{name}' is registered but its plugin failed to load ({_BROKEN[name]})")
    raise ValueError(f"algorithm: {name!r} is not allowed: must be one of {', '.join(scheme_names())} (more through "
                     f"entry points of group {ENTRY_POINT_GROUP})")


def allowed_for(problem: Problem) -> tuple[str, ...]:
    """The schemes that can run `problem` (what a refusal suggests instead)."""
    return tuple(name for name in scheme_names() if _SCHEMES[name].refusal(problem) is None)


def settings_sections() -> dict[str, Scheme]:
    """Each settings section of `controller:` → the first scheme that declares it (whose parser validates it)."""
    sections: dict[str, Scheme] = {}
    for name in scheme_names():
        scheme = _SCHEMES[name]
        if scheme.settings_section is not None:
            sections.setdefault(scheme.settings_section, scheme)
    return sections

