"""`ros2 run dmpc_ros agent_container agent_0 agent_1 … --ros-args -r __ns:=/dmpc --params-file P`: several agent
lifecycle nodes in one process on one executor, like a component container.

Each hosted node keeps its own name, topics, parameters (from the parameter file, by its fully qualified name) and
lifecycle, so the lifecycle manager and the other nodes cannot tell it from a node in a process of its own. It lets
a scenario with more agents than the machine has room for processes run (`dmpc run --agents-per-process K`).
"""
from __future__ import annotations

import re
import sys

from rclpy.utilities import remove_ros_args

from .agent_node import AgentNode
from .spin import init_node_process, spin_nodes

NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def hosted_names(arguments: list[str]) -> list[str]:
    """The node names given before --ros-args: at least one, each a valid ROS node name, no repeats."""
    if not arguments:
        raise ValueError("agent_container: no node names given: pass one or more, e.g. agent_0 agent_1")
    for name in arguments:
        if not NODE_NAME.fullmatch(name):
            raise ValueError(f"agent_container: node name '{name}' is not allowed: letters, digits and '_', "
                             "not starting with a digit")
    repeated = sorted({name for name in arguments if arguments.count(name) > 1})
    if repeated:
        raise ValueError(f"agent_container: node name '{repeated[0]}' is given twice: each hosted node needs its own")
    return list(arguments)


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv)
    try:
        names = hosted_names(remove_ros_args(argv)[1:])
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    init_node_process(argv)
    nodes = [AgentNode(name) for name in names]
    spin_nodes(nodes, lambda: all(node.finished for node in nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
