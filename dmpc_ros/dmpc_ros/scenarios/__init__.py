"""Scenario files: validated schema, loader for config/*.yaml."""
from .schema import Scenario, ScenarioError, load_scenario, parse_scenario, scenario_path

__all__ = ["Scenario", "ScenarioError", "load_scenario", "parse_scenario", "scenario_path"]
