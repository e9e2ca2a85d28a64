"""ROS 2 layer: the only part of dmpc_ros that imports rclpy (nodes, conversions, QoS, environment).

Node processes run one BLAS thread each (unless the environment says otherwise): their matrices are small, and
OpenBLAS's spinning worker threads of several node processes on a few cores made every solve ~10× slower
(measured: RTI agent call median 9.8 ms with default threads, 1.1 ms with one, 4 agents and a plant on 2 cores).
Set before numpy is first imported, which is why it is here."""
import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
