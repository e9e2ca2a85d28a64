"""`ros2 launch dmpc_ros robots.launch.py`: DMPC agents driving robot bases, no plant node. Each agent reads
<robot_prefix><i>/odom and sends <robot_prefix><i>/cmd_vel; `agents:=0,2` runs some of them on this computer (the
rest elsewhere, same ROS_DOMAIN_ID and start_time); `fake_robots:=true` adds simulated bases.
Arguments: `ros2 launch dmpc_ros robots.launch.py --show-args`.
"""
from dmpc_ros.ros.launch_description import robots_launch_description


def generate_launch_description():
    return robots_launch_description()
