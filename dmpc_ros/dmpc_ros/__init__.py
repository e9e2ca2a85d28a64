"""dmpc_ros: distributed model predictive control with a sans-IO core and ROS 2 drivers."""

__version__ = "0.1.0"
