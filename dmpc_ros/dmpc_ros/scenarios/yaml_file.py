"""Reading a scenario file strictly: UTF-8 text and YAML mappings without repeated keys, so a file that PyYAML
would silently half-read (a second `model:` replacing the first) or that crashes the decoder fails with the
line or byte that is wrong."""
from __future__ import annotations

from pathlib import Path

import yaml

from .validation import ScenarioError


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:   # an unhashable key: the base class reports it
                break
            if first is not None:
                raise ScenarioError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice (first on line "
                                    f"{first}); each key may appear once")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> object:
    """The file's YAML data; a ScenarioError naming the file and what is wrong otherwise."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ScenarioError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); "
                            "save it as UTF-8") from None
    except OSError as error:
        raise ScenarioError(f"{path}: cannot be read: {error.strerror}") from None
    try:
        return yaml.load(text, Loader=StrictLoader)
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML: {yaml_problem(error)}") from None


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's several-line report as one line: the problem and where (1-based line and column)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(error, "context", None)
    return " ".join(f"{problem}{where}{f' ({context})' if context else ''}".split())
