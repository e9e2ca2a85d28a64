#!/usr/bin/env bash
# Build a ROS interface package (default: dmpc_ros_msgs) with cmake against the ROS 2 wheels in the venv and
# install it into the venv, so that `import <package>` works from the venv's Python with no sourcing.
# Usage: tools/build_msgs.sh VENV [PACKAGE_SOURCE_DIR]
set -euo pipefail
venv=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
source_dir=$(cd "${2:-$top/dmpc_ros_msgs}" && pwd)
name=$(basename "$source_dir")
build="$top/build/$name"
site="$venv/lib/python3.11/site-packages"
export LD_LIBRARY_PATH="$venv/lib:$(ls -d "$site"/ros_*.libs | tr '\n' ':')${LD_LIBRARY_PATH:-}"
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
mkdir -p "$build" && touch "$top/build/COLCON_IGNORE"
cmake -S "$source_dir" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$venv/bin/python" \
  > "$build.configure.log" 2>&1 || { tail -30 "$build.configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" > "$build.build.log" 2>&1 || { tail -30 "$build.build.log"; exit 1; }
cmake --install "$build" > "$build.install.log" 2>&1 || { tail -30 "$build.install.log"; exit 1; }
echo "built and installed $name into $venv (logs: $build.*.log)"
