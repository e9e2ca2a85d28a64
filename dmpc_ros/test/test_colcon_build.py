"""`colcon build` (colcon from PyPI, the ROS wheels as underlay) builds the repository as two ordinary ROS packages."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp("colcon_ws")
    prefix = sys.prefix
    env = dict(os.environ, AMENT_PREFIX_PATH=prefix, CMAKE_PREFIX_PATH=prefix)
    result = subprocess.run(
        [str(Path(prefix) / "bin" / "colcon"), "build", "--base-paths", str(REPO_DIR),
         "--build-base", str(workspace / "build"), "--install-base", str(workspace / "install"),
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for package in ("dmpc_ros_msgs", "dmpc_ros"):
        assert f"Finished <<< {package} " in result.stdout, result.stdout[-3000:]
    return workspace / "install"


def test_python_package_install_layout(colcon_install: Path) -> None:
    share = colcon_install / "dmpc_ros" / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "dmpc_ros").is_file()
    assert (share / "dmpc_ros" / "package.xml").is_file()
    source_launch = sorted(p.name for p in (REPO_DIR / "dmpc_ros" / "launch").glob("*.launch.py"))
    source_config = sorted(p.name for p in (REPO_DIR / "dmpc_ros" / "config").glob("*.yaml"))
    assert sorted(p.name for p in (share / "dmpc_ros" / "launch").glob("*.launch.py")) == source_launch
    assert sorted(p.name for p in (share / "dmpc_ros" / "config").glob("*.yaml")) == source_config
    executables = colcon_install / "dmpc_ros" / "lib" / "dmpc_ros"
    for name in ("dmpc", "agent", "plant", "lifecycle_manager", "smoke_talker", "smoke_listener"):
        assert os.access(executables / name, os.X_OK), f"{name} missing from lib/dmpc_ros"


def test_message_package_install_layout(colcon_install: Path) -> None:
    prefix = colcon_install / "dmpc_ros_msgs"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "dmpc_ros_msgs").is_file()
    for name in ("PredictedTrajectory", "SubsystemState", "ControlInput", "AgentStatus"):
        assert (prefix / "share" / "dmpc_ros_msgs" / "msg" / f"{name}.msg").is_file()
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    env = dict(os.environ, PYTHONPATH=str(site),
               LD_LIBRARY_PATH=f"{prefix / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    probe = ("import dmpc_ros_msgs.msg as m; from rclpy.serialization import serialize_message as s;"
             "print(m.__file__); print(len(s(m.PredictedTrajectory(states=[1.0, 2.0]))))")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    module_file, size = result.stdout.split()
    assert module_file.startswith(str(site)) and int(size) > 0
