"""ament_python package dmpc_ros: the sans-IO DMPC core, the in-process simulator and the ROS 2 nodes."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dmpc_ros"

# Executables runnable as `ros2 run dmpc_ros <name>` (installed to lib/dmpc_ros by setup.cfg).
NODES = {
    "agent": "dmpc_ros.ros.agent_node:main",
    "agent_container": "dmpc_ros.ros.agent_container:main",
    "plant": "dmpc_ros.ros.plant_node:main",
    "lifecycle_manager": "dmpc_ros.ros.lifecycle_manager:main",
    "fake_robot": "dmpc_ros.ros.fake_robot:main",
    "smoke_talker": "dmpc_ros.ros.smoke:talker_main",
    "smoke_listener": "dmpc_ros.ros.smoke:listener_main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.json")
                                           + glob("config/*.xml"))),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="dmpc_ros maintainers",
    maintainer_email="maintainers@dmpc-ros.org",
    description="Distributed model predictive control on ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODES.items()]
        + ["dmpc = dmpc_ros.cli:main"],
    },
)
