"""Every node and run parameter of the stack, declared once (sans-IO: no rclpy).

One row per parameter: its name, type, default, range or choices, the nodes that declare it, the `dmpc` flag and
the launch arguments that set it, whether it is read-only or takes effect at once (live), and a one-line
description. Everything else is generated from this table: the node declarations (`ros/parameters.py`), the
parameters `dmpc run` and the launch files pass (`node_specs`), the `dmpc` flags (cli.py), the launch arguments
(`ros/launch_description.py`), the scenario schema's override ranges, and the table in README.md (checked equal by
test_parameters.py; `tools/readme_parameters.py` rewrites it). A value is validated against
its row wherever it comes from, with one line naming the parameter, the value and what is allowed.

Overrides (`override` set) change a scenario field; on a node their `unset` value means "the scenario's".
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..coordination import ALGORITHMS
from ..coordination.negotiator import DEFAULT_ITERATION_TIMEOUT
from ..mpc.input_parametrization import TAILS
from ..mpc.qp import BACKENDS
from ..sim.network import LOSS_MODELS
from ..sim.plant_inputs import SAFE_INPUTS

MAX_AGENTS = 1000          # agents a scenario may have (so agent ids are 0 … MAX_AGENTS − 1)
NODES = ("agent", "plant", "lifecycle_manager", "fake_robot")
COMMANDS = ("sim", "run", "explicit", "viz-config", "keys")   # dmpc commands with parameter flags
OVERRIDE_COMMANDS = ("sim", "run", "explicit")
LAUNCH_FILES = ("scenario", "robots")   # every scenario launch file (scenario.launch.py, …) and robots.launch.py
MODES = ("lock_step", "real_time")
PLAN_QOS = ("reliable", "best_effort", "best_effort_deadline")
LATE_INPUTS = ("plan", "hold")   # the plant parameter late_input (sim/plant_inputs.NextStepLaw)
ROBOT_STATES = ("odometry", "pose")
RESPAWN = ("none", "agents", "all")   # which node processes a run starts again when they die (process_group.py)
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
TYPE_NAMES = {bool: "bool", int: "integer", float: "double", str: "string", list[str]: "string[]",
              list[int]: "integer[]"}
NAMESPACE_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shown(number: float) -> str:
    """A bound as messages and the README print it: 0.001, 3600.0, 1e+06."""
    return f"{number:g}" if abs(number) >= 1e5 else str(number)


def is_namespace(value: str) -> bool:
    """An absolute ROS namespace: / alone, or parts of letters, digits and _ not starting with a digit, each after
    one / (no empty part, no trailing /), at most 200 characters."""
    return isinstance(value, str) and value.startswith("/") and len(value) <= 200 and \
        (value == "/" or all(NAMESPACE_PART.fullmatch(part) for part in value[1:].split("/")))


HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
NODE_ENTRY = re.compile(r"all|plant|lifecycle_manager|agent_\d{1,5}(-\d{1,5})?")


def peer_addresses(value: str) -> tuple[str, ...]:
    """The addresses of a comma-separated peer list (IPv4, IPv6 or host names), empty entries dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def is_peer_list(value: str) -> bool:
    """Comma-separated IP addresses or host names (at most 64 of them, each at most 253 characters)."""
    peers = peer_addresses(value)
    return len(value) <= 8000 and len(peers) <= 64 and all(len(p) <= 253 and (_is_ip(p) or HOSTNAME.fullmatch(p))
                                                           for p in peers)


def _is_ip(text: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_node_selection(value: str) -> bool:
    """Comma-separated entries all, plant, lifecycle_manager, agent_<i> or agent_<i>-<j> (the scenario's size is
    checked when the run starts: node_specs.select_nodes)."""
    return len(value) <= 4000 and all(NODE_ENTRY.fullmatch(part.strip()) for part in value.split(",")) \
        if value.strip() else True


@dataclass(frozen=True)
class Parameter:
    name: str
    type: Any                               # bool, int, float, str, list[str] or list[int]
    default: Any                            # None: an array declared without a value
    description: str
    nodes: tuple[str, ...] = ()             # the nodes that declare it (none: a run setting of dmpc / launch)
    low: float | None = None                # range [low, high] (open at low with open_low)
    high: float | None = None
    open_low: bool = False
    choices: tuple[str, ...] = ()
    read_only: bool = False                 # fixed once the node is up
    live: bool = False                      # `ros2 param set` takes effect at once
    override: tuple[str, str] | None = None   # the scenario field (section, key) it overrides
    flag: str | None = None                 # dmpc --<flag>
    commands: tuple[str, ...] = ()          # … of these commands
    launch: tuple[str, ...] = ()            # a launch argument of these launch files
    launch_name: str | None = None          # … named so (default: the parameter's name)
    rule: Callable[[Any], bool] | None = None   # a check a range cannot say …
    rule_text: str = ""                     # … and what it allows
    by_mode: bool = False                   # its flag is None when not given: the run picks the value by mode

    @property
    def unset(self) -> Any:
        """An override's "not given" value: empty, 0, or (a float whose range starts at 0) negative, -1."""
        if self.override is None or self.type is bool:
            return None
        return {str: "", int: 0, float: -1.0}[self.type]

    def is_unset(self, value: Any) -> bool:
        unset = self.unset
        if unset is None:
            return False
        return value == unset or (self.type is float and isinstance(value, (int, float)) and value < 0)

    @property
    def argument(self) -> str:
        return self.launch_name or self.name

    @property
    def requirement(self) -> str:
        """What a value must be, as the error messages say it."""
        if self.rule_text:
            return self.rule_text
        if self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.type is bool:
            return "must be true or false"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '≥'} {shown(self.low)}")
        if self.high is not None:
            parts.append(f"≤ {shown(self.high)}")
        kind = {int: "an integer", float: "a number"}.get(self.type, f"a {TYPE_NAMES[self.type]}")
        return f"must be {' and '.join(parts)}" if parts else f"must be {kind}"

    def problem(self, value: Any, unset_allowed: bool = True) -> str | None:
        """None when `value` is allowed here (an override's unset value is, unless not unset_allowed), else what
        is allowed."""
        if unset_allowed and self.is_unset(value):
            return None
        if self.type is bool:
            return None if isinstance(value, bool) else self.requirement
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (isinstance(value, float) and not math.isfinite(value)) or \
                    (self.type is int and isinstance(value, float) and not value.is_integer()):
                rest = self.requirement[len("must be "):]
                kind = "an integer" if self.type is int else "a finite number"
                return f"must be {kind}" + ("" if rest in ("a number", "an integer") else f" {rest}")
            too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
            if too_low or (self.high is not None and value > self.high):
                return self.requirement
        if self.choices and value not in self.choices:
            return self.requirement
        if self.rule is not None and not self.rule(value):
            return self.requirement
        return None

    def check(self, value: Any, where: str, unset_allowed: bool = True) -> Any:
        """`value` if allowed, else ValueError '<where> is not allowed: <requirement>'."""
        problem = self.problem(value, unset_allowed)
        if problem:
            raise ValueError(f"{where} is not allowed: {problem}")
        return value

    def check_node_value(self, value: Any) -> Any:
        return self.check(value, f"parameter {self.name}: {value!r}")

    def from_text(self, text: str) -> Any:
        """A launch argument's value (text), typed and checked; an override is unset by empty text (only)."""
        where = f"launch argument {self.argument}:={text}"
        if text == "" and self.unset is not None:
            return self.unset
        if self.type is bool:
            if text.lower() not in TRUE + FALSE:
                raise ValueError(f"{where} is not allowed: {self.requirement}")
            return text.lower() in TRUE
        try:
            value = self.type(text) if self.type in (int, float, str) else text
        except ValueError:
            kind = "an integer" if self.type is int else "a number"
            raise ValueError(f"{where} is not allowed: must be {kind}"
                             f"{'' if self.requirement.startswith('must be a') else self.requirement[7:]}") from None
        return self.check(value, where, unset_allowed=False)

    @property
    def launch_default(self) -> str:
        """The default as launch text (an override's: empty, the scenario's)."""
        if self.unset is not None:
            return ""
        return str(self.default).lower() if self.type is bool else str(self.default)

    @property
    def help(self) -> str:
        """The description, with what an unset override means."""
        if self.unset is None:
            return self.description
        unset = "empty" if self.type is str else ("0" if self.type is int else "negative")
        return f"{self.description}; {unset}: the scenario's"

    @property
    def bounds(self) -> dict:
        """The range as scenarios.validation.number's keywords (the schema validates overridden fields so)."""
        bounds = {"minimum": self.low, "strict_minimum": self.open_low, "integer": self.type is int, "finite": True}
        return bounds | ({"maximum": self.high} if self.high is not None else {})


SOURCE = dict(nodes=("agent", "plant"), read_only=True)
OVERRIDE = dict(commands=OVERRIDE_COMMANDS)
ROBOT = dict(nodes=("agent",), read_only=True)
FAKE = dict(nodes=("fake_robot",), read_only=True)

TABLE: tuple[Parameter, ...] = (
    # -- where the scenario comes from ------------------------------------------------------------------------------
    Parameter("scenario_file", str, "", "scenario YAML (model, weights, constraints, sample time); or use "
              "scenario_factory", **SOURCE),
    Parameter("scenario_factory", str, "", "Python function building the scenario: module:function, "
              "/path/file.py:function or an entry point of group dmpc_ros.scenarios", **SOURCE),
    # -- scenario overrides -----------------------------------------------------------------------------------------
    Parameter("algorithm", str, "", "coordination algorithm (an agent node: any but centralized)", nodes=("agent",),
              choices=ALGORITHMS, override=("controller", "algorithm"), flag="algorithm", **OVERRIDE),
    Parameter("horizon", int, 0, "prediction horizon N [steps]", nodes=("agent",), low=1, high=500,
              override=("controller", "horizon"), flag="horizon", **OVERRIDE),
    Parameter("control_horizon", int, 0, "control horizon N_c of every agent (inputs after it held or the terminal "
              "law; per agent in the scenario file)", nodes=("agent",), low=1, high=500,
              override=("controller", "control_horizon"), flag="control-horizon", **OVERRIDE),
    Parameter("control_tail", str, "", "the inputs after the control horizon", nodes=("agent",), choices=TAILS,
              override=("controller", "control_tail"), flag="control-tail", **OVERRIDE),
    Parameter("max_iterations", int, 0, "negotiation iterations per step (at most; a scenario without "
              "controller.max_iterations: 30)", nodes=("agent",), low=1, high=100_000,
              override=("controller", "max_iterations"), flag="iterations", **OVERRIDE),
    Parameter("tolerance", float, -1.0, "relative plan-change tolerance of the stopping rule", nodes=("agent",),
              low=0.0, override=("controller", "tolerance"), flag="tolerance", **OVERRIDE),
    Parameter("solver", str, "", "QP back end", nodes=("agent",), choices=BACKENDS, override=("controller", "solver"),
              flag="solver", **OVERRIDE),
    # One maximum for the file, the flag, the launch argument and the nodes: 10⁶ steps (a day at 0.1 s).
    Parameter("steps", int, 0, "control steps of the run (agents sample their reference for them)",
              nodes=("agent", "plant"), low=1, high=1_000_000, override=("simulation", "steps"), flag="steps",
              launch=LAUNCH_FILES, **OVERRIDE),
    Parameter("strict", bool, False, "end the run at the first step without a solution, with the strict exit code (3) "
              "(also simulation.strict)", override=("simulation", "strict"), flag="strict", **OVERRIDE),
    # Lossy links between hosts in dmpc sim (sim/network.py); a ROS run's loss is the network's own.
    Parameter("link_loss", float, -1.0, "dmpc sim: probability that a link between two hosts loses a plan "
              "message, per message and direction (links within a host: none)", low=0.0, high=0.99,
              override=("network", "link_loss"), flag="link-loss", commands=("sim",)),
    Parameter("hosts", str, "", "dmpc sim: the agents of each host, hosts split by / and agents by , (e.g. 0,1/2,3); "
              "the scenario's network.hosts if empty, else each agent a host of its own", override=("network", "hosts"),
              flag="hosts", commands=("sim",)),
    Parameter("loss_model", str, "", "dmpc sim: what a lost packet does to a plan: best_effort (the plan is lost) or "
              "reliable (retransmitted after network.retransmit_delay per loss, in order: late)", choices=LOSS_MODELS,
              override=("network", "loss_model"), flag="loss-model", commands=("sim",)),
    # -- the run ----------------------------------------------------------------------------------------------------
    Parameter("namespace", str, "/dmpc", "ROS namespace of the run's nodes and topics", flag="namespace",
              commands=("run", "viz-config", "keys"), launch=LAUNCH_FILES, rule=is_namespace,
              rule_text="an absolute ROS namespace such as /dmpc (letters, digits and _ per part, not starting with "
                        "a digit; parts joined by single /)"),
    Parameter("mode", str, "lock_step", "time keeping: lock_step (the plant owns time) or real_time (fixed-rate "
              "plant, zero-order hold)", nodes=("plant",), choices=MODES, read_only=True, flag="mode",
              commands=("run",), launch=("scenario",)),
    Parameter("timeout", float, 600.0, "abort the run after this many seconds", low=0.0, open_low=True, high=1e6,
              flag="timeout", commands=("run",)),
    Parameter("death_grace", float, 3.0, "keep the others running this long after a node dies, then stop [s]",
              low=0.0, high=3600.0, flag="death-grace", commands=("run",)),
    Parameter("agents_per_process", int, 1, "agent nodes hosted per process (one executor, like a component "
              "container)", low=1, high=MAX_AGENTS, flag="agents-per-process", commands=("run",)),
    # -- a team split across computers (README "Several computers"; ros/environment.py, node_specs.select_nodes) ----
    Parameter("nodes", str, "all", "the nodes this computer runs: all, or plant,lifecycle_manager (the head, which "
              "records and writes the results) and/or agent_<i> / agent_<i>-<j>, comma-separated; every computer "
              "names its own and uses the same --domain-id", flag="nodes", commands=("run",), launch=("scenario",),
              rule=is_node_selection, rule_text="all, or comma-separated plant, lifecycle_manager, agent_<i>, "
                                                "agent_<i>-<j>"),
    Parameter("peers", str, "", "static discovery: the team's computers (IP addresses or host names, "
              "comma-separated), found by unicast with multicast off (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST + "
              "ROS_STATIC_PEERS); empty: this computer only (or --network)", flag="peers", commands=("run",),
              launch=("scenario",), rule=is_peer_list,
              rule_text="comma-separated IP addresses or host names (at most 64)"),
    Parameter("repair_period", float, 0.02, "heartbeat period of reliable topics when the team is not on one "
              "computer (--peers, --network): how soon DDS repairs a lost packet (Fast DDS's own: 3 s, which stalls a "
              "lossy lock-step run); 0: Fast DDS's default [s]", low=0.0, high=10.0, flag="repair-period",
              commands=("run",)),
    # Crash and rejoin (issue 28): `dmpc run` (process_group.RespawnPolicy) and the launch files (launch_ros respawn)
    # start a dead node process again; the lifecycle manager brings it up again while the others run on.
    Parameter("respawn", str, "none", "start a node process that died again: none, agents (agent processes), all "
              "(also the plant and the lifecycle manager); the manager then configures and activates a node that "
              "came back and adopts nodes already active", nodes=("lifecycle_manager",), choices=RESPAWN,
              read_only=True, flag="respawn", commands=("run",), launch=("scenario",)),
    Parameter("respawn_limit", int, 3, "respawn: restarts per process at most (then a death ends the run as "
              "without respawn)", low=0, high=1000, flag="respawn-limit", commands=("run",), launch=("scenario",)),
    Parameter("respawn_delay", float, 0.5, "respawn: seconds from a process's death to its restart", low=0.0,
              high=60.0, flag="respawn-delay", commands=("run",), launch=("scenario",)),
    Parameter("resume_dir", str, "", "folder where the plant keeps its step and trajectory and each agent its last "
              "final plan, every step, so that a respawned process resumes from them (dmpc run --respawn: "
              "<output>/resume); empty: nothing kept", nodes=("agent", "plant"), read_only=True),
    # -- authentication (scenarios/security.py: on when the scenario or these require it) ----------------------------
    Parameter("authenticate", bool, False, "require HMAC-SHA256 authentication of plans and control inputs (also "
              "security.authenticate; needs keystore)", nodes=("agent", "plant"), read_only=True, flag="authenticate",
              commands=("run",), launch=("scenario",)),
    Parameter("keystore", str, "", "team keystore folder (dmpc keys create); given: authentication on; empty: "
              "security.keystore", nodes=("agent", "plant"), read_only=True, flag="keystore", commands=("run",),
              launch=("scenario",)),
    # -- agent ------------------------------------------------------------------------------------------------------
    Parameter("agent_id", int, 0, "index of this agent's subsystem in the scenario", nodes=("agent",), low=0,
              high=MAX_AGENTS - 1, read_only=True),
    Parameter("neighbour_ids", list[int], None, "agents whose plans this agent listens to; empty: derived from the "
              "model", nodes=("agent",)),
    Parameter("iteration_timeout", float, DEFAULT_ITERATION_TIMEOUT, "wait for neighbour plans per iteration "
              "before using their last plan [s] (dmpc sim: in simulated time)", nodes=("agent",), low=0.001,
              high=3600.0, live=True, flag="iteration-timeout", commands=("run", "sim"), launch=("scenario",)),
    Parameter("step_budget", float, 0.0, "real time: a step's input goes out at the latest this fraction of a sample "
              "time after its measurement, with the negotiation's current iterate, and a silent neighbour is waited "
              "for once per step; 0: no budget (lock-step; dmpc run sets 0.6 in real_time)", nodes=("agent",),
              low=0.0, high=1.0, read_only=True),
    Parameter("plan_delay", float, 0.0, "hold every received neighbour plan this long before it counts as received "
              "[s]: delay injected by the project (no netem here); dmpc sim: in simulated time, the same as "
              "network.latency on every link into the agent", nodes=("agent",), low=0.0, high=60.0, read_only=True,
              flag="plan-delay", commands=("run", "sim")),
    Parameter("plan_qos", str, "reliable", "QoS of plan topics (see dmpc_ros.ros.qos); best_effort_deadline adds "
              "the DDS deadline policy at one sample time: in real time a neighbour silent that long is given up for "
              "the step at once; dmpc run: reliable in lock_step and across computers (peers, fast repair), "
              "best_effort in real_time on one computer, unless given (bench/faults.py compares them on lossy links)",
              nodes=("agent",), choices=PLAN_QOS, read_only=True, flag="plan-qos", commands=("run",), by_mode=True),
    Parameter("heartbeat_period", float, 0.2, "period of the heartbeat the lifecycle manager monitors [s]",
              nodes=("agent",), low=0.01, high=10.0, live=True),
    Parameter("visualization", bool, True, "publish agent_<i>/path (nav_msgs/Path) and agent_<i>/markers "
              "(MarkerArray) in frame map after every step", nodes=("agent",), read_only=True),
    Parameter("robot_mode", bool, False, "drive a robot: state from agent_<i>/odom (or pose), input as Twist on "
              "agent_<i>/cmd_vel, steps on the wall clock (ros/robot_link.py)", **ROBOT),
    Parameter("robot_state", str, "odometry", "robot mode: what the base publishes, odometry (nav_msgs/Odometry) "
              "or pose (PoseStamped)", choices=ROBOT_STATES, launch=("robots",), **ROBOT),
    Parameter("start_time", float, 0.0, "robot mode: UNIX time [s] of step 0, the same on every robot; 0: "
              "activation time (robots.launch.py: launch time + start_delay)", low=0.0, high=1e10,
              launch=("robots",), **ROBOT),
    Parameter("start_delay", float, 8.0, "seconds from launch to step 0 when start_time is 0 (bring-up must fit "
              "in it)", low=0.0, high=3600.0, launch=("robots",)),
    Parameter("state_timeout", float, 0.0, "robot mode: a pose older than this is stale [s]; 0: three sample "
              "times", low=0.0, high=3600.0, **ROBOT),
    Parameter("neighbour_timeout", float, 0.0, "robot mode: a neighbour silent this long stops the robot [s]; 0: "
              "three sample times", low=0.0, high=3600.0, **ROBOT),
    Parameter("command_deadline", float, 0.8, "robot mode: the command must be out this fraction of a sample time "
              "after the step starts", low=0.05, high=1.0, **ROBOT),
    # -- plant ------------------------------------------------------------------------------------------------------
    Parameter("input_timeout", float, 5.0, "lock_step: wall-clock wait for an agent's input before holding its "
              "last one [s] (dmpc run: a whole negotiation's iteration timeouts)", nodes=("plant",), low=0.001,
              high=3600.0),
    # The plant's guard (sim/plant_inputs.py). Defaults: a fault-free run is unchanged (its inputs are fresh and
    # inside U_i: lock-step stays equal to `dmpc sim`); a dead agent's input gives way after 3 periods (the agents'
    # own robot watchdog waits as long) to the controller the MPC's recursive-feasibility tail ends with.
    Parameter("input_rate_limit", float, 0.0, "largest change of any input component from one step to the next "
              "[the input's unit]; 0: no limit (the plant; in robot mode the agent, before cmd_vel)",
              nodes=("plant", "agent"), low=0.0, high=1e9, read_only=True, flag="input-rate-limit",
              commands=("run", "sim")),
    Parameter("stale_input_periods", float, 3.0, "an input older than this many sample periods is replaced by the "
              "safe input (lock-step: steps; robot mode: the robot is stopped); 0: never", nodes=("plant", "agent"),
              low=0.0, high=1e6, read_only=True, flag="stale-input-periods", commands=("run",)),
    Parameter("safe_input", str, "terminal_law", "what replaces a stale input: zero (the input of U_i nearest 0), "
              "hold (the last one), terminal_law (ū + K (x − x̄) of the LQR terminal controller, clamped to U_i)",
              nodes=("plant",), choices=SAFE_INPUTS, read_only=True, flag="safe-input", commands=("run",)),
    Parameter("late_input", str, "plan", "what the plant applies when a subsystem's input of a step has not come "
              "by the step (real time): plan (the fallback the agent sent with its previous input: its plan shifted "
              "one step, with the tube's ancillary feedback; counted as plan_fallback_steps) or hold (the last "
              "input)", nodes=("plant",), choices=LATE_INPUTS, read_only=True, flag="late-input", commands=("run",)),
    Parameter("manager_timeout", float, 5.0, "stop (writing the steps done, exit code 4) when the lifecycle "
              "manager's heartbeat has been silent this long [s], armed by its first beat; 0: never",
              nodes=("plant",), low=0.0, high=3600.0),
    Parameter("output_file", str, "", "where the node writes its trajectory at the end (.npz; the plant a .csv "
              "beside it); empty: not written", nodes=("plant", "fake_robot"), read_only=True),
    Parameter("exit_on_completion", bool, False, "exit after the last step (the launch then ends)",
              nodes=("plant",), launch=("scenario",)),
    # -- lifecycle manager ------------------------------------------------------------------------------------------
    Parameter("node_names", list[str], None, "fully qualified lifecycle nodes, in bring-up order (plant first)",
              nodes=("lifecycle_manager",), read_only=True),
    # 60 s (the manager said 30, dmpc run and the launch files 60): it bounds one node's configure, and an agent's
    # first configure compiles its CasADi code (~5 s each, several times that on a loaded machine), after its
    # process has started and imported everything while its peers do the same.
    Parameter("transition_timeout", float, 60.0, "per lifecycle transition, and for a node's lifecycle services "
              "to appear [s]", nodes=("lifecycle_manager",), low=0.1, high=3600.0),
    Parameter("heartbeat_topics", list[str], None, "heartbeat topics to watch (std_msgs/Header), one per agent",
              nodes=("lifecycle_manager",)),
    Parameter("late_nodes", list[str], None, "lifecycle nodes that start during the run (the joiners of "
              "team_changes): brought up when they appear, not at bring-up; their heartbeat watched from then on",
              nodes=("lifecycle_manager",), read_only=True),
    Parameter("heartbeat_timeout", float, 2.0, "silence after which an agent is lost [s]",
              nodes=("lifecycle_manager",), low=0.01, high=3600.0),
    Parameter("start_gate", float, 0.0, "activate the plant last, once every agent hears all its neighbours' plan "
              "topics, waiting at most this long [s]; 0: off (dmpc run and the launch files: 60 in real_time, 0 in "
              "lock_step, where the plant waits for the inputs anyway)", nodes=("lifecycle_manager",), low=0.0,
              high=3600.0),
    # -- fake robot -------------------------------------------------------------------------------------------------
    Parameter("x", float, 0.0, "initial x [m]", **FAKE),
    Parameter("y", float, 0.0, "initial y [m]", **FAKE),
    Parameter("yaw", float, 0.0, "initial heading [rad]", **FAKE),
    Parameter("rate", float, 50.0, "integration and odometry rate [Hz]", low=0.1, high=1000.0, **FAKE),
    Parameter("position_noise", float, 0.0, "standard deviation of the odometry's x and y [m]", low=0.0, high=10.0,
              **FAKE),
    Parameter("heading_noise", float, 0.0, "standard deviation of the odometry's heading [rad]", low=0.0, high=1.0,
              **FAKE),
    Parameter("odom_noise", float, 0.0, "fake bases: position_noise [m]; heading_noise a tenth of it [rad]",
              low=0.0, high=10.0, launch=("robots",)),
    Parameter("latency", float, 0.0, "delay of every odometry message [s]", low=0.0, high=10.0,
              launch=("robots",), launch_name="odom_latency", **FAKE),
    Parameter("drop_probability", float, 0.0, "probability that an odometry message is not sent", low=0.0,
              high=1.0, launch=("robots",), launch_name="odom_drop", **FAKE),
    Parameter("command_timeout", float, 0.5, "stop when no cmd_vel came for this long [s]", low=0.01, high=60.0,
              **FAKE),
    Parameter("duration", float, 0.0, "exit after this long [s]; 0: run until stopped", low=0.0, high=1e7, **FAKE),
    Parameter("seed", int, 0, "noise and drop seed", low=0, high=2**32 - 1, **FAKE),
)
PARAMETERS: dict[str, Parameter] = {p.name: p for p in TABLE}
# node parameters whose `dmpc run` flags are passed to the nodes as they are (the plant's guard)
NODE_SETTINGS = ("input_rate_limit", "stale_input_periods", "safe_input", "late_input", "plan_qos", "plan_delay")
DEFAULTS: dict[str, Any] = {p.name: p.default for p in TABLE}
# Fields a command line or a node parameter may override: name → (section, key) of the scenario data.
OVERRIDES: dict[str, tuple[str, str]] = {p.name: p.override for p in TABLE if p.override}


def node_parameters(node: str) -> tuple[Parameter, ...]:
    """The parameters `node` declares, in table order."""
    if node not in NODES:
        raise ValueError(f"node '{node}' is not allowed: must be one of {', '.join(NODES)}")
    return tuple(p for p in TABLE if node in p.nodes)


def live_parameters(node: str) -> tuple[str, ...]:
    """Those that take effect at once when set on a running node."""
    return tuple(p.name for p in node_parameters(node) if p.live)


def scenario_parameters(node: str) -> tuple[str, ...]:
    """Those a node's scenario is built from: its source, agent_id (an agent), and the overrides it declares."""
    return tuple(p.name for p in node_parameters(node) if p.override or p.name in ("scenario_file",
                                                                                    "scenario_factory", "agent_id"))


def node_overrides(values: dict, node: str) -> dict:
    """The scenario overrides a node's parameter values give (unset ones left out), each checked against the table
    (ValueError 'parameter <name>: <value> is not allowed: …')."""
    return {p.name: (float(values[p.name]) if p.type is float else values[p.name]) for p in node_parameters(node)
            if p.override and p.name in values and not p.is_unset(p.check_node_value(values[p.name]))}


def flag_parameters(command: str) -> tuple[Parameter, ...]:
    """The parameters `dmpc <command>` has a flag for."""
    return tuple(p for p in TABLE if command in p.commands)


def launch_parameters(launch_file: str) -> tuple[Parameter, ...]:
    """The parameters that are launch arguments of `launch_file` (scenario or robots)."""
    return tuple(p for p in TABLE if launch_file in p.launch)


def launch_arguments(launch_file: str) -> dict[str, tuple[str, str]]:
    """argument name → (default text, description), as DeclareLaunchArgument takes them."""
    return {p.argument: (p.launch_default, p.help) for p in launch_parameters(launch_file)}


def from_launch(values: dict[str, str], launch_file: str) -> dict[str, Any]:
    """The launch arguments' texts of the table's parameters, typed and checked, by parameter name."""
    return {p.name: p.from_text(values[p.argument]) for p in launch_parameters(launch_file) if p.argument in values}


def parse_flag_text(name: str, text: str) -> bool:
    """A true/false launch argument outside the table (e.g. use_sim_time), read as the table reads one."""
    return Parameter(name, bool, False, "").from_text(text)


# -- the README's table --------------------------------------------------------------------------------------------
README_BEGIN = "<!-- parameters: generated by `.venv/bin/python tools/readme_parameters.py` -->"
README_END = "<!-- /parameters -->"


def _allowed(p: Parameter) -> str:
    if p.choices:
        return ", ".join(p.choices)
    if p.rule_text:
        return "absolute namespace" if p.rule is is_namespace else p.rule_text
    if p.low is None and p.high is None:
        return ""
    low = "(−∞" if p.low is None else f"{'(' if p.open_low else '['}{shown(p.low)}"
    return f"{low}, {'∞)' if p.high is None else f'{shown(p.high)}]'}"


def _surfaces(p: Parameter) -> str:
    where = [f"`{node}`" for node in p.nodes]
    if p.flag:
        where.append(f"`--{p.flag}`" + ("" if set(p.commands) == set(OVERRIDE_COMMANDS) else
                                        f" ({', '.join(p.commands)})"))
    if p.launch:
        where.append(f"`{p.argument}:=` ({', '.join(p.launch)})")
    return ", ".join(where)


def _default(p: Parameter) -> str:
    if p.default is None:
        return "—"
    if p.type is str:
        return f'`"{p.default}"`'
    return f"`{str(p.default).lower() if p.type is bool else p.default}`"


def markdown_table() -> str:
    """The README's parameter table (between README_BEGIN and README_END)."""
    rows = ["| parameter | type | default | allowed | where | set | description |", "|---|---|---|---|---|---|---|"]
    for p in TABLE:
        access = "live" if p.live else ("read-only" if p.read_only else "")
        rows.append(f"| `{p.name}` | {TYPE_NAMES[p.type]} | {_default(p)} | {_allowed(p)} | {_surfaces(p)} | "
                    f"{access} | {p.help.replace('|', '/')} |")
    return "\n".join(rows)


def readme_section(text: str) -> str:
    """The generated part of a README's text (ValueError when its markers are missing)."""
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"README: the markers {README_BEGIN} … {README_END} are missing")
    return text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip("\n")


def write_readme(path: Path) -> None:
    text = path.read_text()
    before, rest = text.split(README_BEGIN, 1)
    after = rest.split(README_END, 1)[1]
    path.write_text(f"{before}{README_BEGIN}\n{markdown_table()}\n{README_END}{after}")
