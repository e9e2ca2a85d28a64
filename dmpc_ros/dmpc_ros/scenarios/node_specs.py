"""Expansion of a scenario into the nodes that run it over ROS — one function shared by the launch files
and `dmpc run`, so both start exactly the same processes with the same parameters."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .parameters import DEFAULTS, OVERRIDES, PARAMETERS
from .schema import Scenario
from .security import security_parameters
from .source import is_factory

# Real time: a step's input is out 0.6 sample times after its measurement at the latest (the plant's next period
# starts at 1.0; the rest is for delivery and a loaded machine); bench/stalled_agent.py measures what it buys.
REAL_TIME_STEP_BUDGET = 0.6
REAL_TIME_START_GATE = 60.0   # [s] the lifecycle manager's start_gate in real time (ros/lifecycle_manager.py)
# What a respawn policy (process_group.RespawnPolicy) calls each executable's process
KINDS = {"agent": "agent", "agent_container": "agent", "plant": "plant", "lifecycle_manager": "lifecycle_manager"}


def agent_topic(agent_id: int, leaf: str, namespace: str = "") -> str:
    """Topic of one agent's interface: agent_<i>/<leaf>, relative (resolved in the run's namespace) or, with a
    namespace, absolute."""
    relative = f"agent_{agent_id}/{leaf}"
    return f"{namespace.rstrip('/')}/{relative}" if namespace else relative


@dataclass(frozen=True)
class NodeSpec:
    executable: str                  # in lib/dmpc_ros (ros2 run dmpc_ros <executable>)
    name: str
    namespace: str
    parameters: dict = field(default_factory=dict)
    lifecycle: bool = True
    package: str = "dmpc_ros"
    hosted: tuple["NodeSpec", ...] = ()   # an agent container's nodes (their names are its arguments)

    @property
    def full_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"

    @property
    def nodes(self) -> tuple["NodeSpec", ...]:
        """The ROS nodes this process runs: a container's hosted nodes, else itself."""
        return self.hosted or (self,)


def source_parameters(source: str | Path) -> dict:
    """`scenario_file` (a YAML path, made absolute) or `scenario_factory` (module:function or file.py:function,
    the file made absolute) — how every node finds the scenario."""
    source = str(source)
    if is_factory(source):
        module, _, function = source.rpartition(":")
        if module.endswith(".py"):
            module = str(Path(module).resolve())
        return {"scenario_file": "", "scenario_factory": f"{module}:{function}"}
    return {"scenario_file": str(Path(source).resolve()), "scenario_factory": ""}


def override_parameters(overrides: dict) -> tuple[dict, dict]:
    """(agent, plant) node parameters for command-line overrides (validated before, by Scenario.with_overrides):
    each node gets those it declares (agents get `steps` too: their reference is sampled for the run); the others
    (strict) the runner applies itself."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"override {unknown[0]} is not allowed: must be one of {', '.join(OVERRIDES)}")
    agent, plant = ({name: PARAMETERS[name].type(value) for name, value in overrides.items()
                     if node in PARAMETERS[name].nodes} for node in ("agent", "plant"))
    return agent, plant


def node_specs(scenario: Scenario, source: str | Path, namespace: str = DEFAULTS["namespace"],
               mode: str = DEFAULTS["mode"], output_file: str = DEFAULTS["output_file"],
               exit_on_completion: bool = DEFAULTS["exit_on_completion"],
               iteration_timeout: float = DEFAULTS["iteration_timeout"],
               heartbeat_timeout: float = DEFAULTS["heartbeat_timeout"],
               overrides: dict | None = None, settings: dict | None = None,
               authenticate: bool = DEFAULTS["authenticate"], keystore: str = DEFAULTS["keystore"],
               respawn: str = DEFAULTS["respawn"], resume_dir: str = DEFAULTS["resume_dir"]) -> list[NodeSpec]:
    """Plant, one agent per subsystem (and per joiner of team_changes: member_count), and the lifecycle manager
    (which brings the others up in this order).
    `source` is the scenario's YAML file or Python factory; `overrides` (OVERRIDES fields) become node
    parameters, so `scenario` must already carry them; `settings`: other table parameters (e.g. the plant's guard),
    each given to the nodes that declare it. The settings are checked against the parameter table.
    `authenticate`, `keystore`: require authentication beyond the scenario's security section (the nodes then get
    both, the keystore as an absolute path; ScenarioError when it is on without a keystore). `respawn`: the
    lifecycle manager's (it then brings up nodes that come back); `resume_dir`: where plant and agents keep what a
    respawned process resumes from."""
    settings = dict(settings or {})
    for name, value in (("namespace", namespace), ("mode", mode), ("iteration_timeout", iteration_timeout),
                        ("heartbeat_timeout", heartbeat_timeout), ("respawn", respawn), ("resume_dir", resume_dir),
                        *settings.items()):
        PARAMETERS[name].check(value, f"{name} {value!r}")
    plant_settings, agent_settings = ({name: value for name, value in settings.items()
                                       if node in PARAMETERS[name].nodes} for node in ("plant", "agent"))
    lock_step = mode == "lock_step"
    resume_dir = str(Path(resume_dir).resolve()) if resume_dir else ""
    where = source_parameters(source)
    agent_overrides, plant_overrides = override_parameters(overrides or {})
    security = security_parameters(scenario.security, authenticate, keystore)
    # The plant waits for a silent agent as long as a whole negotiation could take before holding its input
    # (at most the top of the plant parameter's range).
    input_timeout = min(iteration_timeout * (scenario.controller.max_iterations + 2), PARAMETERS["input_timeout"].high)
    plant = NodeSpec("plant", "plant", namespace, {
        **where, **plant_overrides, **plant_settings, **security, "mode": mode, "output_file": output_file,
        "input_timeout": input_timeout, "exit_on_completion": exit_on_completion, "resume_dir": resume_dir,
        "use_sim_time": False})
    agents = [NodeSpec("agent", f"agent_{i}", namespace, {
        **where, **agent_overrides, **agent_settings, **security, "agent_id": i, "resume_dir": resume_dir,
        "plan_qos": agent_settings.get("plan_qos") or ("reliable" if lock_step else "best_effort"),
        "iteration_timeout": iteration_timeout if lock_step else min(iteration_timeout, scenario.sample_time / 4),
        "step_budget": 0.0 if lock_step else REAL_TIME_STEP_BUDGET,
        "use_sim_time": lock_step}) for i in range(member_count(scenario))]
    manager = NodeSpec("lifecycle_manager", "lifecycle_manager", namespace, {
        "node_names": [plant.full_name] + [agent.full_name for agent in agents],
        "heartbeat_topics": [agent_topic(i, "heartbeat", namespace) for i in range(scenario.num_agents)],
        # the joiners of team_changes start later (a parameter file cannot type an empty list: none without them)
        **({"late_nodes": [agent.full_name for agent in agents[scenario.num_agents:]]}
           if len(agents) > scenario.num_agents else {}),
        "heartbeat_timeout": heartbeat_timeout, "respawn": respawn,
        "start_gate": 0.0 if lock_step else REAL_TIME_START_GATE},
        lifecycle=False)   # transition_timeout: the node's default
    return [plant, *agents, manager]


def member_count(scenario: Scenario) -> int:
    """How many agent nodes a run has: one per initial agent and one per joiner of `team_changes` (its persistent
    id; scenarios/team_changes.py)."""
    return scenario.num_agents + sum(change.kind == "join" for change in scenario.team_changes)


JOINER_LEAD = 3   # [steps] before its change step a joiner's node starts in `dmpc run` (start-up and bring-up overlap
#                   the run; the plant waits at the change step for its vote)


def joiner_starts(scenario: Scenario) -> dict[str, int]:
    """The joiners' agent nodes (team_changes) → the step from which `dmpc run` starts each (JOINER_LEAD before its
    change step): a joiner's process is not there from the start, as a vehicle that joins a platoon is not."""
    return {f"agent_{c.member}": max(c.step - JOINER_LEAD, 0) for c in scenario.team_changes if c.kind == "join"}


def host_agents(specs: list[NodeSpec], per_process: int) -> list[NodeSpec]:
    """The specs with the agents hosted `per_process` to an agent container (in agent order), in the agents'
    place; the plant and the lifecycle manager stay processes of their own."""
    PARAMETERS["agents_per_process"].check(per_process, f"agents per process {per_process!r}")
    agents = [spec for spec in specs if spec.executable == "agent"]
    groups = [tuple(agents[k:k + per_process]) for k in range(0, len(agents), per_process)]
    containers = [NodeSpec("agent_container", f"agents_{g}", group[0].namespace, lifecycle=False, hosted=group)
                  for g, group in enumerate(groups)]
    first = specs.index(agents[0]) if agents else len(specs)
    rest = [spec for spec in specs if spec.executable != "agent"]
    return rest[:first] + containers + rest[first:]


def parameters_file(specs: list[NodeSpec]) -> dict:
    """The usual ROS parameter-file layout: fully qualified node name → ros__parameters (a container's hosted
    nodes each under their own name)."""
    return {node.full_name: {"ros__parameters": dict(node.parameters)} for spec in specs for node in spec.nodes}


HEAD_NODES = ("plant", "lifecycle_manager")   # a split team's head computer runs both, records and writes results


def select_nodes(specs: list[NodeSpec], selection: str) -> list[NodeSpec]:
    """The specs of the nodes this computer runs, for a team split across computers (`dmpc run --nodes`, the
    launch argument nodes:=). `selection`: empty or "all" (every node), or comma-separated names: plant,
    lifecycle_manager, agent_<i>, or a range agent_<i>-<j>. The plant and the lifecycle manager go together (the
    head computer: it brings the team up, records the bag and writes the results). ValueError, one line, naming the
    entry and what is allowed."""
    text = selection.strip()
    if text in ("", "all"):
        return list(specs)
    by_name = {spec.name: spec for spec in specs}
    agents = [spec.name for spec in specs if spec.executable == "agent"]
    allowed = f"all, or comma-separated names of {', '.join(HEAD_NODES)}, agent_0..agent_{len(agents) - 1} " \
              "(a range: agent_0-3)"
    chosen: list[str] = []
    for entry in (part.strip() for part in text.split(",")):
        names = _expand_range(entry, len(agents))
        if names is None or any(name not in by_name for name in names):
            raise ValueError(f"nodes: entry '{entry[:40]}' is not allowed: must be {allowed}")
        chosen += [name for name in names if name not in chosen]
    if sum(name in chosen for name in HEAD_NODES) == 1:
        raise ValueError(f"nodes: {text[:80]} is not allowed: plant and lifecycle_manager run on the same computer "
                         "(the head, which records and writes the results); name both or neither")
    return [spec for spec in specs if spec.name in chosen]


def _expand_range(entry: str, count: int) -> list[str] | None:
    """agent_<i>-<j> → [agent_i, …, agent_j]; any other entry as itself; None if the range is malformed."""
    prefix = "agent_"
    if not (entry.startswith(prefix) and "-" in entry):
        return [entry]
    first, _, last = entry[len(prefix):].partition("-")
    if not (first.isdigit() and last.isdigit() and int(first) <= int(last) < count):
        return None
    return [f"{prefix}{i}" for i in range(int(first), int(last) + 1)]


def is_head(specs: list[NodeSpec]) -> bool:
    """Whether these (a computer's) nodes include the lifecycle manager: that computer leads the run."""
    return any(spec.executable == "lifecycle_manager" for spec in specs)
