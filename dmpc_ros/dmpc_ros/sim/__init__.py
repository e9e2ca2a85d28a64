"""In-process closed loop: plant, agents over an in-memory network, metrics and results."""
from .closed_loop import SimulationSettings, simulate
from .network import InMemoryNetwork
from .results import SimulationResult

__all__ = ["SimulationSettings", "simulate", "InMemoryNetwork", "SimulationResult"]
