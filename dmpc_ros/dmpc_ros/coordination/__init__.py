"""Sans-IO negotiation algorithms behind one contract (begin_step / iterate / control)."""
from .admm import AdmmAgent, AdmmSettings
from .base import Agent, StepStatistics, StoppingRule
from .centralized import CentralizedController, CentralizedMPC
from .factory import ControllerDesign, build_agent, build_agents
from .plan import Plan
from .scheme import Scheme, scheme_names, scheme_of

__all__ = ["AdmmAgent", "AdmmSettings", "Agent", "StepStatistics", "StoppingRule", "CentralizedController",
           "CentralizedMPC", "ALGORITHMS", "ControllerDesign", "build_agent", "build_agents", "Plan", "Scheme",
           "scheme_names", "scheme_of"]


def __getattr__(name: str):
    """ALGORITHMS: every registered scheme's name, looked up when asked for (plugins register on first use)."""
    if name == "ALGORITHMS":
        return scheme_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
