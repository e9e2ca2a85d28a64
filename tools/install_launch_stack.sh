#!/usr/bin/env bash
# Install the ROS 2 launch stack and `ros2` CLI (launch, launch_ros, ros2cli and its verbs, rosidl_runtime_py),
# built from upstream sources for the Kilted wheels, into the venv: composition_interfaces (which launch_ros
# imports) is built from its sources like dmpc_ros_msgs, the pure-Python wheels go in with --no-deps (their
# metadata names ROS packages that are not on PyPI), their own runtime needs from requirements-launch.txt.
# Usage: tools/install_launch_stack.sh VENV WHEEL_FOLDER   (the folder's ../src holds composition_interfaces)
set -euo pipefail
venv=$1
wheels=$(cd "$2" 2>/dev/null && pwd) || { echo "launch-stack: wheel folder '$2' does not exist (set WHEELS=)"; exit 1; }
top=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
found=("$wheels"/*.whl)
[ ${#found[@]} -gt 0 ] || { echo "launch-stack: no wheels in $wheels"; exit 1; }
interfaces="$wheels/../src/composition_interfaces"
[ -f "$interfaces/package.xml" ] || { echo "launch-stack: $interfaces (composition_interfaces sources) is missing"; exit 1; }
"$top/tools/build_msgs.sh" "$venv" "$interfaces"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${found[@]}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$top/requirements-launch.txt"
"$venv/bin/ros2" pkg prefix dmpc_ros > /dev/null
echo "installed the launch stack (${#found[@]} wheels from $wheels): ros2 launch dmpc_ros <file>.launch.py"
