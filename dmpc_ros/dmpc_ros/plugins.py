"""Finding plugins by name: the modules of a built-in package that define an attribute, then the Python entry points
of a group (a user's package). Shared by the model-family and the scheme registries; a leaf every layer may import
(like progress.py): it imports no dmpc_ros module itself."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points


def discover(package: str, attribute: str, group: str, register: Callable[[object], None]) -> dict[str, str]:
    """Register each module of `package` that defines `attribute` (its value), then each entry point of `group`
    (the object it names); returns entry point name → why its plugin failed to import (a broken plugin must not
    hide the others; the registry names it when asked for it)."""
    location = importlib.util.find_spec(package).submodule_search_locations   # found, not imported: no import edge
    for module in pkgutil.iter_modules(location):
        found = getattr(importlib.import_module(f"{package}.{module.name}"), attribute, None)
        if found is not None:
            register(found)
    broken = {}
    for entry in entry_points(group=group):
        try:
            loaded = entry.load()
        except Exception as error:
            broken[entry.name] = f"{entry.value}: {type(error).__name__}: {error}"
            continue
        register(loaded)
    return broken
