"""ROS 2 layer: the only part of dmpc_ros that imports rclpy (nodes, conversions, QoS, environment)."""
