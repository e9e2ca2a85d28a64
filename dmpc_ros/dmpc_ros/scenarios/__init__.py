"""Scenario files: validated schema, loader for config/*.yaml, the model-family registry.

Also what the drivers above (ros/) take from the layers below through this one: the value types a family's hooks
answer (`PlanarLayout` for `layout`, `UnicycleBase` for `robot_base`) and the QP back ends `controller.solver` may
name (`BACKENDS`)."""
from .family import DesignExtras, FamilyParts, ModelFamily, PlanarLayout, ScenarioView, UnicycleBase, family_names, \
    model_family, register_family
from .parameters import BACKENDS
from .schema import Scenario, ScenarioError, load_scenario, parse_scenario, scenario_path

__all__ = ["BACKENDS", "DesignExtras", "FamilyParts", "ModelFamily", "PlanarLayout", "Scenario", "ScenarioError",
           "ScenarioView", "UnicycleBase", "family_names", "load_scenario", "model_family", "parse_scenario",
           "register_family", "scenario_path"]
