#!/usr/bin/env bash
# Print the Python 3.11 interpreter to build the venv with; stop with one line naming what is missing.
set -u
python=""
for candidate in "${PYTHON:-}" python3.11 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 && \
     [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "3.11" ]; then
    python=$(command -v "$candidate"); break
  fi
done
[ -n "$python" ] || { echo "missing prerequisite: Python 3.11 (install python3.11 and python3.11-venv, or set PYTHON=/path/to/python3.11)" >&2; exit 1; }
"$python" -c 'import venv, ensurepip' 2>/dev/null || { echo "missing prerequisite: the venv module of $python (install python3.11-venv)" >&2; exit 1; }
"$python" -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
  || { echo "missing prerequisite: Python 3.11 headers (install python3.11-dev)" >&2; exit 1; }
command -v cmake >/dev/null 2>&1 || { echo "missing prerequisite: cmake >= 3.16 (install cmake)" >&2; exit 1; }
command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 || { echo "missing prerequisite: a C and C++ compiler (install build-essential)" >&2; exit 1; }
command -v make >/dev/null 2>&1 || { echo "missing prerequisite: make (install make)" >&2; exit 1; }
echo "$python"
