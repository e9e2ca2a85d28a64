"""Both package.xml files are valid ROS manifests, and dmpc_ros declares every third-party import it makes."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

from conftest import PACKAGE_DIR, REPO_DIR

# Top-level Python module -> rosdep key expected in package.xml.
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "yaml": "python3-yaml",
    "matplotlib": "python3-matplotlib",
    "osqp": "python3-osqp-pip",
    "casadi": "python3-casadi-pip",
    "rich": "python3-rich",
    "daqp": "python3-daqp-pip",
    "clarabel": "python3-clarabel-pip",
    "mcap": "python3-mcap-pip",
    "mcap_ros2": "python3-mcap-ros2-support-pip",
    "foxglove": "python3-foxglove-sdk-pip",
}


@pytest.mark.parametrize("package_dir", [REPO_DIR / "dmpc_ros_msgs", PACKAGE_DIR], ids=lambda p: p.name)
def test_manifest_parses_and_validates(package_dir: Path) -> None:
    package = parse_package(str(package_dir / "package.xml"))
    package.validate()
    assert package.name == package_dir.name
    assert package.package_format == 3


def test_interface_package_is_member_of_rosidl_interface_packages() -> None:
    package = parse_package(str(REPO_DIR / "dmpc_ros_msgs" / "package.xml"))
    assert "rosidl_interface_packages" in [group.name for group in package.member_of_groups]
    assert package.get_build_type() == "ament_cmake"


def third_party_imports(root: Path) -> set[str]:
    """Top-level names of every non-stdlib, non-dmpc_ros module imported under root."""
    names: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("dmpc_ros", "__future__")}


def test_python_package_declares_every_third_party_import() -> None:
    package = parse_package(str(PACKAGE_DIR / "package.xml"))
    package.evaluate_conditions({})
    declared = {d.name for d in package.exec_depends + package.build_export_depends + package.build_depends}
    imported = third_party_imports(PACKAGE_DIR / "dmpc_ros")
    assert {"rclpy", "numpy", "osqp"} <= imported  # the scan itself works
    missing = sorted(f"{m} (needs <depend>/<exec_depend> {ROSDEP_KEYS.get(m, m)})"
                     for m in imported if ROSDEP_KEYS.get(m, m) not in declared)
    assert not missing, f"package.xml lacks: {missing}"
