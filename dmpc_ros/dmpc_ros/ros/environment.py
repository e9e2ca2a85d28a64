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


def reserve_domain_id(preferred: int | None = None, exclusive: bool = True) -> DomainReservation:
    """Reserve a free domain id (the preferred one if given and free, else a random free one). Not `exclusive`
    (a team split across computers: every computer names the same id, and several may be network namespaces of
    one machine): the preferred id is taken as it is, without a lock."""
    if not exclusive and preferred is not None:
        if preferred not in range(0, DOMAIN_ID_LIMIT + 1):
            raise ValueError(f"ROS domain id {preferred} is out of range: allowed 0..{DOMAIN_ID_LIMIT} "
                             "(0..101 on Linux hosts)")
        return DomainReservation(preferred)
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
                    single_blas_thread: bool = False, peers: tuple[str, ...] = ()) -> dict[str, str]:
    """Environment for a child ROS process: the given domain and (by default) localhost-only discovery; with
    `peers` (a team split across computers) static discovery: the peers by unicast, no multicast
    (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST + ROS_STATIC_PEERS; measured in test_hosts.py: no multicast packet
    leaves, and SUBNET without peers finds nobody once multicast is dropped); with `single_blas_thread` (real-time
    and robot runs) one BLAS thread per process."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    if peers:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        env["ROS_STATIC_PEERS"] = ";".join(peers)
    elif localhost_only:
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


# Reliable topics on lossy links (a team across computers): Fast DDS repairs a lost sample when a heartbeat tells the
# reader it is missing, and its default heartbeat period is 3 s. A lock-step iteration waits for every plan, so at
# 30 % loss a run of mass_spring over 3 network hosts did 2 of 20 steps in 200 s; with 20 ms heartbeats (and short
# acknack delays) all 20 in 44 s with the loss-free trajectory (test_hosts.py, bench/faults.py). Loopback loses
# nothing: localhost runs keep Fast DDS's defaults.
PROFILES_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def _duration(name: str, seconds: float) -> str:
    whole = int(seconds)
    return f"<{name}><sec>{whole}</sec><nanosec>{int(round((seconds - whole) * 1e9))}</nanosec></{name}>"


def fastdds_profile(repair_period: float) -> str:
    """A Fast DDS XML profile file whose default writers send heartbeats every `repair_period` seconds and answer
    negative acknowledgements within a millisecond, and whose readers acknowledge at once."""
    writer = "".join((_duration("initial_heartbeat_delay", min(0.005, repair_period)),
                      _duration("heartbeat_period", repair_period), _duration("nack_response_delay", 0.001)))
    reader = "".join((_duration("initial_acknack_delay", 0.005), _duration("heartbeat_response_delay", 0.001)))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<dds xmlns="http://www.eprosima.com"><profiles>\n'
            f'<data_writer profile_name="dmpc_writer" is_default_profile="true"><times>{writer}</times></data_writer>\n'
            f'<data_reader profile_name="dmpc_reader" is_default_profile="true"><times>{reader}</times></data_reader>\n'
            '</profiles></dds>\n')


def lossy_link_environment(folder: Path, repair_period: float, env: dict[str, str]) -> dict[str, str]:
    """{FASTDDS_DEFAULT_PROFILES_FILE: a profile written into `folder`} for a run whose links may lose packets, unless
    `env` already names a profile file (the user's own wins); {} when `repair_period` is 0 (Fast DDS's defaults)."""
    if repair_period <= 0 or env.get(PROFILES_VARIABLE):
        return {}
    path = folder / "fastdds_profile.xml"
    path.write_text(fastdds_profile(repair_period))
    return {PROFILES_VARIABLE: str(path)}
