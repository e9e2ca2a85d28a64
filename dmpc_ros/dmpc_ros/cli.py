"""The `dmpc` command: demo, in-process simulation and ROS runs of DMPC scenarios."""
from __future__ import annotations

import argparse
import sys

from .process_group import ProcessGroup
from .ros.environment import reserve_domain_id, ros_environment


def smoke_demo(count: int, timeout: float) -> int:
    """Two nodes in separate processes exchange PredictedTrajectory messages; print what they exchanged."""
    reservation = reserve_domain_id()
    env = ros_environment(reservation.domain_id)
    print(f"dmpc demo: ROS_DOMAIN_ID={reservation.domain_id}, discovery limited to localhost")
    module = [sys.executable, "-m", "dmpc_ros.ros.smoke"]
    with ProcessGroup() as group:
        listener = group.start("listener", module + ["listener", "--count", str(count)], env)
        group.start("talker", module + ["talker", "--rate", "5"], env)
        try:
            code = group.wait(listener, timeout=timeout)
        except Exception:
            print(f"dmpc demo: the listener received fewer than {count} plans within {timeout:.0f} s", file=sys.stderr)
            return 1
    reservation.release()
    print(f"dmpc demo: listener exited with {code}")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmpc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the main demo")
    demo.add_argument("--count", type=int, default=3, help="plans the listener waits for")
    demo.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return smoke_demo(args.count, args.timeout)
    return 2


if __name__ == "__main__":
    sys.exit(main())
