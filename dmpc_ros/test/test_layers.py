"""The layering of docs/ARCHITECTURE.md: no layer imports one above it; rclpy only in ros/."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import PACKAGE_DIR

ROOT = PACKAGE_DIR / "dmpc_ros"
FORBIDDEN = {
    "models": {"mpc", "coordination", "sim", "scenarios", "ros", "cli"},
    "mpc": {"coordination", "sim", "scenarios", "ros", "cli"},
    "coordination": {"sim", "scenarios", "ros", "cli"},
    "sim": {"scenarios", "ros", "cli"},
    "scenarios": {"sim", "ros", "cli", "families"},   # families are found through the registry, by name
    "families": {"ros", "cli"},
}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what a module imports (relative imports resolved against dmpc_ros)."""
    package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_lower_layers(layer: str) -> None:
    for path in (ROOT / layer).rglob("*.py"):
        for name in imported_modules(path):
            parts = name.split(".")
            assert parts[0] != "rclpy", f"{path} imports rclpy"
            if parts[0] == "dmpc_ros" and len(parts) > 1:
                assert parts[1] not in FORBIDDEN[layer], f"{path.relative_to(ROOT)} imports {name}"


def test_rclpy_only_in_ros_layer() -> None:
    for path in ROOT.rglob("*.py"):
        if "ros" in path.relative_to(ROOT).parts[:1]:
            continue
        assert not any(n.split(".")[0] == "rclpy" for n in imported_modules(path)), path
