"""Scenario files: validated schema, loader for config/*.yaml, the model-family registry."""
from .family import DesignExtras, FamilyParts, ModelFamily, family_names, model_family, register_family
from .schema import Scenario, ScenarioError, load_scenario, parse_scenario, scenario_path

__all__ = ["DesignExtras", "FamilyParts", "ModelFamily", "Scenario", "ScenarioError", "family_names",
           "load_scenario", "model_family", "parse_scenario", "register_family", "scenario_path"]
