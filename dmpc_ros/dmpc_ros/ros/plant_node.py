"""`ros2 run dmpc_ros plant`: simulates a scenario's coupled plant for the agents, lock-step or real-time.

lock_step: the plant owns time. It publishes /clock (k·T) and every subsystem's SubsystemState for step k,
waits until every agent's ControlInput for step k has arrived (an agent silent for input_timeout keeps its
last input and is counted late), then steps the exact discretized plant (with the scenario's seeded
disturbances, random and scripted) — the same model and the same disturbance sequences as `dmpc sim`.
real_time: a wall-clock timer steps at the sample rate with zero-order hold on the newest inputs; inputs
that arrive after their step are counted late.
What it applies follows sim/plant_inputs.py: refused when out of U_i, clamped, optionally rate-limited, a stale
input replaced by the safe input (parameters input_rate_limit, stale_input_periods, safe_input). It stops (writing
the steps done, exit code 4) when the lifecycle manager's heartbeat has been silent for manager_timeout: the team
is gone.
With resume_dir (respawn on) it keeps its step and trajectory there after every step (sim/resume.py); a respawned
plant resumes from them (the inputs held as last applied) and publishes the step again: each agent whose input for
it went out with the dead process sends it again (coordination/negotiator.py), the others negotiate it.
After the scenario's T steps it publishes the final state x(T) too (agents do not act on it; a bag then has every
step), writes t, x, u (npz and CSV) to output_file and, if exit_on_completion, leaves the process with code 0 once
the final state is delivered — how the scenario runner learns the run is over.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock as ClockMessage
from std_msgs.msg import Header

from dmpc_ros_msgs.msg import ControlInput, SubsystemState

from ..scenarios import ScenarioError
from ..scenarios.node_specs import agent_topic
from ..scenarios.parameters import node_overrides
from ..scenarios.source import scenario_from_parameters
from ..sim.plant_inputs import Heartbeat, InputRules, PlantInputs, TerminalLaw
from ..sim.resume import PlantCheckpoint
from .authentication import authentication_of
from .conversions import next_step_law
from .parameters import check_parameters, declare_parameters
from .qos import CONTROL_QOS, STATE_QOS, STATUS_QOS
from .spin import init_node_process, spin_node
from .team_plant import TeamHead
from .throttle import Throttle

FINAL_STATE_TIMEOUT = 2.0   # [s] to deliver x(T) to every subscriber before the process exits (all together)
TEAM_GONE_EXIT = 4          # exit code of a plant that stopped because the lifecycle manager fell silent


class PlantNode(LifecycleNode):
    def __init__(self, node_name: str = "plant", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self, "plant")
        self.finished = False
        self.active = False
        self.scenario = None
        self.k, self._written = 0, -1   # steps done; steps in the output file
        self.offset, self.run_steps, self.head = 0, 0, None   # the stretch's first step (team changes), the run's steps
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._inputs: list = []
        self._timer = None
        self.exit_code, self.stopped = 0, ""   # why it stopped before the scenario's end (the team is gone)
        self.auth = None   # MessageAuthentication: inputs must be signed by their agent (ros/authentication.py)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            values = check_parameters(self, "plant")
            self.mode = values["mode"]
            scenario = scenario_from_parameters(values["scenario_file"], values["scenario_factory"])
            overrides = node_overrides(values, "plant")
            self.scenario = scenario.with_overrides(**overrides) if overrides else scenario
            rules = InputRules(values["input_rate_limit"], values["stale_input_periods"], values["safe_input"])
            self.late_plan = values["late_input"] == "plan"   # a late input's stand-in: the agent's shifted plan
            law = None if rules.safe_input != "terminal_law" else TerminalLaw.of(
                self.scenario.design(with_laws=False), self.scenario.controller.Q, self.scenario.controller.R)
            self.auth = authentication_of(values, self.scenario, self.scenario.num_agents)
        except (ScenarioError, ValueError) as error:
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        self.head = None if not self.scenario.team_changes else TeamHead(self, self.scenario)   # ros/team_plant.py
        self.run_steps = self.scenario.steps
        self._rules, self._law = rules, law
        self._setup(self.scenario if self.head is None else self.head.piece, self.scenario.initial_state, 0)
        ids = range(self.plant.num_agents if self.head is None else self.head.members)   # every member's topics
        self.team = Heartbeat(values["manager_timeout"])
        self._inputs.append(self.create_subscription(Header, "lifecycle_manager/heartbeat",
                                                     lambda _: self.team.beat(time.monotonic()), STATUS_QOS))
        self._refused = Throttle(self.get_logger().warning)   # an agent's refused inputs: a warning a second at most
        self.resume_dir = values["resume_dir"]
        if self.resume_dir:
            self._resume()
        self._state_publishers = {i: self.create_lifecycle_publisher(SubsystemState, agent_topic(i, "state"),
                                                                     STATE_QOS) for i in ids}
        self._clock_publisher = self.create_lifecycle_publisher(ClockMessage, "/clock", QoSProfile(depth=10))
        self._inputs += [self.create_subscription(ControlInput, agent_topic(i, "control"), self._on_input,
                                                  CONTROL_QOS) for i in ids]
        self.get_logger().info(f"configured {self.plant.num_agents} subsystems, {self.run_steps} steps of "
                               f"{self.plant.sample_time} s, mode {self.mode}")
        return TransitionCallbackReturn.SUCCESS

    def _setup(self, scenario, x0: np.ndarray, offset: int) -> None:
        """The plant of `scenario` (the run's, or a stretch's of a run with team changes, from step `offset`)."""
        self.scenario, self.offset = scenario, offset
        self.members = tuple(range(scenario.num_agents)) if self.head is None else self.head.ids()
        self.plant = self.scenario.plant()
        self.disturbance = self.scenario.plant_disturbance()   # computed once, as `dmpc sim` does (sim/disturbances.py)
        M, T = self.plant.num_agents, self.scenario.steps
        self.k, self._written = 0, -1
        self.x = np.zeros((T + 1, self.plant.n_x))
        self.x[0] = x0
        self.u = np.zeros((T, self.plant.n_u))
        self.inputs = PlantInputs(self.plant.subsystems, self._rules, self._law)   # what it applies (plant_inputs.py)
        self.received: dict[int, int] = {}   # agent → newest step with an input
        self.late_inputs = 0
        self.late_by_agent = np.zeros(M, int)   # inputs that arrived after their step, per agent
        self.wall_time = np.full(T + 1, np.nan)  # steady-clock time each step's state went out [s]

    def _resume(self) -> None:
        """A respawned plant: the step, states, inputs and late counts of the checkpoint, the inputs held as last
        applied; without a usable checkpoint (the first start) it starts at step 0."""
        plant = self.plant
        checkpoint, why = PlantCheckpoint.load(self.resume_dir, plant.n_x, plant.n_u, self.scenario.steps,
                                               plant.num_agents)
        if checkpoint is None or checkpoint.step == 0:
            return
        k = self.k = checkpoint.step
        self.x[: k + 1], self.u[:k] = checkpoint.x, checkpoint.u
        self.wall_time[: k + 1] = checkpoint.wall_time[: k + 1]
        self.late_by_agent[:] = checkpoint.late_by_agent
        self.late_inputs = int(self.late_by_agent.sum())
        self.inputs.safe_steps[:] = checkpoint.safe_steps
        for i, columns in enumerate(self.inputs.input_slices):
            self.inputs.held[i] = self.inputs.applied[i] = checkpoint.u[k - 1, columns].copy()
        self.get_logger().warning(f"resuming at step {k} of {self.scenario.steps} from {self.resume_dir}")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self.active = True
        self.inputs.start(self._now())   # an agent silent from here on gets its safe input after the timeout
        self._publish_step()
        period = self.plant.sample_time if self.mode == "real_time" else 0.01
        self._timer = self.create_timer(period, self._tick, clock=self._wall)
        self._waiting_since = time.monotonic()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for handle in self._inputs:
            self.destroy_subscription(handle)
        for publisher in [*self._state_publishers.values(), self._clock_publisher]:
            self.destroy_lifecycle_publisher(publisher)
        self._inputs, self._state_publishers = [], {}
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def _on_input(self, message: ControlInput) -> None:
        """An agent's input for step k: refused (counted, logged at most once a second) unless finite, of its size
        and inside its input set (sim/plant_inputs.py); then held until the agent's next one."""
        if not self.active or message.agent_id not in self.members:
            return
        i, step = self.members.index(message.agent_id), message.step - self.offset   # agent index, stretch step
        refused = None if self.auth is None else self.auth.refusal(message, message.agent_id)
        if refused is not None:   # unsigned, forged, another agent's key or a replay: counted by reason
            self._refused.warn(refused[1], refused[0])
            return
        if step < self.k:
            self.late_inputs += 1
            self.late_by_agent[i] += 1
            return
        if step == self.k:
            reason = self.inputs.offer(i, message.input, self.x[self.k, self.plant.state_slice(i)], self._now(),
                                       message.step, next_step_law(message) if self.late_plan else None)
            if reason is not None:
                self._refused.warn(i, reason)
                return
            self.received[i] = step
            if self.mode == "lock_step":
                self._tick()

    def _now(self) -> float:
        """The plant's clock in sample periods: the step in lock-step, the steady clock in real time."""
        return self.k if self.mode == "lock_step" else time.monotonic() / self.plant.sample_time

    def _tick(self) -> None:
        if self.head is not None and self.head.closing is not None:
            if self.head.closed(time.monotonic()):
                self.head.write(self.get_parameter("output_file").value or "team_changes.json")
                self._publish_step()
                self._complete()
            return
        if self.head is not None and self.head.busy:   # a team change step: proposal, votes, announcement
            if self.active and self.head.poll(time.monotonic()):
                self._setup(self.head.piece, self.head.course.x, self.head.course.start)
                self.inputs.start(self._now())
                self._waiting_since = time.monotonic()
                self._publish_step()
            return
        if not self.active or self.k >= self.scenario.steps:
            return
        silence = self.team.silence(time.monotonic())
        if silence is not None:
            self._stop(f"no heartbeat from the lifecycle manager for {silence:.1f} s (manager_timeout "
                       f"{self.team.timeout:g} s): the team is gone; stopped at step {self.k} of {self.scenario.steps}")
            return
        if self.mode == "lock_step":
            waiting = [i for i in range(self.plant.num_agents) if self.received.get(i, -1) < self.k]
            if waiting:
                if time.monotonic() - self._waiting_since < self.get_parameter("input_timeout").value:
                    return
                self.late_inputs += len(waiting)
                self.late_by_agent[waiting] += 1
                self.get_logger().warning(f"step {self.k}: no input from agents {waiting}; holding their last inputs")
        u = self.inputs.apply(self.x[self.k], self._now(), self.k)
        for agent, note in self.inputs.notes:
            self._refused.warn(agent, note)
        self.u[self.k] = u
        self.x[self.k + 1] = self.disturbance.step(self.plant, self.x[self.k], u, self.k)
        self.k += 1
        self._waiting_since = time.monotonic()
        if self.resume_dir:   # what a respawned plant resumes from; before the state goes out, so that a step an
            # agent has measured is always one a respawned plant resumes at or after
            self.wall_time[self.k] = time.monotonic()
            PlantCheckpoint(self.k, self.x, self.u, self.wall_time, self.late_by_agent,
                            self.inputs.safe_steps).save(self.resume_dir)
        if self.head is not None and self.k == self.scenario.steps:   # the stretch's end: recorded; a change step
            self.head.record(self.x, self.u)
            if self.offset + self.k < self.run_steps:
                self.head.reach(self.x[self.k])
            else:   # the run's end: the summary waits (briefly) for the last step's statuses
                self.head.closing = time.monotonic()
            return
        self._publish_step()
        if self.k == self.scenario.steps:
            self._complete()

    def _stop(self, reason: str) -> None:
        """End the run before the scenario's end: one line saying why, the steps done written, exit code 4."""
        self.get_logger().error(f"stopping: {reason}")
        self.stopped, self.exit_code, self.active = reason, TEAM_GONE_EXIT, False
        self.write_output()
        self.finished = True

    def _publish_step(self) -> None:
        self.wall_time[self.k] = time.monotonic()
        clock = ClockMessage()
        step = self.offset + self.k
        clock.clock.sec, clock.clock.nanosec = divmod(int(round(step * self.plant.sample_time * 1e9)), 1_000_000_000)
        if self.mode == "lock_step":
            self._clock_publisher.publish(clock)
        stamp = clock.clock if self.mode == "lock_step" else self.get_clock().now().to_msg()
        for i, member in enumerate(self.members):
            message = SubsystemState(agent_id=member, step=step,
                                     state=self.x[self.k, self.plant.state_slice(i)].tolist())
            message.header.stamp = stamp
            self._state_publishers[member].publish(message)

    def _complete(self) -> None:
        """Write the output; wait (a bounded time) until the subscribers have the final state before exiting."""
        self.write_output()
        deadline = time.monotonic() + FINAL_STATE_TIMEOUT
        for publisher in self._state_publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=max(deadline - time.monotonic(), 0.0)))
        self.get_logger().info("scenario complete")
        if self.get_parameter("exit_on_completion").value:
            self.finished = True

    def write_output(self) -> None:
        """t, x, u of the steps done so far (all of them at scenario end) to output_file (npz, CSV), with
        completed_steps: a run stopped early (a node died, Ctrl-C, strict mode) keeps what it did."""
        output = self.get_parameter("output_file").value if self.scenario is not None else ""
        if not output or self._written == self.k:
            return
        k = self.k
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(k + 1) * self.plant.sample_time
        x, u = self.x[: k + 1], self.u[:k]
        np.savez_compressed(path, t=t, x=x, u=u, late_inputs=self.late_inputs,
                            late_inputs_per_agent=self.late_by_agent, refused_inputs=self.inputs.refused,
                            plant_inputs=json.dumps(self.inputs.counts()), stopped=self.stopped,
                            wall_time=self.wall_time[: k + 1], completed_steps=self.offset + k, steps=self.run_steps,
                            **({} if self.auth is None else {f"inputs_refused_{reason}": count for reason, count
                                                             in self.auth.totals().items()}))
        u_padded = np.vstack([u, np.full((1, u.shape[1]), np.nan)])  # no input after the last state
        header = ",".join(["t"] + [f"x{j}" for j in range(x.shape[1])] + [f"u{j}" for j in range(u.shape[1])])
        np.savetxt(path.with_suffix(".csv"), np.column_stack([t, x, u_padded]), delimiter=",", header=header,
                   comments="", fmt="%.10g")
        self._written = k
        done = "" if k == self.scenario.steps else f" of {self.scenario.steps} (stopped early)"
        counts = self.inputs
        self.get_logger().info(f"wrote {path} ({k} steps{done}, {self.late_inputs} late inputs, "
                               f"{counts.refused} refused, {counts.safe_steps.sum()} agent-steps on the safe input, "
                               f"{counts.rate_limited.sum()} rate-limited)")


def main(argv: list[str] | None = None) -> int:
    init_node_process(argv)
    node = PlantNode()
    spin_node(node, lambda: node.finished)
    node.write_output()   # stopped before the scenario's end: keep the steps done
    return node.exit_code


if __name__ == "__main__":
    sys.exit(main())
