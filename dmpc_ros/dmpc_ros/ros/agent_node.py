"""`ros2 run dmpc_ros agent`: one DMPC agent as a lifecycle node around the sans-IO coordination core.

Per control step: the measured state (SubsystemState from the plant) starts the step (begin_step → plan 0);
every received neighbour plan is booked by (step, iteration); as soon as the plans the next iteration needs
are all there, the agent iterates and publishes its next PredictedTrajectory; a neighbour silent past the
per-iteration deadline is replaced by its last plan (shifted) and counted missing. The final plan's first
input goes out as ControlInput, followed by an AgentStatus. Malformed plans are rejected and counted.
"""
from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
import rclpy
import rclpy.exceptions
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.subscription import ContentFilterOptions
from nav_msgs.msg import Path as NavPath
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from dmpc_ros_msgs.msg import AgentStatus, ControlInput, PredictedTrajectory, SubsystemState

from ..coordination import ALGORITHMS, StoppingRule
from ..coordination.plan_book import STEPS_AHEAD, PlanBook
from ..coordination.safe_input import INPUT_SOURCES
from ..mpc.qp import BACKENDS
from ..scenarios import ScenarioError
from ..scenarios.node_specs import agent_topic
from ..scenarios.source import scenario_from_parameters
from .conversions import MalformedPlan, message_to_plan, plan_to_message
from .qos import CONTROL_QOS, PLAN_QOS_CHOICES, ROBOT_STATE_QOS, STATE_QOS, STATUS_QOS, plan_qos
from .robot_link import STATE_MESSAGES, RobotLink, RobotTiming
from .spin import init_node_process, spin_node
from .visualization import Scene, marker_array, path_message


PLAN_FILTER = ("agent_id = %0 AND horizon = %1 AND state_dim = %2 AND input_dim = %3 AND iteration <= %4 "
               "AND step <= %5")   # DDS-SQL on PredictedTrajectory (see AgentNode._plan_filter)
LIVE_PARAMETERS = ("iteration_timeout", "heartbeat_period")   # take effect at once; the others at configure
SCENARIO_PARAMETERS = ("scenario_file", "scenario_factory", "agent_id", "algorithm", "horizon", "max_iterations",
                       "solver", "steps", "tolerance")   # what scenario_of reads


def scenario_of(values: dict):
    """The scenario the agent parameters describe (scenario source, agent_id, overrides), validated as configure
    does; ValueError naming the parameter, the value and what is allowed."""
    scenario = scenario_from_parameters(values["scenario_file"], values["scenario_factory"])
    agent_id = int(values["agent_id"])
    if not 0 <= agent_id < scenario.num_agents:
        raise ValueError(f"parameter agent_id: {agent_id} is not allowed: "
                         f"the scenario has agents 0..{scenario.num_agents - 1}")
    overrides = {name: values[name] for name, unset in (("algorithm", ""), ("horizon", 0), ("max_iterations", 0),
                                                         ("solver", ""), ("steps", 0)) if values[name] != unset}
    if values["tolerance"] >= 0:
        overrides["tolerance"] = float(values["tolerance"])
    if overrides.get("algorithm", scenario.controller.algorithm) == "centralized":
        raise ValueError("parameter algorithm: 'centralized' is not allowed for an agent node: "
                         f"must be one of {', '.join(a for a in ALGORITHMS if a != 'centralized')}")
    if "solver" in overrides and overrides["solver"] not in BACKENDS:
        raise ValueError(f"parameter solver: '{overrides['solver']}' is not allowed: "
                         f"must be one of {', '.join(BACKENDS)}")
    try:
        return scenario.with_overrides(**overrides)
    except ScenarioError as error:
        raise ValueError(f"parameter {error}") from None


class AgentNode(LifecycleNode):
    def __init__(self, node_name: str = "agent", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        read_only = dict(read_only=True)
        self.declare_parameter("scenario_file", "", ParameterDescriptor(
            description="scenario YAML (model, weights, constraints, sample time); or use scenario_factory",
            **read_only))
        self.declare_parameter("scenario_factory", "", ParameterDescriptor(
            description="Python function building the scenario: module:function, /path/file.py:function or an "
                        "entry point of group dmpc_ros.scenarios", **read_only))
        self.declare_parameter("agent_id", 0, ParameterDescriptor(
            description="index of this agent's subsystem in the scenario",
            integer_range=[IntegerRange(from_value=0, to_value=999, step=1)], **read_only))
        self.declare_parameter("neighbour_ids", Parameter.Type.INTEGER_ARRAY, ParameterDescriptor(
            description="agents whose plans this agent listens to; empty: derived from the model"))
        self.declare_parameter("algorithm", "", ParameterDescriptor(
            description=f"coordination algorithm ({', '.join(a for a in ALGORITHMS if a != 'centralized')}); "
                        "empty: the scenario's"))
        self.declare_parameter("horizon", 0, ParameterDescriptor(
            description="prediction horizon N [steps]; 0: the scenario's",
            integer_range=[IntegerRange(from_value=0, to_value=500, step=1)]))
        self.declare_parameter("max_iterations", 0, ParameterDescriptor(
            description="negotiation iterations per step; 0: the scenario's",
            integer_range=[IntegerRange(from_value=0, to_value=100000, step=1)]))
        self.declare_parameter("steps", 0, ParameterDescriptor(
            description="control steps of the run (the reference is sampled for them); 0: the scenario's",
            integer_range=[IntegerRange(from_value=0, to_value=1_000_000, step=1)]))
        self.declare_parameter("tolerance", -1.0, ParameterDescriptor(
            description="relative plan-change tolerance of the stopping rule; negative: the scenario's"))
        self.declare_parameter("solver", "", ParameterDescriptor(
            description=f"QP back end ({', '.join(BACKENDS)}); empty: the scenario's"))
        self.declare_parameter("iteration_timeout", 2.0, ParameterDescriptor(
            description="wall-clock wait for neighbour plans per iteration before using their last plan [s]",
            floating_point_range=[FloatingPointRange(from_value=0.001, to_value=3600.0, step=0.0)]))
        self.declare_parameter("plan_qos", "reliable", ParameterDescriptor(
            description=f"QoS of plan topics ({', '.join(PLAN_QOS_CHOICES)}); see dmpc_ros.ros.qos", **read_only))
        self.declare_parameter("visualization", True, ParameterDescriptor(
            description="publish agent_<i>/path (nav_msgs/Path) and agent_<i>/markers (MarkerArray) in frame map "
                        "after every step", **read_only))
        self.declare_parameter("robot_mode", False, ParameterDescriptor(
            description="drive a robot: state from agent_<i>/odom (or pose), input as Twist on agent_<i>/cmd_vel, "
                        "steps on the wall clock (ros/robot_link.py)", **read_only))
        self.declare_parameter("robot_state", "odometry", ParameterDescriptor(
            description=f"robot mode: the pose message ({', '.join(STATE_MESSAGES)})", **read_only))
        self.declare_parameter("start_time", 0.0, ParameterDescriptor(
            description="robot mode: UNIX time [s] of step 0 (give every robot the same); 0: activation time",
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1e10, step=0.0)], **read_only))
        self.declare_parameter("state_timeout", 0.0, ParameterDescriptor(
            description="robot mode: a pose older than this is stale [s]; 0: three sample times", **read_only))
        self.declare_parameter("neighbour_timeout", 0.0, ParameterDescriptor(
            description="robot mode: a neighbour silent this long stops the robot [s]; 0: three sample times",
            **read_only))
        self.declare_parameter("command_deadline", 0.8, ParameterDescriptor(
            description="robot mode: the command must be out this fraction of a sample time after the step starts",
            floating_point_range=[FloatingPointRange(from_value=0.05, to_value=1.0, step=0.0)], **read_only))
        self.declare_parameter("heartbeat_period", 0.2, ParameterDescriptor(
            description="period of the heartbeat the lifecycle manager monitors [s]",
            floating_point_range=[FloatingPointRange(from_value=0.01, to_value=10.0, step=0.0)]))
        self._reset()
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.finished = False  # set by the shutdown transition; the process then leaves
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _values(self, changes: list[Parameter] = ()) -> dict:
        """The values scenario_of reads, with `changes` applied."""
        values = {name: self.get_parameter(name).value for name in SCENARIO_PARAMETERS}
        values.update({p.name: p.value for p in changes if p.name in SCENARIO_PARAMETERS})
        return values

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """`ros2 param set` at run time: iteration_timeout and heartbeat_period take effect at once; the others
        shape the controller, so they are refused once it is built (clean up first) and, before, validated as
        configure would validate them. rclpy itself refuses read-only ones and values outside their ranges."""
        fixed = [p.name for p in changes if p.name not in LIVE_PARAMETERS]
        if fixed and self.agent is not None:
            return SetParametersResult(successful=False, reason=(
                f"parameter {fixed[0]}: cannot change while the node is configured (its controller is built from "
                f"it); deactivate and clean the node up, then set it and configure again"))
        if any(p.name in SCENARIO_PARAMETERS for p in changes):
            try:
                scenario_of(self._values(changes))
            except (ScenarioError, ValueError) as error:
                return SetParametersResult(successful=False, reason=str(error))
        for change in changes:
            if change.name == "iteration_timeout" and self._watchdog is not None:
                self._iteration_timeout = float(change.value)
                self._watchdog.timer_period_ns = int(change.value * 1e9)
            elif change.name == "heartbeat_period" and self._heartbeat is not None:
                self._heartbeat.timer_period_ns = int(change.value * 1e9)
        return SetParametersResult(successful=True)

    def _reset(self) -> None:
        self.agent = None
        self.book: PlanBook | None = None
        self._inputs: list = []
        self._heartbeat = self._watchdog = None
        self._outputs: dict = {}
        self._negotiating = False
        self._deadline_armed = False
        self._pending_state: SubsystemState | None = None
        self._rejected = 0
        self._warned_at, self._refused_since_warning = -1.0, 0   # the rejected-plan warning's own throttle
        self._last_step = -1
        self._measured: np.ndarray | None = None
        self._missing = 0
        self.active = False
        self.layout = None   # PlanarLayout when the visualization topics are on
        self._state_now: np.ndarray | None = None       # the last measured state (map frame for the markers)
        self._heard: dict[int, tuple[float, np.ndarray]] = {}   # neighbour → (wall time, states) of its last plan
        self.robot: RobotLink | None = None   # robot mode
        self._ticker = None
        self._command_due: float | None = None   # robot mode: when this step's command is due (time.time())
        self._stale_steps = 0

    # -- lifecycle -----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (ScenarioError, ValueError) as error:
            self.get_logger().error(f"configure failed: {error}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        except Exception as error:  # never let an exception escape a transition silently
            self.get_logger().error(f"configure failed unexpectedly: {type(error).__name__}: {error}")
            self._release()
            return TransitionCallbackReturn.ERROR
        self.get_logger().info(
            f"configured agent {self.agent_id} ({self.algorithm}, N={self.design.horizon}, "
            f"listens to {sorted(self.agent.required_plans)})")
        return TransitionCallbackReturn.SUCCESS

    def _parameter(self, name: str):
        return self.get_parameter(name).value

    def _configure(self) -> None:
        scenario = scenario_of(self._values())
        self.agent_id = int(self._parameter("agent_id"))
        self.algorithm = scenario.controller.algorithm
        self._steps = scenario.steps
        self.design = scenario.design()
        controller = scenario.controller
        self.agent = self.design.agent(self.algorithm, self.agent_id,
                                       StoppingRule(controller.max_iterations, controller.tolerance),
                                       controller.solver, controller.weights, admm=controller.admm)
        try:
            neighbours = list(self._parameter("neighbour_ids") or [])
        except rclpy.exceptions.ParameterUninitializedException:
            neighbours = []
        if neighbours:
            missing = sorted(set(self.agent.required_plans) - set(neighbours))
            if missing:
                raise ValueError(f"parameter neighbour_ids: {list(neighbours)} is not allowed: agent {self.agent_id} "
                                 f"needs the plans of {sorted(self.agent.required_plans)} (missing {missing})")
        rounds = 0 if self.design.centre_consensus is None else self.design.centre_consensus.rounds + 1
        self.book = PlanBook(self.agent, controller.max_iterations + rounds)
        system = self.design.system
        self._dims = {j: (system.subsystems[j].n_x, system.subsystems[j].n_u) for j in range(system.num_agents)}
        qos = plan_qos(self._parameter("plan_qos"))
        me = self.agent_id
        self._outputs = {
            "plan": self.create_lifecycle_publisher(PredictedTrajectory, agent_topic(me, "plan"), qos),
            "control": self.create_lifecycle_publisher(ControlInput, agent_topic(me, "control"), CONTROL_QOS),
            "status": self.create_lifecycle_publisher(AgentStatus, agent_topic(me, "status"), STATUS_QOS),
            "heartbeat": self.create_lifecycle_publisher(Header, agent_topic(me, "heartbeat"), STATUS_QOS),
        }
        if self._parameter("visualization"):
            self.layout = scenario.family.layout(scenario)
            tubes = getattr(self.design, "tubes", None)
            self._tube_outline = None if tubes is None else self.layout.tube_outline(me, tubes.tubes[me].G)
            self._outputs["path"] = self.create_lifecycle_publisher(NavPath, agent_topic(me, "path"), STATUS_QOS)
            self._outputs["markers"] = self.create_lifecycle_publisher(MarkerArray, agent_topic(me, "markers"),
                                                                       STATUS_QOS)
        self._plan_inputs = {j: self.create_subscription(PredictedTrajectory, agent_topic(j, "plan"),
                                                         lambda message, j=j: self._on_plan(j, message), qos,
                                                         content_filter_options=self._plan_filter(j))
                             for j in sorted(self.agent.required_plans)}
        self._inputs = list(self._plan_inputs.values())
        if self._parameter("robot_mode"):
            self._configure_robot(scenario)
        else:
            self._inputs.append(self.create_subscription(SubsystemState, agent_topic(me, "state"), self._on_state,
                                                         STATE_QOS))
        self._heartbeat = self.create_timer(self._parameter("heartbeat_period"), self._beat, clock=self._wall)
        self._iteration_timeout = float(self._parameter("iteration_timeout"))
        self._watchdog = self.create_timer(self._iteration_timeout, self._on_deadline, clock=self._wall)
        self._watchdog.cancel()  # armed only while the agent waits for plans

    def _configure_robot(self, scenario) -> None:
        base = scenario.family.robot_base(scenario)
        if base is None:
            raise ValueError(f"parameter robot_mode: true is not allowed: scenario {scenario.name} (model.type "
                             f"{scenario.family.name}) has no robot base; robot mode needs a model whose agents are "
                             "robots, e.g. the nonlinear unicycle_formation")
        choice = self._parameter("robot_state")
        if choice not in STATE_MESSAGES:
            raise ValueError(f"parameter robot_state: '{choice}' is not allowed: must be one of "
                             f"{', '.join(STATE_MESSAGES)}")
        dt = self.design.system.sample_time
        self.robot = RobotLink(self, lambda leaf: agent_topic(self.agent_id, leaf), base,
                               self._dims[self.agent_id][0], choice, ROBOT_STATE_QOS, CONTROL_QOS)
        self._outputs["cmd_vel"] = self.robot.publisher
        self._timing = RobotTiming(dt, float(self._parameter("start_time")),
                                   float(self._parameter("state_timeout")) or 3 * dt,
                                   float(self._parameter("neighbour_timeout")) or 3 * dt,
                                   float(self._parameter("command_deadline")) * dt)
        self._inputs.append(self.robot.subscription)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self.active = True
        if self.robot is not None:
            if self._timing.start_time == 0.0:
                self._timing = dataclasses.replace(self._timing, start_time=time.time())
            now = time.time()
            if now - self._timing.start_time > self._timing.sample_time:   # bring-up overran step 0
                self.get_logger().warning(f"active {now - self._timing.start_time:.1f} s after step 0 (start_time): "
                                          f"steps before {self._timing.step_at(now)} are missed; give start_time (or "
                                          "start_delay) more room (a first bring-up compiles ~5 s per agent)")
            self._ticker = self.create_timer(self._timing.sample_time / 10, self._on_tick, clock=self._wall)
        if self._pending_state is not None:  # the state that arrived while inactive starts the first step
            pending, self._pending_state = self._pending_state, None
            self._on_state(pending)
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.robot is not None:
            self.robot.stop()
            self.destroy_timer(self._ticker)
            self.get_logger().info(f"robot mode: {min(self._last_step + 1, self._steps)} steps, "
                                   f"{self.robot.deadline_misses} deadline "
                                   f"misses, {self._stale_steps} steps with a stale pose")
        if self.agent is not None and self._last_step >= 0:
            # the stop command: the input of U_i nearest to zero (zero force / acceleration where the set allows it)
            self._publish_control(self._last_step, self.agent.guard.nearest(np.zeros(self._dims[self.agent_id][1])))
        self._negotiating = False
        self.active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for handle in self._inputs:
            self.destroy_subscription(handle)
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        for timer in (self._heartbeat, self._watchdog):
            if timer is not None:
                self.destroy_timer(timer)
        self._reset()

    # -- negotiation ---------------------------------------------------------------------------------
    def _on_state(self, message: SubsystemState) -> None:
        if self.agent is None:
            return
        if not self.active:
            self._pending_state = message
            return
        n_x = self._dims[self.agent_id][0]
        state = np.asarray(message.state, float)
        if message.agent_id != self.agent_id or state.shape != (n_x,) or not np.all(np.isfinite(state)):
            self._rejected += 1
            self.get_logger().warning(f"rejected state message: agent {message.agent_id}, {state.size} values "
                                      f"(expected {n_x} finite)")
            return
        if message.step <= self._last_step or message.step >= self._steps:
            return  # duplicate or stale measurement, or the state after the scenario's last step
        self._start_step(message.step, state)

    def _start_step(self, step: int, state: np.ndarray) -> None:
        if self._negotiating:  # a new measurement overtook the negotiation (real-time): apply what we have
            self._finish_step()
        self._last_step = step
        self._measured = self._state_now = state
        self._missing = 0
        self._arm_deadline()
        self._try_begin()

    def _on_tick(self) -> None:
        """Robot mode, every tenth of a sample time: start step k when it is due (with the latest pose), and stop the
        robot when the pose is stale, a neighbour is silent or the step's command is overdue."""
        now = time.time()
        if self._command_due is not None and now > self._command_due:
            self._command_due = None
            self.robot.deadline_misses += 1
            self.robot.stop()
            self.get_logger().warning(f"step {self._last_step}: no command within the deadline; robot stopped")
        step = self._timing.step_at(now)
        if step <= self._last_step or step < 0:
            return
        if self._negotiating:   # the last step overran: its command goes out now, if still due
            self._finish_step()
        if step >= self._steps:
            if self._last_step < self._steps:   # once
                self.robot.stop()
                self._last_step = self._steps
                self.get_logger().info(f"robot mode: the scenario's {self._steps} steps are done; robot stopped")
            return
        state = self.robot.state(now, self._timing.state_timeout)
        if state is None:
            self._stale_steps += 1
            self._last_step = step
            self.robot.stop()
            self.get_logger().warning(f"step {step}: no pose younger than {self._timing.state_timeout:.2f} s; "
                                      "robot stopped")
            return
        silent = self._silent_neighbours() if step > 0 else []
        if silent:   # negotiate on (with their last plans) so that the robot drives again when they are back
            self.robot.stop()
            self.get_logger().warning(f"step {step}: no plan from {silent} for {self._timing.neighbour_timeout:.2f} "
                                      "s; robot stopped", throttle_duration_sec=1.0)
        self._command_due = None if silent else self._timing.step_start(step) + self._timing.command_deadline
        self._start_step(step, state)

    def _silent_neighbours(self) -> list[int]:
        now = time.monotonic()
        return [j for j in sorted(self.agent.required_plans)
                if now - self._heard.get(j, (-np.inf,))[0] > self._timing.neighbour_timeout]

    def _try_begin(self, forced: bool = False) -> None:
        """Start the measured step once the neighbours' final plans of the previous step are in (their
        warm starts build on them); after the deadline start anyway and count the missing ones."""
        if self._measured is None:
            return
        step = self._last_step
        if not (forced or self.book.previous_step_complete(step)):
            return
        if forced:
            self._missing += 1
            self.get_logger().warning(f"step {step}: starting without every neighbour's final plan of step {step - 1}")
        state, self._measured = self._measured, None
        self._negotiating = True
        self._disarm_deadline()
        plan = self.agent.begin_step(step, state, self.book.begin(step))
        self._publish_plan(plan)
        self._advance()

    def _on_plan(self, sender: int, message: PredictedTrajectory) -> None:
        """A plan from the topic of agent `sender`: checked (its id, sizes, values, step and iteration) before it is
        booked; a rejected one is counted (AgentStatus.messages_rejected) and logged at most once a second."""
        if self.agent is None:
            return  # plans are booked while inactive too (neighbours activated earlier already negotiate)
        try:
            if message.agent_id != sender:
                raise MalformedPlan(f"plan on the topic of agent {sender} claims agent_id {message.agent_id}")
            plan = message_to_plan(message, self.design.horizon, *self._dims[sender])
            reason = self.book.inadmissible(plan)
            if reason:
                raise MalformedPlan(reason)
        except MalformedPlan as error:
            self._rejected += 1
            self._warn_rejected(error)
            return
        self._heard[sender] = (time.monotonic(), plan.states)
        if self.book.record(plan) and self.active:
            if self._measured is not None:
                self._try_begin()
            elif self._negotiating:
                self._advance()

    def _plan_filter(self, sender: int) -> ContentFilterOptions:
        """DDS drops, before the reader's bounded queue, plans on sender's topic whose id, sizes, iteration or step
        cannot be sender's in this run: a flood of them cannot push sender's real plans out of the queue
        (keep-last). The node still checks everything itself (_on_plan), so a middleware without content filtering
        loses only this shield. The filter is fixed at configure: moving a step window with set_content_filter
        while plans arrive crashed Fast DDS (SIGSEGV) under the flood test."""
        n_x, n_u = self._dims[sender]
        return ContentFilterOptions(PLAN_FILTER, [str(sender), str(self.design.horizon), str(n_x), str(n_u),
                                                  str(self.book.max_iteration), str(self._steps + STEPS_AHEAD)])

    def _warn_rejected(self, error: MalformedPlan) -> None:
        """At most one warning a second, with the number refused since the last one. Throttled by hand: rclpy's
        throttle_duration_sec inspects the caller's frame on every call (2 ms each), which a flood of bad plans
        turned into a stall (bench/ros_flood.py)."""
        now = time.monotonic()
        self._refused_since_warning += 1
        if now - self._warned_at >= 1.0:
            more = self._refused_since_warning - 1
            self.get_logger().warning(f"rejected plan: {error}" + (f" (and {more} more since the last warning)"
                                                                  if more else ""))
            self._warned_at, self._refused_since_warning = now, 0

    def _advance(self, forced: bool = False) -> None:
        """Iterate while the needed plans are present (or once with substitutes after a deadline)."""
        while self._negotiating:
            next_iteration = self.agent.iteration + 1
            inbox = self.book.inbox(next_iteration)
            if inbox is None and forced:
                inbox, missing = self.book.inbox_with_substitutes(next_iteration)
                self._missing += len(missing)
                self.get_logger().warning(f"step {self._last_step} iteration {next_iteration}: no plan from "
                                          f"{missing} within {self._iteration_timeout} s; using their last plans")
            if inbox is None:
                if not self._deadline_armed:
                    self._arm_deadline()
                return
            forced = False
            self._disarm_deadline()
            plan = self.agent.iterate(inbox)
            self._publish_plan(plan)
            if plan.final:
                self._finish_step()

    def _arm_deadline(self) -> None:
        self._watchdog.reset()
        self._deadline_armed = True

    def _disarm_deadline(self) -> None:
        if self._deadline_armed:
            self._watchdog.cancel()
            self._deadline_armed = False

    def _on_deadline(self) -> None:
        self._disarm_deadline()
        if self._measured is not None:
            self._try_begin(forced=True)
        elif self._negotiating:
            self._advance(forced=True)

    def _finish_step(self) -> None:
        self._negotiating = False
        self._disarm_deadline()
        plan = self.agent.last_plan
        if plan is not None and not plan.final:  # overtaken by a new measurement: tell the neighbours we stopped
            self._publish_plan(dataclasses.replace(plan, final=True))
        u = self.agent.control()   # finite and inside U_i whatever the solver did (coordination/safe_input.py)
        self._publish_control(self._last_step, u)
        if self.robot is not None:
            self._command_robot(u)
        self._publish_status()
        if self.layout is not None and plan is not None:
            self._publish_scene(plan)

    # -- publishing ------------------------------------------------------------------------------------
    def _stamp(self):
        return self.get_clock().now().to_msg()

    def _publish_plan(self, plan) -> None:
        self._outputs["plan"].publish(plan_to_message(plan, self.design.system.sample_time, self._stamp()))

    def _publish_control(self, step: int, u: np.ndarray) -> None:
        message = ControlInput(agent_id=self.agent_id, step=step, input=[float(v) for v in u])
        message.header.stamp = self._stamp()
        self._outputs["control"].publish(message)

    def _publish_status(self) -> None:
        stats = self.agent.statistics
        plan = self.agent.last_plan
        slack = self.agent.constraint_margin()
        message = AgentStatus(
            agent_id=self.agent_id, step=self._last_step, iterations=stats.iterations,
            solve_time=float(sum(stats.solve_times)), primal_residual=float(stats.primal_residual),
            dual_residual=float(stats.dual_residual), cost=float(plan.cost),
            constraint_margin=float(slack) if np.isfinite(slack) else 0.0, fallbacks=stats.fallbacks,
            messages_missing=self._missing, messages_late=stats.messages_late,
            messages_rejected=self._rejected + stats.messages_rejected, infeasible_problems=stats.infeasible,
            solver_failures=stats.solver_failures, input_source=INPUT_SOURCES.index(stats.input_source),
            data_exchanges=stats.iterations, qp_fallbacks=stats.qp_fallbacks, full_searches=stats.full_searches,
            iterative_fallbacks=stats.iterative_fallbacks, region_combinations=stats.combinations,
            deadline_misses=self.robot.deadline_misses if self.robot else 0,
            watchdog_stops=self.robot.stops if self.robot else 0)
        if self.robot is not None:
            self.robot.stops = 0
        message.header.stamp = self._stamp()
        self._outputs["status"].publish(message)
        self._rejected = 0

    def _command_robot(self, u: np.ndarray) -> None:
        """The step's command to the base, unless the watchdog holds the robot (an overdue command, a silent
        neighbour: their plans cannot be trusted): then it stays stopped until a step goes right."""
        if self._command_due is None:
            return
        self._command_due = None
        if self._silent_neighbours():
            self.robot.stop()
        else:
            self.robot.drive(u)

    def _publish_scene(self, plan) -> None:
        """Path and markers of the final plan, moved into the plant's frame (a formation agent plans relative to
        its agreed centre: the measured state minus the plan's first state gives the shift)."""
        me, layout, now = self.agent_id, self.layout, time.monotonic()
        shift = 0.0 if self._state_now is None else \
            layout.position(me, self._state_now) - layout.position(me, plan.states[0])
        neighbours = {j: (layout.position(j, x[0]) + shift, now - seen) for j, (seen, x) in self._heard.items()}
        scene = Scene(me, layout.position(me, plan.states) + shift, neighbours, self._halfplanes(plan, shift))
        stamp, sample_time = self._stamp(), self.design.system.sample_time
        self._outputs["path"].publish(path_message(scene, stamp, sample_time))
        self._outputs["markers"].publish(marker_array(scene, layout, stamp, sample_time, self._tube_outline))

    def _halfplanes(self, plan, shift: np.ndarray) -> tuple[tuple[np.ndarray, float], ...]:
        """The collision half-planes (map frame) between the agent's next planned position and its partners'."""
        collision = self.design.collision
        if collision is None:
            return ()
        columns = list(collision.position_columns)
        partners = {j: x[1, columns] for j, (_, x) in self._heard.items()}
        return tuple((a, b + float(a @ shift)) for a, b in
                     collision.own_halfplanes(self.agent_id, plan.states[1, columns], partners))

    def _beat(self) -> None:
        if self.active:
            beat = Header(frame_id=self.get_name())
            beat.stamp = self._wall.now().to_msg()
            self._outputs["heartbeat"].publish(beat)


def main(argv: list[str] | None = None) -> int:
    init_node_process(argv)
    node = AgentNode()
    spin_node(node, lambda: node.finished)
    return 0


if __name__ == "__main__":
    sys.exit(main())
