"""Reading a scenario file strictly: UTF-8 text and YAML mappings without repeated keys, so a file that PyYAML
would silently half-read (a second `model:` replacing the first) or that crashes the decoder fails with the
line or byte that is wrong.

Sizes are bounded before anything is built, so a hostile file ends in one line too: the file's size, its nesting
depth, its aliases (how many, and how large the document would be with every alias expanded: a 2 KB "billion
laughs" file expands to gigabytes), recursive aliases, the length of a text and of a number. YAML merge keys
(`<<: *defaults`) are read as YAML 1.1 defines them; keys given explicitly beside them override the merged ones.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .validation import ScenarioError, is_text

MAX_FILE_BYTES = 8 << 20        # a scenario file larger than this is refused unread
MAX_DEPTH = 32                  # nested sequences / mappings (a scenario needs about 8)
MAX_ALIASES = 1000              # alias uses (*name) in one file
MAX_EXPANDED_NODES = 1_000_000  # nodes of the document with every alias expanded
MAX_TEXT = 10_000               # characters of one text value
MAX_DIGITS = 30                 # characters of one number (1e308 is 5; an integer beyond 10^30 is no setting)
MERGE_TAG = "tag:yaml.org,2002:merge"
NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def where(node, path: tuple = ()) -> str:
    """'line 12 (controller.horizon)': the node's line and, where known, its key path."""
    return f"line {node.start_mark.line + 1}{f' ({dotted(path)})' if path else ''}"


def dotted(path: tuple) -> str:
    """A key path as the error messages write fields: controller.weights[2] (long paths shortened)."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return text if len(text) <= 80 else f"{text[:60]}…{text[-16:]}"


def label(index) -> object:
    """The path part of a node composed at `index`: its key's text in a mapping, its position in a sequence."""
    if isinstance(index, ScalarNode):
        return index.value[:40] if is_text(index.value) else ascii(index.value[:40])
    return index if isinstance(index, int) else None


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice, nesting deeper than MAX_DEPTH and more than MAX_ALIASES
    aliases while composing; YAML merge keys are expanded (explicit keys win)."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._path: list = []   # key path of the node being composed (its depth)
        self._aliases = 0

    def compose_node(self, parent, index):
        part = label(index)
        path = tuple(p for p in self._path if p is not None) + ((part,) if part is not None else ())
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ScenarioError(f"{where(self.peek_event(), path)}: more than {MAX_ALIASES} aliases (*name); a "
                                    f"scenario needs few (is it an alias bomb?)")
            return super().compose_node(parent, index)
        self._path.append(part)
        try:
            if len(self._path) > MAX_DEPTH:
                raise ScenarioError(f"{where(self.peek_event(), path[:8])}: nested more than {MAX_DEPTH} levels "
                                    f"deep; a scenario needs fewer")
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:   # an unhashable key: the base class reports it
                    break
                if first is not None:
                    raise ScenarioError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice (first on "
                                        f"line {first}); each key may appear once")
                seen[key] = key_node.start_mark.line + 1
            self.flatten_mapping(node)   # merge keys: the merged mappings' keys first, explicit ones override
        return super().construct_mapping(node, deep)


def check_sizes(root) -> None:
    """The composed document within bounds: no recursive alias, at most MAX_EXPANDED_NODES nodes with every alias
    expanded, texts and numbers of bounded length, valid Unicode (no lone surrogates from an escape). Errors name
    the line and the key path."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple] = [(root, False, ())]
    while stack:
        node, finished, path = stack.pop()
        key = id(node)
        if finished:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for _, child in node_children(node))
            if sizes[key] > MAX_EXPANDED_NODES:
                raise ScenarioError(f"{where(node, path)}: the document would have more than {MAX_EXPANDED_NODES} "
                                    f"values with its aliases expanded (an alias bomb?); a scenario needs far fewer")
            continue
        if key in sizes:
            continue
        if isinstance(node, ScalarNode):
            check_scalar(node, path)
            sizes[key] = 1
            continue
        active.add(key)
        stack.append((node, True, path))
        for part, child in node_children(node):
            child_path = path + ((part,) if part is not None else ())
            if id(child) in active:
                raise ScenarioError(f"{where(child, child_path)}: a recursive alias (an anchor used inside itself) "
                                    f"is not allowed")
            if id(child) not in sizes:
                stack.append((child, False, child_path))


def node_children(node) -> list[tuple]:
    """(path part, child) of a sequence or mapping node: keys under the mapping's own path, values under the key."""
    if isinstance(node, SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, MappingNode):
        return [pair for key, value in node.value for pair in ((None, key), (label(key), value))]
    return []


def check_scalar(node: ScalarNode, path: tuple = ()) -> None:
    value = node.value
    if not is_text(value):
        raise ScenarioError(f"{where(node, path)}: text with a lone surrogate ({ascii(value[:40])}) is not allowed: "
                            f"must be valid Unicode")
    if len(value) > MAX_TEXT:
        raise ScenarioError(f"{where(node, path)}: a value of {len(value)} characters is not allowed: at most "
                            f"{MAX_TEXT}")
    if node.tag in NUMBER_TAGS and len(value) > MAX_DIGITS:
        raise ScenarioError(f"{where(node, path)}: the number {value[:12]}… has {len(value)} characters; at most "
                            f"{MAX_DIGITS} are allowed (write large values as a float, e.g. 1e30)")


def load_text(text: str) -> object:
    """YAML text → data, strictly and within the size bounds (ScenarioError / yaml.YAMLError otherwise)."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_sizes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path) -> object:
    """The file's YAML data; a ScenarioError naming the file and what is wrong otherwise."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ScenarioError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; a scenario file is far smaller")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ScenarioError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); "
                            "save it as UTF-8") from None
    except OSError as error:
        raise ScenarioError(f"{path}: cannot be read: {error.strerror}") from None
    try:
        return load_text(text)
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML: {yaml_problem(error)}") from None
    except RecursionError:   # a construct the bounds above do not foresee
        raise ScenarioError(f"{path}: nested too deeply to read") from None


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's several-line report as one line: the problem and where (1-based line and column)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where_text = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(error, "context", None)
    return " ".join(f"{problem}{where_text}{f' ({context})' if context else ''}".split())
