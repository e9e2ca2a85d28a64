"""The layering of docs/ARCHITECTURE.md holds for every module of dmpc_ros, and its imports form no cycle.

The graph and the table come from tools/import_graph.py (what the lead runs by hand): every import counts, at
module level, inside functions, under TYPE_CHECKING and through importlib.import_module of constant names; the
table is the one in ARCHITECTURE.md, parsed, so the document and this test cannot drift apart.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO_DIR

sys.path.insert(0, str(REPO_DIR / "tools"))
import import_graph  # noqa: E402

# Imports the table forbids that wait for an edit of a file another hand is rewriting. Each entry must still be
# there (test_pending_edits_are_still_pending), so the list empties as the edits land.
PENDING: set[tuple[str, str]] = set()   # (importer, imported) edges waiting for an edit elsewhere
# Modules loaded by a name known only at run time (no edge can be drawn): importer → the name's constant prefix.
LOADS_BY_NAME = {
    ("dmpc_ros.plugins", ""),   # the family and scheme registries' discovery: dmpc_ros.families.*, dmpc_ros.schemes.*
    ("dmpc_ros.scenarios.source", ""),                     # a user's scenario factory module
    ("dmpc_ros.mpc.qp_backends", "dmpc_ros.mpc.qp_backends."),   # the QP back-end registry finds the built-ins
}
# What only ros/ may import: the ROS client library, launch, and message or interface packages.
ROS_CLIENT = {"rclpy", "launch", "launch_ros", "builtin_interfaces"}


@pytest.fixture(scope="module")
def graph() -> import_graph.Graph:
    return import_graph.build_graph()


@pytest.fixture(scope="module")
def layers() -> list[import_graph.Layer]:
    return import_graph.layer_table()


def test_no_import_cycle(graph) -> None:
    found = import_graph.cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(map(import_graph.short, c)) for c in found)
    print(f"no cycle among {len(graph.modules)} modules ({import_graph.summary(graph)})")


def test_every_import_is_one_the_table_allows(graph, layers) -> None:
    bad = [e for e in import_graph.violations(graph, layers) if (e.importer, e.imported) not in PENDING]
    assert not bad, "imports the layer table of ARCHITECTURE.md does not allow:\n" + "\n".join(
        f"{import_graph.short(e.importer)}:{e.line} imports {import_graph.short(e.imported)} ({e.kind})" for e in bad)


def test_pending_edits_are_still_pending(graph) -> None:
    landed = PENDING - graph.pairs()
    assert not landed, f"remove from PENDING, the import is gone: {sorted(landed)}"


def test_table_holds_every_module_and_nothing_else(graph, layers) -> None:
    assert not import_graph.unplaced(graph, layers), "modules in no row of the layer table"
    assert not import_graph.stale_members(graph, layers), "rows naming what is no module"
    assert not import_graph.unused_permissions(graph, layers), "permissions of the table no import uses"
    assert not import_graph.layer_cycles(layers), "rows of the table that may import each other"


def test_the_table_covers_ros_and_the_top_level_modules(layers) -> None:
    names = {member for layer in layers for member in layer.members}
    assert {"dmpc_ros.ros", "dmpc_ros.api", "dmpc_ros.cli", "dmpc_ros.report", "dmpc_ros"} <= names


def test_loads_by_name_are_the_known_plugin_seams(graph) -> None:
    assert {(load.importer, load.prefix) for load in graph.loads} == LOADS_BY_NAME


def test_ros_client_only_in_ros_layer(graph) -> None:
    for module, packages in graph.packages.items():
        if import_graph.holds("dmpc_ros.ros", module):
            continue
        ros = {p for p in packages if p in ROS_CLIENT or p.endswith(("_msgs", "_interfaces"))}
        assert not ros, f"{module} imports {sorted(ros)}: only dmpc_ros.ros may"


def test_the_script_prints_the_figures_the_lead_quotes() -> None:
    run = subprocess.run([sys.executable, str(REPO_DIR / "tools" / "import_graph.py")], capture_output=True,
                         text=True, timeout=60)
    assert "no cycle among" in run.stdout and " modules, " in run.stdout, run.stdout + run.stderr


# -- the checker itself: it sees every kind of import, and fails -------------------------------------------------

def write(root: Path, files: dict[str, str]) -> Path:
    package = root / "dmpc_ros"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return package


TABLE = """\
    # doc
    ## Layers of the `dmpc_ros` Python package

    | layer | contents | imports |
    |---|---|---|
    | `low/` | the lower layer | none |
    | `high/` | the upper layer | `low` |
    | `app.py`, `__init__.py` | the rest | all |

    after the table
    """


def test_checker_counts_deferred_type_checking_and_import_module_imports(tmp_path) -> None:
    package = write(tmp_path, {
        "__init__.py": "",
        "app.py": "import importlib\nNAME = 'dmpc_ros.high.b'\ndef f():\n    return importlib.import_module(NAME)\n",
        "low/__init__.py": "",
        "low/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..high import b\n",
        "high/__init__.py": "",
        "high/b.py": "def g():\n    from ..low.a import x\n    return x\n",
        "high/c.py": "import importlib\nm = importlib.import_module(f'dmpc_ros.low.{input()}')\n",
    })
    graph = import_graph.build_graph(package)
    kinds = {(e.importer, e.imported): e.kind for e in graph.edges}
    assert kinds == {("dmpc_ros.app", "dmpc_ros.high.b"): "import_module",
                     ("dmpc_ros.low.a", "dmpc_ros.high.b"): "type checking",
                     ("dmpc_ros.high.b", "dmpc_ros.low.a"): "deferred"}
    assert [(load.importer, load.prefix) for load in graph.loads] == [("dmpc_ros.high.c", "dmpc_ros.low.")]
    assert import_graph.cycles(graph) == [["dmpc_ros.high.b", "dmpc_ros.low.a", "dmpc_ros.high.b"]]
    document = tmp_path / "ARCHITECTURE.md"
    document.write_text(textwrap.dedent(TABLE))
    layers = import_graph.layer_table(document)
    assert [(e.importer, e.imported) for e in import_graph.violations(graph, layers)] == \
        [("dmpc_ros.low.a", "dmpc_ros.high.b")]
    text, ok = import_graph.report(graph, layers)
    assert not ok and "CYCLE: high.b -> low.a -> high.b" in text and "LAYER: low.a:3 (low) imports high.b" in text


def test_checker_reports_unplaced_modules_and_unused_permissions(tmp_path) -> None:
    package = write(tmp_path, {"__init__.py": "", "app.py": "", "low/__init__.py": "", "high/__init__.py": "",
                               "extra.py": "from . import app\n"})
    document = tmp_path / "ARCHITECTURE.md"
    document.write_text(textwrap.dedent(TABLE))
    graph, layers = import_graph.build_graph(package), import_graph.layer_table(document)
    assert import_graph.unplaced(graph, layers) == ["dmpc_ros.extra"]
    assert import_graph.unused_permissions(graph, layers) == [("high", "low")]
    assert import_graph.cycles(graph) == []


def test_table_naming_an_unknown_layer_is_refused(tmp_path) -> None:
    document = tmp_path / "ARCHITECTURE.md"
    document.write_text(textwrap.dedent(TABLE).replace("| `low` |", "| `middle` |"))
    with pytest.raises(ValueError, match="middle"):
        import_graph.layer_table(document)
