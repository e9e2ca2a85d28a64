"""Expansion of a scenario into the nodes that run it over ROS — one function shared by the launch files
and `dmpc run`, so both start exactly the same processes with the same parameters."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .schema import Scenario

MODES = ("lock_step", "real_time")


@dataclass(frozen=True)
class NodeSpec:
    executable: str                  # in lib/dmpc_ros (ros2 run dmpc_ros <executable>)
    name: str
    namespace: str
    parameters: dict = field(default_factory=dict)
    lifecycle: bool = True
    package: str = "dmpc_ros"

    @property
    def full_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


MAX_INPUT_TIMEOUT = 3600.0   # [s], the plant's input_timeout range


def node_specs(scenario: Scenario, scenario_file: str | Path, namespace: str = "/dmpc", mode: str = "lock_step",
               output_file: str = "", exit_on_completion: bool = False, iteration_timeout: float = 2.0,
               heartbeat_timeout: float = 2.0) -> list[NodeSpec]:
    """Plant, one agent per subsystem, and the lifecycle manager (which brings the others up in this order)."""
    if mode not in MODES:
        raise ValueError(f"mode '{mode}' is not allowed: must be one of {', '.join(MODES)}")
    if not namespace.startswith("/"):
        raise ValueError(f"namespace '{namespace}' is not allowed: must be absolute (start with '/')")
    lock_step = mode == "lock_step"
    scenario_file = str(Path(scenario_file).resolve())
    # The plant waits for a silent agent as long as a whole negotiation could take before holding its input
    # (at most an hour, the plant parameter's range).
    input_timeout = min(iteration_timeout * (scenario.controller.max_iterations + 2), MAX_INPUT_TIMEOUT)
    plant = NodeSpec("plant", "plant", namespace, {
        "scenario_file": scenario_file, "mode": mode, "output_file": output_file, "input_timeout": input_timeout,
        "exit_on_completion": exit_on_completion, "use_sim_time": False})
    agents = [NodeSpec("agent", f"agent_{i}", namespace, {
        "scenario_file": scenario_file, "agent_id": i, "plan_qos": "reliable" if lock_step else "best_effort",
        "iteration_timeout": iteration_timeout if lock_step else min(iteration_timeout, scenario.sample_time / 4),
        "use_sim_time": lock_step}) for i in range(scenario.num_agents)]
    manager = NodeSpec("lifecycle_manager", "lifecycle_manager", namespace, {
        "node_names": [plant.full_name] + [agent.full_name for agent in agents],
        "heartbeat_topics": [f"{namespace.rstrip('/')}/agent_{i}/heartbeat" for i in range(scenario.num_agents)],
        "heartbeat_timeout": heartbeat_timeout, "transition_timeout": 60.0}, lifecycle=False)
    return [plant, *agents, manager]


def parameters_file(specs: list[NodeSpec]) -> dict:
    """The usual ROS parameter-file layout: fully qualified node name → ros__parameters."""
    return {spec.full_name: {"ros__parameters": dict(spec.parameters)} for spec in specs}
