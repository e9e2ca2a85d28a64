"""A tiny lifecycle node for tests: its timer publishes on a lifecycle publisher in every state after configure.

The publisher must mute itself while the node is inactive, so a subscriber sees messages only while active.
"""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from std_msgs.msg import UInt32


class Beacon(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("beacon")
        self.count = 0
        self.publisher = None
        self.timer = None

    def on_configure(self, state):
        self.publisher = self.create_lifecycle_publisher(UInt32, "beacon/beat", 10)
        self.timer = self.create_timer(0.02, self.beat)
        return TransitionCallbackReturn.SUCCESS

    def beat(self) -> None:
        self.count += 1
        self.publisher.publish(UInt32(data=self.count))

    def on_cleanup(self, state):
        self.destroy_timer(self.timer)
        self.destroy_lifecycle_publisher(self.publisher)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        return TransitionCallbackReturn.SUCCESS


def main() -> int:
    rclpy.init()
    node = Beacon()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
