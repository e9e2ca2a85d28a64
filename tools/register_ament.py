"""Register dmpc_ros in the venv's ament index, as `colcon build` would install it on a ROS system.

An editable `pip install -e` installs no data_files, so this links package.xml, launch/ and config/ file by file
into <venv>/share/dmpc_ros (ros2 launch walks share/ without following directory links), adds the package marker
under share/ament_index, and installs a .pth file that puts the venv on AMENT_PREFIX_PATH (the PyPI wheels do not),
so that `ros2 launch dmpc_ros <file>` and `ros2 run dmpc_ros agent` work with no sourcing.
Usage: python tools/register_ament.py VENV
"""
from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

PACKAGE = "dmpc_ros"
DATA = {".": ["package.xml"], "launch": ["*.launch.py"], "config": ["*.yaml", "*.rviz", "*.json", "*.xml"]}
PTH = ("import os, sys; _p = os.environ.get('AMENT_PREFIX_PATH', ''); "
       "sys.prefix in _p.split(os.pathsep) or os.environ.__setitem__('AMENT_PREFIX_PATH', "
       "os.pathsep.join(filter(None, (sys.prefix, _p))))\n")


def register(venv: Path, source: Path) -> list[Path]:
    """Link the package's data files into venv/share/dmpc_ros (stale links removed first); returns the links."""
    share = venv / "share" / PACKAGE
    shutil.rmtree(share, ignore_errors=True)
    links = []
    for folder, patterns in DATA.items():
        for pattern in patterns:
            for path in sorted((source / folder).glob(pattern)):
                link = share / folder / path.name
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(path.resolve())
                links.append(link)
    marker = venv / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "dmpc_ament_prefix.pth").write_text(PTH)
    return links


if __name__ == "__main__":
    venv = Path(sys.argv[1]).resolve()
    links = register(venv, Path(__file__).resolve().parent.parent / PACKAGE)
    print(f"registered {PACKAGE} in the ament index of {venv} ({len(links)} files under share/{PACKAGE})")
