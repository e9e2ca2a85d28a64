"""Environment for the ROS processes the project starts: localhost-only discovery and a domain id of their own.

DDS discovery multicasts on every interface by default; on shared or lab machines that leaks traffic and
mixes concurrent runs. Every process the project launches (demo, runner, tests) gets
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID reserved with a lock file, so parallel runs
never share a domain. No rclpy import here: the CLI and test fixtures use it before any node exists.
"""
from __future__ import annotations

import fcntl
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Domain ids whose DDS ports stay below Linux's ephemeral port range (32768+): 0..101; 0 is left to users.
DOMAIN_ID_RANGE = range(1, 102)
DOMAIN_ID_LIMIT = 232   # largest id Fast DDS maps to valid ports
LOCK_DIR = Path(tempfile.gettempdir()) / "dmpc_ros_domains"
# Real-time and robot runs give every node process one BLAS thread (unless the environment says otherwise): their
# matrices are small, and the spinning OpenBLAS worker threads of several node processes on a few cores made every
# solve ~10× slower (RTI agent call median 9.8 ms with default threads, 1.1 ms with one; 4 agents and a plant on 2
# cores). Lock-step runs keep the default, as `dmpc sim` and a user's script do: the thread count changes BLAS's
# summation order, and lock-step runs reproduce the in-process simulation bit for bit.
NODE_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class DomainReservation:
    """A ROS domain id held exclusively (via flock) until release() or process exit."""

    domain_id: int
    _lock_file: IO[str] | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def reserve_domain_id(preferred: int | None = None) -> DomainReservation:
    """Reserve a free domain id (the preferred one if given and free, else a random free one)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    candidates = list(DOMAIN_ID_RANGE)
    random.shuffle(candidates)
    if preferred is not None:
        if preferred not in range(0, DOMAIN_ID_LIMIT + 1):
            raise ValueError(f"ROS domain id {preferred} is out of range: allowed 0..{DOMAIN_ID_LIMIT} "
                             "(0..101 on Linux hosts)")
        candidates = [preferred]
    for domain_id in candidates:
        handle = open(LOCK_DIR / f"{domain_id}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        handle.write(str(os.getpid()))
        handle.flush()
        return DomainReservation(domain_id, handle)
    raise RuntimeError(f"no free ROS domain id: all of {candidates[0]}..{candidates[-1]} "
                       "are held by other dmpc_ros runs")


def ros_environment(domain_id: int, localhost_only: bool = True, base: dict[str, str] | None = None,
                    single_blas_thread: bool = False) -> dict[str, str]:
    """Environment for a child ROS process: the given domain and (by default) localhost-only discovery; with
    `single_blas_thread` (real-time and robot runs) one BLAS thread per process."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    if localhost_only:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        env.pop("ROS_STATIC_PEERS", None)
    else:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SUBNET"
    env.setdefault("PYTHONUNBUFFERED", "1")
    if single_blas_thread:
        env.update(blas_thread_limits(env))
    return env


def blas_thread_limits(env) -> dict[str, str]:
    """NODE_THREAD_VARIABLES set to 1 where `env` does not set them."""
    return {name: env.get(name, "1") for name in NODE_THREAD_VARIABLES}
