"""What the scheme registry (factory.SCHEMES) holds per scheme, and what a scheme's builder is given.

The builders see the design through `LinearDesign`, the part of factory.ControllerDesign they read: declared here,
below factory, because factory imports this module (the registry is made of these records)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..models.linear import CoupledLinearSystem, CouplingTerm
from ..mpc.agent_problem import AgentBlockQP
from ..mpc.condensed import QuadraticCost
from ..mpc.explicit_law import ExplicitLaws
from ..mpc.parallel_step import ParallelStepBounds
from ..mpc.reference import ReferenceTrajectory
from ..mpc.tubes import TubeFamily
from .admm import AdmmSettings
from .base import Agent, StoppingRule
from .collision import CollisionAvoidance
from .safe_input import InputGuard


class LinearDesign(Protocol):
    """What a scheme's builder and check read of the controller design (factory.ControllerDesign has it all)."""

    system: CoupledLinearSystem
    Q: np.ndarray
    horizon: int
    reference: ReferenceTrajectory
    coupling_terms: tuple[CouplingTerm, ...]
    collision: CollisionAvoidance | None
    tubes: TubeFamily | None
    explicit: ExplicitLaws | None

    @property
    def parallel_step(self) -> ParallelStepBounds: ...

    @property
    def dual_step_size(self) -> float: ...

    def block(self, agent: int, objective: str, constraints: str, backend: str) -> AgentBlockQP: ...

    def terminal_gain(self) -> np.ndarray: ...

    def cost(self) -> QuadraticCost: ...

    def separable_remainder(self) -> np.ndarray: ...

    def local_design(self, agent: int) -> LinearDesign: ...

    def input_guard(self, agent: int) -> InputGuard: ...


@dataclass(frozen=True)
class AgentRequest:
    """What a scheme's builder gets: the design (already set up for the scheme) and the run's settings."""

    design: LinearDesign
    agent_id: int
    stopping: StoppingRule
    backend: str = "daqp"
    weights: list[float] | None = None
    admm: AdmmSettings = AdmmSettings()
    tubes: TubeFamily | None = None


@dataclass(frozen=True)
class Scheme:
    """A coordination scheme, found by name in SCHEMES: how one agent is built, what it needs, what it honours."""

    build: Callable[[AgentRequest], Agent] | None   # None: no agents (the centralized controller)
    separable_terminal_cost: bool = False   # splits the cost by agent: terminal cost Σ x_i,N' P_ii x_i,N
    shared_constraint: bool = False         # keeps a constraint shared by all agents' inputs
    check: Callable[[LinearDesign, list[float] | None], str | None] | None = None   # why not here
    offline: bool = False                   # needs laws solved offline (ControllerDesign.explicit)
    nonlinear_only: bool = False            # runs on nonlinear models only (coordination/nonlinear.py)


def jacobi_weight(request: AgentRequest) -> float:
    """The agent's convex-combination weight: the given one, else the structural step (mpc/parallel_step.py)."""
    if request.weights is not None:
        return request.weights[request.agent_id]
    tubes = request.tubes
    per_step_rows = request.design.collision is not None or (tubes is not None and tubes.compatibility is not None)
    return request.design.parallel_step.weight(per_step_rows)
