"""Rewrite the include paths the ROS 2 PyPI wheels hard-code into their exported CMake files.

The wheels are built in a manylinux image whose Python lives in /opt/python/cp311-cp311; their
`share/*/cmake/*.cmake` files keep that image's Python and NumPy include directories, so any
package built against them (our messages) fails to configure until they point at this venv.
Idempotent: files already fixed are left alone. Usage: python fix_wheel_cmake.py <venv prefix>
"""
from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
NUMPY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include")


def fix_prefix(prefix: Path) -> list[Path]:
    """Rewrite every CMake file under prefix/share that names the wheel image's include dirs."""
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = []
    for path in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = path.read_text()
        fixed = NUMPY_INCLUDE.sub(numpy_include, text)
        fixed = PYTHON_INCLUDE.sub(python_include, fixed)
        if fixed != text:
            path.write_text(fixed)
            changed.append(path)
    return changed


def main() -> int:
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    changed = fix_prefix(prefix)
    print(f"fix_wheel_cmake: rewrote include paths in {len(changed)} CMake file(s) under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main())
