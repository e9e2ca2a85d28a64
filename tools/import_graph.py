#!/usr/bin/env python3
"""The import graph of the dmpc_ros package, at module granularity, and its check against the layer table.

Every import counts, wherever it is written: at module level, inside a function, under `if TYPE_CHECKING:`, and
`importlib.import_module(...)` whose name folds to constants (string literals, `__name__`, module-level string
constants and dict literals, f-strings of those). An `import_module` whose name is only known at run time (a
plugin found by name, a user's module) is no edge; it is listed as a load by name, with the constant prefix of the
name when it has one, so a new one cannot come in unseen.

The layer table is the one in docs/ARCHITECTURE.md ("Layers of the `dmpc_ros` Python package"): its first
column names each layer's members (`models/`, `api.py`, ...), its last column the layers it may import (by the
first member's name; "all" for every layer). The test test_layers.py reads the same table through this module,
so the document and the check cannot drift.

    tools/import_graph.py            # modules, edges (by kind), loads by name, cycles, layer violations
    tools/import_graph.py --edges    # also every edge: importer -> imported (kind, line)

Exit status 1 when there is a cycle, a layer violation, or a table that does not match the package.
"""
from __future__ import annotations

import argparse
import ast
import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = REPO / "dmpc_ros" / "dmpc_ros"   # the directory of the package `dmpc_ros`
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
PACKAGE = "dmpc_ros"
TABLE_HEADING = "## Layers of the `dmpc_ros` Python package"
KINDS = ("module level", "deferred", "type checking", "import_module")


@dataclass(frozen=True)
class Edge:
    """One import of a package module by another: where it is written and how."""

    importer: str
    imported: str
    kind: str   # one of KINDS
    line: int


@dataclass(frozen=True)
class NameLoad:
    """An `import_module` whose module name is only known at run time."""

    importer: str
    prefix: str   # the constant start of the name ('' when none)
    line: int


@dataclass
class Graph:
    modules: list[str]
    edges: list[Edge] = field(default_factory=list)
    loads: list[NameLoad] = field(default_factory=list)
    packages: dict[str, set[str]] = field(default_factory=dict)   # module → top-level names it imports

    def successors(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {m: set() for m in self.modules}
        for edge in self.edges:
            if edge.imported != edge.importer:
                out[edge.importer].add(edge.imported)
        return out

    def pairs(self) -> set[tuple[str, str]]:
        return {(e.importer, e.imported) for e in self.edges if e.importer != e.imported}


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name, for its __init__)."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    """Module-level `NAME = <expression>` bindings, for folding import_module arguments."""
    bound: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            bound[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            bound[node.target.id] = node.value
    return bound


class _Folder:
    """The set of strings an expression can take, when it is made of constants; None when it is not."""

    def __init__(self, module: str, package: str, constants: dict[str, ast.expr]) -> None:
        self.module = module
        self.package = package
        self.constants = constants

    def fold(self, node: ast.expr) -> set[str] | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.Name):
            if node.id == "__name__":
                return {self.module}
            if node.id == "__package__":
                return {self.package}
            bound = self.constants.get(node.id)
            return self.fold(bound) if bound is not None else None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            table = self.constants.get(node.value.id)
            if isinstance(table, ast.Dict):
                return self._union(table.values)
            if isinstance(table, (ast.Tuple, ast.List)):
                return self._union(table.elts)
            return None
        if isinstance(node, ast.JoinedStr):
            pieces = [self.fold(v.value) if isinstance(v, ast.FormattedValue) else self.fold(v) for v in node.values]
            if any(p is None for p in pieces):
                return None
            return {"".join(combination) for combination in itertools.product(*pieces)}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.fold(node.left), self.fold(node.right)
            return None if left is None or right is None else {a + b for a in left for b in right}
        return None

    def prefix(self, node: ast.expr) -> str:
        """The constant start of a name that does not fold whole (an f-string's leading constant parts)."""
        if isinstance(node, ast.JoinedStr):
            start = ""
            for value in node.values:
                folded = self.fold(value.value) if isinstance(value, ast.FormattedValue) else self.fold(value)
                if folded is None or len(folded) != 1:
                    break
                start += folded.pop()
            return start
        return ""

    def _union(self, nodes: list[ast.expr | None]) -> set[str] | None:
        out: set[str] = set()
        for item in nodes:
            folded = self.fold(item) if item is not None else None
            if folded is None:
                return None
            out |= folded
        return out


def _is_import_module(call: ast.Call) -> bool:
    """importlib.import_module(...), import_module(...) or __import__(...)."""
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))


class _Collector(ast.NodeVisitor):
    """Walks one module, knowing whether it is inside a function and inside `if TYPE_CHECKING:`."""

    def __init__(self, module: str, is_package: bool, known: set[str], tree: ast.Module) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.folder = _Folder(module, self.package, _constants(tree))
        self.depth = 0
        self.type_checking = 0
        self.edges: list[Edge] = []
        self.loads: list[NameLoad] = []
        self.external: set[str] = set()   # top-level names of every package imported, ours included

    def _kind(self) -> str:
        if self.type_checking:
            return "type checking"
        return "deferred" if self.depth else "module level"

    def _add(self, name: str, line: int, kind: str | None = None) -> None:
        """An edge to the innermost package module that `name` names (a module, or a package's __init__)."""
        while name and name not in self.known:
            name = name.rpartition(".")[0]
        edge = Edge(self.module, name, kind or self._kind(), line)
        if name and edge not in self.edges:   # `from a import b, c` of one module is one import
            self.edges.append(edge)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.type_checking += 1
            for child in node.body:
                self.visit(child)
            self.type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.external.add(alias.name.split(".")[0])
            if alias.name.split(".")[0] == PACKAGE:
                self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
            self.external.add(source.split(".")[0])
        if source.split(".")[0] != PACKAGE:
            return
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            self._add(submodule if submodule in self.known else source, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        if _is_import_module(node) and node.args:
            argument = node.args[0]
            names = self.folder.fold(argument)
            if names is None:
                self.loads.append(NameLoad(self.module, self.folder.prefix(argument), node.lineno))
            else:
                package = None
                for keyword in node.keywords:
                    if keyword.arg == "package":
                        package = self.folder.fold(keyword.value)
                for name in names:
                    if name.startswith(".") and package:
                        level = len(name) - len(name.lstrip("."))
                        for base in package:
                            parts = base.split(".")
                            rest = name.lstrip(".")
                            self._add(".".join(parts[: len(parts) - level + 1] + ([rest] if rest else [])),
                                      node.lineno, "import_module")
                    elif name.split(".")[0] == PACKAGE:
                        self._add(name, node.lineno, "import_module")
        self.generic_visit(node)


def build_graph(root: Path = PACKAGE_ROOT) -> Graph:
    modules = package_modules(root)
    graph = Graph(sorted(modules))
    known = set(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(name, path.name == "__init__.py", known, tree)
        collector.visit(tree)
        graph.edges.extend(collector.edges)
        graph.loads.extend(collector.loads)
        graph.packages[name] = collector.external
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component of the module graph that has more than one module."""
    return cycles_of(graph.successors())


def cycles_of(successors: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component with more than one node (Tarjan, then breadth-first)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = itertools.count()

    def connect(start: str) -> None:   # Tarjan's algorithm, iterative
        work = [(start, iter(sorted(successors[start])))]
        index[start] = low[start] = next(counter)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = next(counter)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))

    for node in sorted(successors):
        if node not in index:
            connect(node)
    found = []
    for component in components:
        if len(component) > 1:
            found.append(_cycle_in(component, successors))
    return sorted(found)


def _cycle_in(component: list[str], successors: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first inside the component)."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(successors[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    return component


# --- the layer table -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """A row of the table: its members and the members of other rows it may import (None: any module)."""

    name: str                               # its first member as written, without `/` or `.py`: models, api
    members: tuple[str, ...]                # dotted names: dmpc_ros.models (the package), dmpc_ros.api
    imports: tuple[str, ...] | None         # dotted names of the members it may import


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _short_member(token: str) -> str:
    """`models/` → models, `api.py` → api, `__init__.py` → __init__."""
    return token.strip().rstrip("/").removesuffix(".py")


def _dotted(short_name: str) -> str:
    return PACKAGE if short_name == "__init__" else f"{PACKAGE}.{short_name.replace('/', '.')}"


def holds(member: str, module: str) -> bool:
    """Whether `module` is the member itself or inside it (a package member holds its submodules, not the package
    `dmpc_ros` itself: its __init__ is a member of its own)."""
    return module == member or (member != PACKAGE and module.startswith(member + "."))


def layer_table(document: Path = ARCHITECTURE) -> list[Layer]:
    """The layer table of ARCHITECTURE.md: members from the first column (`models/`, `api.py`), what they may
    import from the last (members of other rows, in backticks, or "all")."""
    text = document.read_text(encoding="utf-8")
    if TABLE_HEADING not in text:
        raise ValueError(f"{document}: no heading '{TABLE_HEADING}'")
    section = text.split(TABLE_HEADING, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break   # the table ends at its first line that is no row
    if not rows:
        raise ValueError(f"{document}: no table under '{TABLE_HEADING}'")
    header = _cells(rows[0])
    if header[0] != "layer" or header[-1] != "imports":
        raise ValueError(f"{document}: the layer table's columns are {header}; want 'layer' first, 'imports' last")
    parsed = []
    for row in rows[2:]:
        cells = _cells(row)
        members = [_short_member(m) for m in re.findall(r"`([^`]+)`", cells[0])]
        if not members:
            raise ValueError(f"{document}: a layer row names no `member`: {row[:60]}")
        allowed = None if cells[-1].lower() == "all" else \
            tuple(_dotted(_short_member(m)) for m in re.findall(r"`([^`]+)`", cells[-1]))
        parsed.append(Layer(members[0], tuple(_dotted(m) for m in members), allowed))
    every_member = {m for layer in parsed for m in layer.members}
    for layer in parsed:
        unknown = [m for m in layer.imports or () if m not in every_member]
        if unknown:
            raise ValueError(f"{document}: layer '{layer.name}' may import {', '.join(short(m) for m in unknown)}, "
                             f"which no row of the table holds")
    return parsed


def layer_of(module: str, layers: list[Layer]) -> Layer | None:
    for layer in layers:
        if any(holds(member, module) for member in layer.members):
            return layer
    return None


def allowed(edge: Edge, layers: list[Layer]) -> bool:
    source, target = layer_of(edge.importer, layers), layer_of(edge.imported, layers)
    if source is None or target is None or source is target or source.imports is None:
        return True   # unplaced modules are reported on their own
    return any(holds(member, edge.imported) for member in source.imports)


def violations(graph: Graph, layers: list[Layer]) -> list[Edge]:
    """Imports from a layer of modules its row does not name."""
    return [edge for edge in graph.edges if not allowed(edge, layers)]


def unplaced(graph: Graph, layers: list[Layer]) -> list[str]:
    """Modules of the package that no row of the table holds."""
    return [m for m in graph.modules if layer_of(m, layers) is None]


def stale_members(graph: Graph, layers: list[Layer]) -> list[str]:
    """Members the table names that are no module or package of the package."""
    return [m for layer in layers for m in layer.members if m not in graph.modules]


def unused_permissions(graph: Graph, layers: list[Layer]) -> list[tuple[str, str]]:
    """(layer, member) permissions no import uses: a table that says more than the code does."""
    pairs = graph.pairs()
    out = []
    for layer in layers:
        for member in layer.imports or ():
            if not any(layer_of(a, layers) is layer and holds(member, b) for a, b in pairs):
                out.append((layer.name, short(member)))
    return out


def layer_cycles(layers: list[Layer]) -> list[list[str]]:
    """Cycles among the rows themselves (a row may import a row that may import it back)."""
    successors: dict[str, set[str]] = {layer.name: set() for layer in layers}
    for layer in layers:
        for member in layer.imports or ():
            target = layer_of(member, layers)
            if target is not None and target is not layer:
                successors[layer.name].add(target.name)
    return cycles_of(successors)


# --- the report --------------------------------------------------------------------------------------------------

def short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".") if module != PACKAGE else f"{PACKAGE}/__init__"


def summary(graph: Graph) -> str:
    counts = {kind: sum(1 for e in graph.edges if e.kind == kind) for kind in KINDS}
    return (f"{len(graph.modules)} modules, {len(graph.pairs())} module edges from {len(graph.edges)} imports ("
            + ", ".join(f"{counts[k]} {k}" for k in KINDS) + ")")


def report(graph: Graph, layers: list[Layer] | None, show_edges: bool = False) -> tuple[str, bool]:
    lines = [f"import graph of {PACKAGE}: {summary(graph)}"]
    for load in graph.loads:
        lines.append(f"load by name (no edge): {short(load.importer)}:{load.line} imports "
                     f"{(load.prefix + '<run-time name>') if load.prefix else 'a run-time name'}")
    found = cycles(graph)
    if found:
        for cycle in found:
            lines.append("CYCLE: " + " -> ".join(short(m) for m in cycle))
    else:
        lines.append(f"no cycle among {len(graph.modules)} modules")
    ok = not found
    if layers is not None:
        problems = [f"LAYER: {short(e.importer)}:{e.line} ({layer_of(e.importer, layers).name}) imports "
                    f"{short(e.imported)} ({layer_of(e.imported, layers).name}), {e.kind}"
                    for e in violations(graph, layers)]
        problems += [f"UNPLACED: {short(m)} is in no layer of the table" for m in unplaced(graph, layers)]
        problems += [f"STALE: the table names {short(m)}, which is no module" for m in stale_members(graph, layers)]
        problems += [f"UNUSED: the table lets {a} import {b}, which it does not"
                     for a, b in unused_permissions(graph, layers)]
        problems += ["LAYER CYCLE: " + " -> ".join(cycle) for cycle in layer_cycles(layers)]
        lines += problems or [f"layers: every import of the {len(graph.modules)} modules is one the table of "
                              f"{ARCHITECTURE.relative_to(REPO)} allows ({len(layers)} layers)"]
        ok = ok and not problems
    if show_edges:
        lines += [f"{short(e.importer)} -> {short(e.imported)} ({e.kind}, line {e.line})"
                  for e in sorted(graph.edges, key=lambda e: (e.importer, e.imported, e.line))]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", action="store_true", help="list every edge too")
    args = parser.parse_args(argv)
    text, ok = report(build_graph(), layer_table(), args.edges)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
