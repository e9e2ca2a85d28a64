"""Sans-IO negotiation algorithms behind one contract (begin_step / iterate / control)."""
from .admm import AdmmAgent, AdmmSettings
from .base import Agent, StepStatistics, StoppingRule
from .centralized import CentralizedController, CentralizedMPC
from .factory import ALGORITHMS, ControllerDesign, build_agent, build_agents
from .plan import Plan

__all__ = ["AdmmAgent", "AdmmSettings", "Agent", "StepStatistics", "StoppingRule", "CentralizedController",
           "CentralizedMPC", "ALGORITHMS", "ControllerDesign", "build_agent", "build_agents", "Plan"]
