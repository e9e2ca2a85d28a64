"""ROS 2 message definitions in the `ros2msg` form MCAP schemas and the Foxglove WebSocket protocol carry: the
type's .msg text, then every type it uses (depth first, each once) under a `MSG: pkg/Name` separator line,
as rosbag2 writes them. Read from the .msg files the packages install (share/<pkg>/msg)."""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}
SEPARATOR = "=" * 80
OWN_MESSAGES = Path(__file__).resolve().parents[3] / "dmpc_ros_msgs" / "msg"   # the source tree's, if present


def type_name(message_type: type) -> str:
    """pkg/msg/Name of a generated message class."""
    return f"{message_type.__module__.split('.')[0]}/msg/{message_type.__name__}"


@cache
def _text(package: str, name: str) -> str:
    candidates = [OWN_MESSAGES / f"{name}.msg"] if package == "dmpc_ros_msgs" else []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(package)) / "msg" / f"{name}.msg")
    except Exception:  # not in the ament index: the source tree's copy, if any
        pass
    for path in candidates:
        if path.is_file():
            return "\n".join(line for line in path.read_text().splitlines() if line.strip()
                             and not line.lstrip().startswith("#"))
    raise FileNotFoundError(f"definition of {package}/msg/{name} not found in {[str(c) for c in candidates]}")


def _used_types(package: str, text: str) -> list[tuple[str, str]]:
    used = []
    for line in text.splitlines():
        field_type = re.sub(r"(\[.*\]|<=\d+)$", "", line.split()[0])
        if field_type in PRIMITIVES or re.sub(r"<=\d+$", "", field_type) in PRIMITIVES:
            continue
        if field_type == "Header":
            used.append(("std_msgs", "Header"))
        elif "/" in field_type:
            parts = field_type.split("/")
            used.append((parts[0], parts[-1]))
        else:
            used.append((package, field_type))
    return used


@cache
def definition(name: str) -> str:
    """The concatenated definition of `pkg/msg/Name` (or pkg/Name)."""
    parts = name.split("/")
    package, root = parts[0], parts[-1]
    sections, seen = [_text(package, root)], {(package, root)}
    pending = _used_types(package, sections[0])
    while pending:
        dependency = pending.pop(0)
        if dependency in seen:
            continue
        seen.add(dependency)
        text = _text(*dependency)
        sections.append(f"{SEPARATOR}\nMSG: {dependency[0]}/{dependency[1]}\n{text}")
        pending = _used_types(dependency[0], text) + pending
    return "\n".join(sections)
