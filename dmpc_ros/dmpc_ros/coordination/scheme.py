"""What the scheme registry (factory.SCHEMES) holds per scheme, and what a scheme's builder is given."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..mpc.tubes import TubeFamily
from .admm import AdmmSettings
from .base import Agent, StoppingRule

if TYPE_CHECKING:
    from .factory import ControllerDesign


@dataclass(frozen=True)
class AgentRequest:
    """What a scheme's builder gets: the design (already set up for the scheme) and the run's settings."""

    design: ControllerDesign
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
    check: Callable[[ControllerDesign, list[float] | None], str | None] | None = None   # why not here
    offline: bool = False                   # needs laws solved offline (ControllerDesign.explicit)
    nonlinear_only: bool = False            # runs on nonlinear models only (coordination/nonlinear.py)


def jacobi_weight(request: AgentRequest) -> float:
    """The agent's convex-combination weight: the given one, else the structural step (mpc/parallel_step.py)."""
    if request.weights is not None:
        return request.weights[request.agent_id]
    tubes = request.tubes
    per_step_rows = request.design.collision is not None or (tubes is not None and tubes.compatibility is not None)
    return request.design.parallel_step.weight(per_step_rows)
