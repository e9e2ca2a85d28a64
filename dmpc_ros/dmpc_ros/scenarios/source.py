"""Where a scenario comes from: a YAML file or shipped name, or a Python factory that builds it in code.

    mass_spring                      config/mass_spring.yaml of the package
    path/to/file.yaml                a scenario file
    package.module:function          a function returning a Scenario (importable module)
    path/to/file.py:function         the same from a file (loaded by path)
    name                             an entry point of group `dmpc_ros.scenarios` (a user's package)
The ROS nodes take the same strings (`scenario_file` for YAML, `scenario_factory` for Python), so a design
built in Python runs over ROS exactly as in `dmpc sim`.

A factory is the user's code: it is imported and called in a guard thread, so whatever it does ends in one
ScenarioError line — an exception (with where it was raised), `sys.exit()`, a return value that is no Scenario, or no
return within DMPC_FACTORY_TIMEOUT seconds (default 120; the thread is left behind, the caller goes on).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
import traceback
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path

from .schema import Scenario, load_scenario, scenario_path
from .validation import ScenarioError

SCENARIO_ENTRY_POINTS = "dmpc_ros.scenarios"


def is_factory(source: str) -> bool:
    """A Python factory reference (module:function or file.py:function), not a YAML file or name."""
    return ":" in source and not source.endswith((".yaml", ".yml"))


DEFAULT_FACTORY_TIMEOUT = 120.0   # [s] a factory (import and call) that takes longer is reported as hanging


def factory_timeout() -> float:
    """DMPC_FACTORY_TIMEOUT [s] if set to a positive number, else DEFAULT_FACTORY_TIMEOUT."""
    try:
        value = float(os.environ.get("DMPC_FACTORY_TIMEOUT", DEFAULT_FACTORY_TIMEOUT))
    except ValueError:
        return DEFAULT_FACTORY_TIMEOUT
    return value if 0 < value < float("inf") else DEFAULT_FACTORY_TIMEOUT


def load_factory(reference: str) -> Scenario:
    """Call the factory named by `reference` (module:function, file.py:function or an entry point name), guarded:
    its import and call run in a thread joined for at most factory_timeout() seconds."""
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["scenario"] = _call_factory(reference)
        except BaseException as error:   # noqa: BLE001 — the user's code: SystemExit and all, reported below
            outcome["error"] = error

    thread = threading.Thread(target=call, name=f"scenario factory {reference}", daemon=True)
    thread.start()
    timeout = factory_timeout()
    thread.join(timeout)
    if thread.is_alive():
        raise ScenarioError(f"scenario factory '{reference}' did not return within {timeout:g} s (a hang? "
                            f"DMPC_FACTORY_TIMEOUT sets the limit)")
    error = outcome.get("error")
    if isinstance(error, ScenarioError):
        raise ScenarioError(str(error)) from None
    if isinstance(error, SystemExit):
        raise ScenarioError(f"scenario factory '{reference}' called sys.exit({error.code!r}); a factory must return "
                            f"a Scenario") from None
    if error is not None:   # the user's code: say what and where, in one line
        frames = traceback.extract_tb(error.__traceback__)
        user = [f for f in frames if "dmpc_ros" not in Path(f.filename).parts] or frames
        where = f" (at {user[-1].filename}:{user[-1].lineno})" if user else ""
        raise ScenarioError(f"scenario factory '{reference}' raised {type(error).__name__}: {error}{where}") from None
    return outcome["scenario"]


def _call_factory(reference: str) -> Scenario:
    if ":" in reference:
        module_name, _, function_name = reference.rpartition(":")
        module = _module(module_name, reference)
    else:
        found = [e for e in entry_points(group=SCENARIO_ENTRY_POINTS) if e.name == reference]
        if not found:
            known = sorted(e.name for e in entry_points(group=SCENARIO_ENTRY_POINTS))
            raise ScenarioError(f"scenario factory '{reference}': no entry point of that name in group "
                                f"{SCENARIO_ENTRY_POINTS} (known: {', '.join(known) or 'none'})")
        module_name, _, function_name = found[0].value.partition(":")
        module = _module(module_name, reference)
    factory = getattr(module, function_name, None) if function_name.isidentifier() else None
    if not callable(factory):
        raise ScenarioError(f"scenario factory '{reference}': {module_name} has no function '{function_name}'")
    try:
        scenario = factory()
    except ScenarioError as error:
        raise ScenarioError(f"scenario factory '{reference}': {error}") from None
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"scenario factory '{reference}' returned a {type(scenario).__name__}, not a Scenario "
                            f"(build one with dmpc_ros.scenario(...))")
    return replace(scenario, source=reference)   # how the nodes and run_ros rebuild it


def _module(name: str, reference: str):
    if name.endswith(".py"):
        path = Path(name).resolve()
        if not path.is_file():
            raise ScenarioError(f"scenario factory '{reference}': file {path} does not exist")
        key = "dmpc_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as error:   # noqa: BLE001 — SystemExit at import too
            del sys.modules[key]
            what = f"called sys.exit({error.code!r})" if isinstance(error, SystemExit) else \
                f"{type(error).__name__}: {error}"
            raise ScenarioError(f"scenario factory '{reference}': importing {path} failed: {what}") from None
        return module
    try:
        return importlib.import_module(name)
    except (ImportError, ValueError, TypeError) as error:   # also an empty or malformed module name
        raise ScenarioError(f"scenario factory '{reference}': cannot import {name} ({error})") from None


def load_source(source: str) -> Scenario:
    """A scenario from any of the forms in the module docstring."""
    if not isinstance(source, str) or not source:
        raise ScenarioError(f"scenario: {source!r} is not allowed: give a name, a YAML path or module:function")
    if is_factory(source):
        return load_factory(source)
    try:
        return load_scenario(source)
    except ScenarioError as error:
        if str(error).startswith(f"scenario '{source}' not found") and \
                any(e.name == source for e in entry_points(group=SCENARIO_ENTRY_POINTS)):
            return load_factory(source)
        raise


def source_path(source: str) -> Path | None:
    """The YAML file of a file-based source (None for a factory)."""
    return None if is_factory(source) else scenario_path(source)


def scenario_from_parameters(scenario_file: str, scenario_factory: str) -> Scenario:
    """What a node's `scenario_file` / `scenario_factory` parameters name (exactly one of them)."""
    if bool(scenario_file) == bool(scenario_factory):
        raise ScenarioError(f"parameters scenario_file {scenario_file!r} and scenario_factory {scenario_factory!r}: "
                            f"give exactly one (a scenario YAML path, or module:function / file.py:function)")
    if scenario_factory:
        return load_factory(scenario_factory)
    return load_scenario(scenario_file)
