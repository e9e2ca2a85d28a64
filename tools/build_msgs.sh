#!/usr/bin/env bash
# Build dmpc_ros_msgs with cmake against the ROS 2 wheels in the venv and install it into the venv,
# so `import dmpc_ros_msgs` works from the venv's Python with no sourcing.
set -euo pipefail
venv=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build/dmpc_ros_msgs"
site="$venv/lib/python3.11/site-packages"
export LD_LIBRARY_PATH="$venv/lib:$(ls -d "$site"/ros_*.libs | tr '\n' ':')${LD_LIBRARY_PATH:-}"
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
mkdir -p "$build" && touch "$top/build/COLCON_IGNORE"
cmake -S "$top/dmpc_ros_msgs" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$venv/bin/python" \
  > "$build.configure.log" 2>&1 || { tail -30 "$build.configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" > "$build.build.log" 2>&1 || { tail -30 "$build.build.log"; exit 1; }
cmake --install "$build" > "$build.install.log" 2>&1 || { tail -30 "$build.install.log"; exit 1; }
echo "built and installed dmpc_ros_msgs into $venv (logs: $build.*.log)"
