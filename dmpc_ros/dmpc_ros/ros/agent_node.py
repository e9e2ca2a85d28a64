"""`ros2 run dmpc_ros agent`: one DMPC agent as a lifecycle node around the sans-IO coordination core.

The node is a thin driver: it turns rclpy callbacks and timers into events of the agent's Negotiator
(coordination/negotiator.py: when a step starts, how long it waits for plans, what replaces a missing one, what is
counted, when the robot stops) and the actions it returns into messages: PredictedTrajectory per iteration,
ControlInput and AgentStatus per step, Twist in robot mode. Messages are checked here for what only the message
knows (the sender's topic, sizes); everything else is the negotiator's rule, as in `dmpc sim`.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
import rclpy.exceptions
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.subscription import ContentFilterOptions
from nav_msgs.msg import Path as NavPath
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from dmpc_ros_msgs.msg import AgentStatus, ControlInput, PredictedTrajectory, SubsystemState

from ..coordination import StoppingRule
from ..coordination.negotiator import (COUNTS, ApplyInput, DriveRobot, Negotiator, PublishPlan, StepDone, StopRobot,
                                       Warn, WakeAt)
from ..coordination.plan_book import STEPS_AHEAD
from ..coordination.scheme import scheme_names, scheme_of
from ..coordination.team_change import JOIN
from ..scenarios import ScenarioError
from ..scenarios.node_specs import agent_topic
from ..scenarios.parameters import live_parameters, node_overrides, scenario_parameters
from ..scenarios.source import scenario_from_parameters
from ..sim.resume import load_plan, save_plan
from ..sim.results import CapRecord
from .authentication import authentication_of
from .conversions import MalformedPlan, control_message, message_to_plan, plan_to_message, status_message
from .parameters import declare_parameters
from .lifecycle_manager import MATCHING_SUFFIX
from .qos import CONTROL_QOS, ROBOT_STATE_QOS, STATE_QOS, STATUS_QOS, deadline_events, plan_qos
from .robot_link import RobotLink, robot_link_of, robot_timing
from .spin import init_node_process, spin_node
from .team_member import TeamMember, Wire
from .throttle import Throttle
from .visualization import marker_array, path_message, scene_of


PLAN_FILTER = ("agent_id = %0 AND horizon = %1 AND state_dim = %2 AND input_dim = %3 AND iteration <= %4 "
               "AND step <= %5")   # DDS-SQL on PredictedTrajectory (see AgentNode._plan_filter)
LIVE_PARAMETERS = live_parameters("agent")   # take effect at once; the others at configure
SCENARIO_PARAMETERS = scenario_parameters("agent")   # what scenario_of reads


def scenario_of(values: dict):
    """The scenario the agent parameters describe (scenario source, agent_id, overrides), validated as configure
    does; ValueError naming the parameter, the value and what is allowed."""
    scenario = scenario_from_parameters(values["scenario_file"], values["scenario_factory"])
    agent_id, count = int(values["agent_id"]), scenario.num_agents + sum(c.kind == JOIN for c in scenario.team_changes)
    if not 0 <= agent_id < count:   # joiners (team_changes) have the ids after the initial agents'
        raise ValueError(f"parameter agent_id: {agent_id} is not allowed: the scenario has agents 0..{count - 1}")
    overrides = node_overrides(values, "agent")
    algorithm = overrides.get("algorithm", scenario.controller.algorithm)
    if algorithm in scheme_names(runs_as_agents=False):   # one controller of the whole plant: no agents
        raise ValueError(f"parameter algorithm: '{algorithm}' is not allowed for an agent node: "
                         f"must be one of {', '.join(scheme_names(runs_as_agents=True))}")
    try:
        return scenario.with_overrides(**overrides)
    except ScenarioError as error:
        raise ValueError(f"parameter {error}") from None


class AgentNode(LifecycleNode):
    def __init__(self, node_name: str = "agent", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, "agent")
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
            if change.name == "iteration_timeout" and self.negotiator is not None:
                self.negotiator.iteration_timeout = float(change.value)   # from the next wait on
            elif change.name == "heartbeat_period" and self._heartbeat is not None:
                self._heartbeat.timer_period_ns = int(change.value * 1e9)
        return SetParametersResult(successful=True)

    def _reset(self) -> None:
        self.agent = None
        self.team: TeamMember | None = None   # with team_changes: the team's course (ros/team_member.py)
        self.wire = Wire()   # the agent's indices and steps ↔ the messages' ids and steps
        self._plan_inputs: dict = {}
        self._activated = False
        self.negotiator: Negotiator | None = None
        self._inputs: list = []
        self._heartbeat = self._wake = self._ticker = None
        self._outputs: dict = {}
        self._throttle = Throttle(self.get_logger().warning)   # warnings of a topic at most once a second
        self._totals = dict.fromkeys(COUNTS, 0)
        self._caps: CapRecord | None = None   # the steps stopped at the iteration limit
        self.layout = None   # PlanarLayout when the visualization topics are on
        self._heard: dict[int, tuple[float, np.ndarray]] = {}   # neighbour → (monotonic time, states) of its last plan
        self.robot: RobotLink | None = None   # robot mode
        self.auth = None   # MessageAuthentication when plans and inputs are signed and verified (ros/authentication.py)
        self._resume_dir = ""   # respawn on: where the last final plan is kept (parameter resume_dir)

    @property
    def active(self) -> bool:
        return self.negotiator is not None and self.negotiator.active

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
        self.get_logger().info(f"configured agent {self.agent_id} ({self.algorithm}" + (
            f", N={self.design.horizon}, listens to {sorted(self.agent.required_plans)})" if self.agent else
            ", not in the team yet)"))
        return TransitionCallbackReturn.SUCCESS

    def _parameter(self, name: str):
        return self.get_parameter(name).value

    def _configure(self) -> None:
        scenario = scenario_of(self._values())
        self.agent_id = int(self._parameter("agent_id"))
        self.auth = authentication_of({name: self._parameter(name) for name in ("authenticate", "keystore")},
                                      scenario, scenario.num_agents, self.agent_id)
        self.algorithm = scenario.controller.algorithm
        me = self.agent_id
        # best_effort_deadline: the DDS deadline of one sample time, in real time only (a step budget)
        self._plan_qos = plan_qos(self._parameter("plan_qos"),
                                  scenario.sample_time if float(self._parameter("step_budget")) > 0 else None)
        self._outputs = {
            "plan": self.create_lifecycle_publisher(PredictedTrajectory, agent_topic(me, "plan"), self._plan_qos),
            "control": self.create_lifecycle_publisher(ControlInput, agent_topic(me, "control"), CONTROL_QOS),
            "status": self.create_lifecycle_publisher(AgentStatus, agent_topic(me, "status"), STATUS_QOS),
            "heartbeat": self.create_lifecycle_publisher(Header, agent_topic(me, "heartbeat"), STATUS_QOS),
        }
        self._wake = self.create_timer(1.0, self._on_wake, clock=self._wall)
        self._wake.cancel()  # armed by the negotiator's WakeAt
        if scenario.team_changes:   # the controller of each stretch in the team (ros/team_member.py)
            self.team = TeamMember(self, scenario, me)
            self.team.start()
        else:
            self._build(scenario, me)
        if self._parameter("visualization") and self.team is None:   # (a changing team has no scene yet)
            self.layout = scenario.family.layout(scenario)
            tubes = getattr(self.design, "tubes", None)
            self._tube_outline = None if tubes is None else self.layout.tube_outline(me, tubes.tubes[me].G)
            self._outputs["path"] = self.create_lifecycle_publisher(NavPath, agent_topic(me, "path"), STATUS_QOS)
            self._outputs["markers"] = self.create_lifecycle_publisher(MarkerArray, agent_topic(me, "markers"),
                                                                       STATUS_QOS)
        if self._parameter("robot_mode"):
            self.robot = robot_link_of(self, scenario, lambda leaf: agent_topic(me, leaf), ROBOT_STATE_QOS, CONTROL_QOS)
            self._outputs["cmd_vel"] = self.robot.publisher
            self._inputs.append(self.robot.subscription)
        else:
            self._inputs.append(self.create_subscription(SubsystemState, agent_topic(me, "state"), self._on_state,
                                                         STATE_QOS))
        self._heartbeat = self.create_timer(self._parameter("heartbeat_period"), self._beat, clock=self._wall)

    def _build(self, scenario, index: int) -> None:
        """The controller of `scenario` as agent `index`: design, agent, negotiator, the neighbours' plan topics."""
        self._steps = scenario.steps
        self.design = scenario.design()
        controller = scenario.controller
        self._stopping = StoppingRule(controller.max_iterations, controller.tolerance)
        self._caps = self._caps or CapRecord(controller.max_iterations, controller.tolerance)
        self.agent = self.design.agent(self.algorithm, index, self._stopping, controller.solver,
                                       controller.weights, controller.scheme_settings)
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
        system = self.design.system
        self._dims = {j: (system.subsystems[j].n_x, system.subsystems[j].n_u) for j in range(system.num_agents)}
        self._resume_dir = self._parameter("resume_dir")
        if self._resume_dir:   # respawn on: a previous incarnation's last final plan is the warm start (sim/resume.py)
            own = load_plan(self._resume_dir, self.agent_id, self.design.horizon, *self._dims[self.agent_id])
            if own is not None:
                self.agent.rejoin(own)
                self.get_logger().warning(f"rejoining: warm start from its own final plan of step {own.step}")
        robot = robot_timing(self._parameter, system.sample_time) if self._parameter("robot_mode") else None
        self._now = time.monotonic if robot is None else time.time   # robot steps follow the shared UNIX clock
        budget = float(self._parameter("step_budget")) * system.sample_time
        self.negotiator = Negotiator(self.agent, controller.max_iterations + rounds, self._steps,
                                     float(self._parameter("iteration_timeout")), robot, self._dims[index][0],
                                     step_budget=budget or None, plan_delay=float(self._parameter("plan_delay")))
        qos, wire = self._plan_qos, self.wire
        self._plan_inputs = {j: self.create_subscription(PredictedTrajectory, agent_topic(wire.id_of(j), "plan"),
                                                         lambda message, j=wire.id_of(j): self._on_plan(j, message),
                                                         qos, content_filter_options=self._plan_filter(j),
                                                         event_callbacks=deadline_events(qos, lambda j=j:
                                                                                         self._on_silent(j)))
                             for j in sorted(self.agent.required_plans)}

    def _on_silent(self, index: int) -> None:
        if self.negotiator is not None:   # best_effort_deadline: the neighbour's plan topic missed its deadline
            self._act(self.negotiator.silent(index, self._now()))

    def _retire(self) -> None:
        """No controller (not in the team, or before the next stretch's)."""
        for handle in self._plan_inputs.values():
            self.destroy_subscription(handle)
        if self._wake is not None:
            self._wake.cancel()
        self._plan_inputs, self.agent, self.negotiator = {}, None, None

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self._activated = True
        if self.robot is not None:
            self._ticker = self.create_timer(self.negotiator.robot.sample_time / 10, self._on_tick, clock=self._wall)
        if self.negotiator is not None:   # None: a team member not in the team now
            self._act(self.negotiator.activate(self._now()))
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activated = False
        if self.negotiator is not None:
            if self._ticker is not None:
                self.destroy_timer(self._ticker)
                self._ticker = None
            self._act(self.negotiator.deactivate(self._now()))
            capped = self._caps.end_line(min(self.negotiator.last_step + 1, self._steps))
            if capped:
                self.get_logger().warning(capped)
            if self.robot is not None:
                totals = self._totals
                self.get_logger().info(f"robot mode: {min(self.negotiator.last_step + 1, self._steps)} steps, "
                                       f"{totals['deadline_misses']} deadline misses, {totals['stale_steps']} steps "
                                       f"with a stale pose{self.robot.counts()}")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._retire()
        if self.team is not None:
            self.team.release()
        for handle in self._inputs:
            self.destroy_subscription(handle)
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        for timer in (self._heartbeat, self._wake, self._ticker):
            if timer is not None:
                self.destroy_timer(timer)
        self._reset()

    # -- events into the negotiator (coordination/negotiator.py owns every rule) ---------------------------------
    def _on_state(self, message: SubsystemState) -> None:
        if self.team is not None and self.team.holds(message.step, self._on_state, message):
            return
        if self.negotiator is None:
            return
        if message.agent_id != self.agent_id:
            self._act(self.negotiator.refuse(f"state message for agent {message.agent_id} on agent "
                                             f"{self.agent_id}'s topic", "state"))
            return
        self._act(self.negotiator.measure(message.step - self.wire.offset, np.asarray(message.state, float),
                                          self._now()))

    def _on_plan(self, sender: int, message: PredictedTrajectory) -> None:
        """A plan from the topic of agent `sender`: its id and sizes checked here (the message boundary), its
        step and iteration by the negotiator; a refused one is counted (AgentStatus.messages_rejected)."""
        if self.team is not None and self.team.holds(message.step, lambda m: self._on_plan(sender, m), message):
            return
        index = self.wire.index_of(sender)
        if self.negotiator is None or index is None:
            return  # plans are booked while inactive too (neighbours activated earlier already negotiate)
        try:
            if message.agent_id != sender:
                raise MalformedPlan(f"plan on the topic of agent {sender} claims agent_id {message.agent_id}")
            refused = None if self.auth is None else self.auth.refusal(message, sender)
            if refused is not None:   # unsigned, forged, another agent's key or a replay: counted by reason
                self._act(self.negotiator.refuse(*refused))
                return
            plan = self.wire.inward(message_to_plan(message, self.design.horizon, *self._dims[index]))
        except MalformedPlan as error:
            self._act(self.negotiator.refuse(f"rejected plan: {error}", "plan"))
            return
        if plan is None:   # a plan of an earlier stretch of the team
            return
        actions = self.negotiator.receive(plan, self._now())
        if self.negotiator.heard.get(index) is not None:
            self._heard[index] = (time.monotonic(), plan.states)
        self._act(actions)

    def _on_wake(self) -> None:
        """The one-shot wake-up: the clock goes to the negotiator, then the timer is set again for whatever it still
        waits for (a timer that fired a hair before the deadline, read on another clock, must not leave it asleep)."""
        self._wake.cancel()
        self._act(self.negotiator.tick(self._now()))
        if self._wake.is_canceled() and self.negotiator.next_wake is not None:
            self._arm_wake(self.negotiator.next_wake)

    def _arm_wake(self, due: float) -> None:
        """One shot at `due` (negotiator clock) or at the negotiator's earliest wake-up if that is sooner (a later
        WakeAt, e.g. a held plan's, must not push back an armed deadline), never sooner than 1 ms from now."""
        due = min(due, self.negotiator.next_wake if self.negotiator.next_wake is not None else due)
        self._wake.timer_period_ns = max(int((due - self._now()) * 1e9), 1_000_000)
        self._wake.reset()

    def _on_tick(self) -> None:
        """Robot mode, every tenth of a sample time: the latest pose, then the clock."""
        now = self._now()
        if self.robot.pose is not None:
            self.negotiator.pose(self.robot.state(now, float("inf")), self.robot.received)
        self._act(self.negotiator.tick(now))
        self.robot.watch(now)

    # -- actions out ---------------------------------------------------------------------------------------------
    def _act(self, actions) -> None:
        for action in actions:
            if isinstance(action, PublishPlan):
                self._publish(self._outputs["plan"], plan_to_message(self.wire.outward(action.plan),
                                                                     self.design.system.sample_time, self._stamp()))
            elif isinstance(action, ApplyInput):
                self._publish_control(action.step, action.input)
            elif isinstance(action, DriveRobot):
                self.robot.drive(action.input)
            elif isinstance(action, StopRobot):
                self.robot.stop()
            elif isinstance(action, StepDone):
                self._step_done(action)
            elif isinstance(action, Warn) and action.topic:   # at most once a second per topic (ros/throttle.py)
                self._throttle.warn(action.topic, action.text)
            elif isinstance(action, Warn):
                self.get_logger().warning(action.text)
            elif isinstance(action, WakeAt):
                self._arm_wake(action.time)

    def _plan_filter(self, sender: int) -> ContentFilterOptions:
        """DDS drops, before the reader's bounded queue, plans on sender's topic whose id, sizes, iteration or step
        cannot be sender's in this run: a flood of them cannot push sender's real plans out of the queue
        (keep-last). The node still checks everything itself (_on_plan), so a middleware without content filtering
        loses only this shield. The filter is fixed at configure: moving a step window with set_content_filter
        while plans arrive crashed Fast DDS (SIGSEGV) under the flood test."""
        n_x, n_u = self._dims[sender]
        bounds = (self.wire.id_of(sender), self.design.horizon, n_x, n_u, self.negotiator.book.max_iteration,
                  self.wire.offset + self._steps + STEPS_AHEAD)
        return ContentFilterOptions(PLAN_FILTER, [str(value) for value in bounds])

    # -- publishing ------------------------------------------------------------------------------------------------
    def _stamp(self):
        return self.get_clock().now().to_msg()

    def _publish_control(self, step: int, u: np.ndarray) -> None:
        law = self.agent.next_step_law() if self.agent is not None else None   # the plant's, for a late next input
        self._publish(self._outputs["control"], control_message(self.agent_id, step + self.wire.offset, u, law,
                                                                self._stamp()))

    def _publish(self, publisher, message) -> None:
        """Publish a plan or an input, signed when authentication is on."""
        if self.auth is not None:
            self.auth.sign(message)
        publisher.publish(message)

    def _step_done(self, done: StepDone) -> None:
        """The step's AgentStatus (the agent's statistics and the negotiation's counts) and its scene."""
        counts = done.counts
        for name, value in counts.items():
            self._totals[name] += value
        plan = self.agent.last_plan
        message = status_message(
            self.agent_id, done.step + self.wire.offset, self.agent.statistics, plan, self.agent.constraint_margin(),
            self._stamp(),
            messages_missing=counts["missing"], messages_late=counts["late"], messages_rejected=counts["rejected"],
            deadline_misses=counts["deadline_misses"], watchdog_stops=counts["watchdog_stops"],
            counters=scheme_of(self.algorithm).counters,
            extra_counters={**({} if self.auth is None else self.auth.step_counters("plan")),
                            **({"plan_deadlines": counts["plan_deadlines"]} if self._plan_qos.deadline.nanoseconds
                               else {})} or None)
        self._outputs["status"].publish(message)
        if self._resume_dir and plan is not None:   # what a respawned incarnation warm-starts from
            save_plan(self._resume_dir, plan)
        warning = self._caps.note(done.step, self.agent.statistics)
        if warning:
            self.get_logger().warning(warning)
        if self.layout is not None and plan is not None:   # path and markers of the final plan
            scene = scene_of(self.agent_id, plan, self.layout, self.negotiator.measured_state, self._heard,
                             self.design.collision)
            stamp, sample_time = self._stamp(), self.design.system.sample_time
            self._outputs["path"].publish(path_message(scene, stamp, sample_time))
            self._outputs["markers"].publish(marker_array(scene, self.layout, stamp, sample_time, self._tube_outline))

    def _beat(self) -> None:
        """The heartbeat; its frame_id is the node's name, with MATCHING_SUFFIX while a neighbour's plan topic has no
        matched publisher (the lifecycle manager's start gate waits for every agent to drop it)."""
        if self.active or (self.team is not None and self._activated):   # a team node beats while it is up
            matched = all(handle.get_publisher_count() > 0 for handle in self._plan_inputs.values())
            beat = Header(frame_id=self.get_name() + ("" if matched else MATCHING_SUFFIX))
            beat.stamp = self._wall.now().to_msg()
            self._outputs["heartbeat"].publish(beat)


def main(argv: list[str] | None = None) -> int:
    init_node_process(argv)
    node = AgentNode()
    spin_node(node, lambda: node.finished)
    return 0


if __name__ == "__main__":
    sys.exit(main())
