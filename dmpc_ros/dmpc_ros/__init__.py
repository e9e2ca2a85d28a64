"""dmpc_ros: distributed model predictive control with a sans-IO core and ROS 2 drivers.

The public API (see the README, "Bring your own system"): the names below, loaded on first use so that
`import dmpc_ros.models` and the ROS nodes stay light.
"""

__version__ = "0.1.0"

_EXPORTS = {
    # models
    "LinearNetwork": "models.network", "LinearAgent": "models.network", "Coupling": "models.network",
    "CostCoupling": "models.network", "Setpoint": "models.network", "PolytopicConstraint": "models.linear",
    "MixedConstraint": "models.linear", "CoupledLinearSystem": "models.linear",
    "NonlinearNetwork": "models.nonlinear", "NonlinearSubsystem": "models.nonlinear",
    "NeighbourCoupling": "models.nonlinear", "NonlinearSetpoint": "models.nonlinear",
    # scenarios and their families
    "Scenario": "scenarios", "ScenarioError": "scenarios", "ModelFamily": "scenarios", "FamilyParts": "scenarios",
    "DesignExtras": "scenarios", "register_family": "scenarios", "family_names": "scenarios",
    # controllers and results
    "ControllerDesign": "coordination", "ALGORITHMS": "coordination", "SimulationResult": "sim.results",
    # what a user calls
    "scenario": "api", "load": "api", "simulate": "api", "reference": "api", "save": "api", "run_ros": "api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dmpc_ros' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
