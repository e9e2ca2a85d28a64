"""Plant and prediction models: coupled linear subsystems and the model library (no solvers, no ROS)."""
from .linear import CoupledLinearSystem, PolytopicConstraint, Subsystem, discretize_zoh
from .mass_spring import MassSpringChain, mass_spring_chain
from .network import Coupling, CostCoupling, LinearAgent, LinearNetwork, Setpoint

__all__ = [
    "CoupledLinearSystem", "PolytopicConstraint", "Subsystem", "discretize_zoh",
    "MassSpringChain", "mass_spring_chain", "Coupling", "CostCoupling", "LinearAgent", "LinearNetwork", "Setpoint",
]
