"""`ros2 run dmpc_ros lifecycle_manager`: brings the plant and agents up in order and watches them (like nav2's).

Bring-up: for each name in node_names (plant first) configure, verify with GetState, then activate each
in the same order and verify; any failed or timed-out transition aborts bring-up naming the node (its own
log says why). While running: each heartbeat topic must show a message within heartbeat_timeout, else the
agent is reported lost. It beats itself on ~/heartbeat (std_msgs/Header, every MANAGER_HEARTBEAT_PERIOD, from
start to exit; not on the lock-step path): the plant stops when it falls silent (manager_timeout).
With a respawn policy (parameter respawn, not none): bring-up adopts what it finds (an active node stays as it is,
an inactive one is only activated), so a respawned manager takes over a running team without stopping it; while
running it asks every node's state every STATE_POLL_PERIOD and brings a node that came back unconfigured (a respawned
process) up again, while the others run on (`transitions_to_active`: what a node's state still needs).
Start gate (start_gate > 0, real time): the plant is activated last, once every agent's heartbeat says it hears
every neighbour's plan topic (no MATCHING_SUFFIX), waiting at most start_gate seconds. Over lossy links discovery
and matching take seconds; a plant already stepping then runs the first steps with agents that hear nobody (measured:
outages of up to 16 steps against a tube fault bound of 1). Lock-step needs no gate: the plant waits for the inputs.
Plug and play (team_changes): the nodes in late_nodes (joiners) are not brought up at bring-up but when they
appear, their heartbeat watched from then on; a member whose leave is announced on team/announcement, or a joiner
refused there, is taken down (deactivated, cleaned up, shut down: its process then ends cleanly), no longer watched.
On SIGINT/SIGTERM/SIGHUP: deactivate, clean up and shut down the nodes in reverse order.
Service calls are asynchronous and awaited from the main loop, never inside a callback.
Exit codes: 0 clean, 1 bring-up failed (nodes are left for whoever started them), 3 an agent was lost.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Header

from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from ..process_group import STOP_SIGNALS
from .spin import supervisor_gone

EXPECTED = {
    Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
    Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
    Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE,
    Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED,
    Transition.TRANSITION_UNCONFIGURED_SHUTDOWN: State.PRIMARY_STATE_FINALIZED,
}
MATCHING_SUFFIX = " matching"   # an agent's heartbeat frame_id ends so while a neighbour's plan topic is unmatched
RETRY_PERIOD = 5.0  # [s] an unanswered service request is re-sent after this long
MANAGER_HEARTBEAT_PERIOD = 0.2   # [s] of the manager's own heartbeat (the plant's manager_timeout: 5 s by default)
STATE_POLL_PERIOD = 0.5   # [s] between two state queries of a node (respawn on): how soon a respawned node is seen
STATE_QUERY_TIMEOUT = 2.0   # [s] an unanswered state query (the dead process's service) is given up and sent again
BRING_BACK_ATTEMPTS = 3     # failed bring-ups of a node that came back, after which it is left alone (its log says why)
UP = (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE)
NAMES = {Transition.TRANSITION_CONFIGURE: "configure", Transition.TRANSITION_ACTIVATE: "activate",
         Transition.TRANSITION_DEACTIVATE: "deactivate", Transition.TRANSITION_CLEANUP: "cleanup",
         Transition.TRANSITION_UNCONFIGURED_SHUTDOWN: "shutdown"}


def _is_plant(name: str) -> bool:
    return name.rsplit("/", 1)[-1] == "plant"


def transitions_to_active(state: int) -> tuple[int, ...]:
    """The transitions that bring a node in lifecycle `state` to active: configure and activate from unconfigured,
    activate from inactive, none when active (adopted as it is); a node finalized or in a transition state cannot
    be brought up (ValueError naming the state)."""
    plan = {State.PRIMARY_STATE_UNCONFIGURED: UP, State.PRIMARY_STATE_INACTIVE: UP[1:], State.PRIMARY_STATE_ACTIVE: ()}
    if state not in plan:
        raise ValueError(f"lifecycle state {state} is not allowed for bring-up: must be unconfigured (1), inactive "
                         "(2) or active (3)")
    return plan[state]


# qos.STATUS_QOS, spelled here: the qos module imports the parameter table, whose imports take seconds
EARLY_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT)


class EarlyHeartbeat:
    """The manager's heartbeat while its process is still loading the parameter table (seconds of imports, more on a
    loaded machine): a bare node of the manager's name beats from a thread, so that a respawned manager is heard by
    the plant well within its manager_timeout (5 s by default), then gives way to the manager node."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("lifecycle_manager")   # the command line's name and namespace apply
        self.publisher = self.node.create_publisher(Header, "~/heartbeat", EARLY_QOS)
        self.node.get_logger().info("heartbeat on (loading)")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            beat = Header(frame_id=self.node.get_name())
            beat.stamp = self.node.get_clock().now().to_msg()
            self.publisher.publish(beat)
            if self._stop.wait(MANAGER_HEARTBEAT_PERIOD):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.node.destroy_node()


class LifecycleManager(Node):
    def __init__(self, **kwargs) -> None:
        from .parameters import check_parameters, declare_parameters   # slow (see EarlyHeartbeat)
        from .qos import STATUS_QOS

        super().__init__("lifecycle_manager", **kwargs)
        declare_parameters(self, "lifecycle_manager")
        values = check_parameters(self, "lifecycle_manager")
        self.nodes = list(values["node_names"] or [])
        self.late = [name for name in values["late_nodes"] or [] if name in self.nodes]   # joiners, up when they appear
        self.leaving: list[str] = []   # members whose leave was announced, to be taken down
        self.timeout = values["transition_timeout"]
        self.executor_ = SingleThreadedExecutor(context=self.context)
        self.executor_.add_node(self)
        self.clients_ = {name: (self.create_client(ChangeState, f"{name}/change_state"),
                                self.create_client(GetState, f"{name}/get_state")) for name in self.nodes}
        self.last_beat: dict[str, float] = {}
        self.lost: set[str] = set()
        self.heartbeat_topics = list(values["heartbeat_topics"] or [])
        for topic in self.heartbeat_topics:
            self.create_subscription(Header, topic, lambda message, t=topic: self._beat(t, message), STATUS_QOS)
        self.heartbeat_timeout = values["heartbeat_timeout"]
        self.start_gate = values["start_gate"]
        self.matching: dict[str, bool] = {}   # heartbeat topic → its agent still lacks a neighbour's plan topic
        self.adopting = values["respawn"] != "none"   # nodes may come back (respawned) or already run (a new manager)
        self._queries: dict[str, tuple[object, float]] = {}   # node → (pending GetState future, when sent)
        self._polled: dict[str, float] = {}   # node → when its state was last asked for
        self.rejoined: dict[str, int] = {}   # node → times it was brought up again after a respawn
        self.failed_back: dict[str, int] = {}   # node → failed attempts to bring it up again
        self._heartbeat = self.create_publisher(Header, "~/heartbeat", STATUS_QOS)
        from dmpc_ros_msgs.msg import TeamAnnouncement

        from .team_topics import ANNOUNCEMENT_TOPIC, TEAM_QOS
        self.create_subscription(TeamAnnouncement, ANNOUNCEMENT_TOPIC, self._on_announcement, TEAM_QOS)
        self.create_timer(MANAGER_HEARTBEAT_PERIOD, self._beat_own)
        self.stop_requested = False   # SIGINT/SIGTERM: bring-up and watching end
        self.shutting_down = False    # from then on, further signals (launch and the terminal both send one) wait

    @property
    def interrupted(self) -> bool:
        return self.stop_requested and not self.shutting_down

    def _await(self, future, what: str, timeout: float):
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline and not self.interrupted:
            self.executor_.spin_once(timeout_sec=0.05)
        if not future.done():
            raise TimeoutError(f"{what}: no answer within {timeout:.1f} s")
        return future.result()

    def _call(self, client, request, what: str):
        """A service call, re-sent when unanswered: a request sent right after discovery can lose its answer
        (the server's reply writer has not matched the client yet). Only for idempotent requests."""
        attempts = max(1, int(self.timeout // RETRY_PERIOD))
        for attempt in range(attempts):
            try:
                return self._await(client.call_async(request), what, min(RETRY_PERIOD, self.timeout))
            except TimeoutError:
                if attempt == attempts - 1 or self.interrupted:
                    raise
        raise TimeoutError(what)

    def transition(self, name: str, transition: int) -> None:
        change, get = self.clients_[name]
        what = f"{NAMES[transition]} of {name}"
        deadline = time.monotonic() + self.timeout
        while not (change.service_is_ready() and get.service_is_ready()):
            if time.monotonic() > deadline or self.interrupted:
                raise TimeoutError(f"{what}: its lifecycle services did not appear within {self.timeout:.1f} s")
            self.executor_.spin_once(timeout_sec=0.05)
        request = ChangeState.Request(transition=Transition(id=transition))
        try:
            success = self._await(change.call_async(request), what, min(RETRY_PERIOD, self.timeout)).success
        except TimeoutError:
            # Unanswered: either the request or its answer was lost. The node's state tells which.
            if transition == Transition.TRANSITION_UNCONFIGURED_SHUTDOWN:
                raise
            state = self._call(get, GetState.Request(), f"state of {name}").current_state
            success = state.id == EXPECTED[transition] or \
                self._await(change.call_async(request), what, self.timeout).success
        if not success:
            raise RuntimeError(f"{what} failed (the node's log says why)")
        if transition == Transition.TRANSITION_UNCONFIGURED_SHUTDOWN:
            self.get_logger().info(f"{name}: shutdown ok → finalized")  # the process may exit right away
            return
        state = self._call(get, GetState.Request(), f"state of {name}").current_state
        if state.id != EXPECTED[transition]:
            raise RuntimeError(f"{what}: node reports state '{state.label}' afterwards")
        self.get_logger().info(f"{name}: {NAMES[transition]} ok → {state.label}")

    def _state(self, name: str) -> int:
        """The node's lifecycle state id, once its services are there."""
        change, get = self.clients_[name]
        deadline = time.monotonic() + self.timeout
        while not (change.service_is_ready() and get.service_is_ready()):
            if time.monotonic() > deadline or self.interrupted:
                raise TimeoutError(f"state of {name}: its lifecycle services did not appear within "
                                   f"{self.timeout:.1f} s")
            self.executor_.spin_once(timeout_sec=0.05)
        return self._call(get, GetState.Request(), f"state of {name}").current_state.id

    def bring_up(self) -> bool:
        gated = self.start_gate > 0 and any(_is_plant(name) for name in self.nodes)
        try:
            for transition in UP:
                now_up = [name for name in self.nodes if name not in self.late]
                last = [name for name in now_up if gated and transition == UP[-1] and _is_plant(name)]
                for name in [name for name in now_up if name not in last] + ["gate"] * bool(last) + last:
                    if name == "gate":
                        self._wait_at_gate()
                        continue
                    if self.adopting:   # only what the node's state still needs (a respawned manager adopts)
                        try:
                            needed = transitions_to_active(self._state(name))
                        except ValueError as error:
                            raise RuntimeError(f"{name}: {error}") from None
                        if transition not in needed:
                            if transition == UP[-1] and not needed:
                                self.get_logger().info(f"{name}: already active, adopted")
                            continue
                    self.transition(name, transition)
        except (RuntimeError, TimeoutError) as error:
            self.get_logger().error(f"bring-up aborted: {error}")
            return False
        now = time.monotonic()
        self.last_beat = {topic: now for topic in self.heartbeat_topics}
        self.get_logger().info(f"all {len(self.nodes) - len(self.late)} nodes active" +
                               (f"; {len(self.late)} start later" if self.late else ""))
        return True

    def _wait_at_gate(self) -> None:
        """The start gate: until every agent hears all its neighbours' plan topics, at most start_gate seconds."""
        started = time.monotonic()
        topics = [t for t in self.heartbeat_topics if not any(t.startswith(name + "/") for name in self.late)]
        while not self.interrupted and time.monotonic() - started < self.start_gate:
            waiting = [t for t in topics if self.matching.get(t, True)]
            if not waiting:
                self.get_logger().info(f"start gate: every agent hears its neighbours after "
                                       f"{time.monotonic() - started:.1f} s; activating the plant")
                return
            self.executor_.spin_once(timeout_sec=0.05)
        waiting = [t for t in topics if self.matching.get(t, True)]
        if waiting:
            self.get_logger().warning(f"start gate: after {self.start_gate:g} s {', '.join(waiting)} still report "
                                      "an unmatched neighbour plan topic; activating the plant anyway")

    def _beat_own(self) -> None:
        beat = Header(frame_id=self.get_name())
        beat.stamp = self.get_clock().now().to_msg()
        self._heartbeat.publish(beat)

    def _beat(self, topic: str, message: Header | None = None) -> None:
        """A heartbeat; one from an agent reported lost says it is back (a long solve blocks its node's timer)."""
        now = time.monotonic()
        if message is not None:
            self.matching[topic] = message.frame_id.endswith(MATCHING_SUFFIX)
        if topic in self.lost:
            self.lost.discard(topic)
            self.get_logger().warning(f"agent back: heartbeat on {topic} after {now - self.last_beat[topic]:.1f} s")
        self.last_beat[topic] = now

    def _poll_states(self) -> None:
        """Respawn on: ask each node its state now and then; one that answers unconfigured has come back (its
        process was respawned) and is brought up again, the others running on."""
        now = time.monotonic()
        for name in self.nodes:
            query = self._queries.get(name)
            if query is not None and query[0].done():
                del self._queries[name]
                try:
                    state = query[0].result().current_state.id
                except Exception:   # the service went away with its process
                    continue
                if state == State.PRIMARY_STATE_UNCONFIGURED and \
                        self.failed_back.get(name, 0) < BRING_BACK_ATTEMPTS:
                    self._bring_back(name)
            elif query is not None and now - query[1] > STATE_QUERY_TIMEOUT:
                del self._queries[name]   # asked a dead process: ask again
            elif query is None and now - self._polled.get(name, -1e9) >= STATE_POLL_PERIOD:
                get = self.clients_[name][1]
                if get.service_is_ready():
                    self._queries[name] = (get.call_async(GetState.Request()), now)
                    self._polled[name] = now

    def _bring_back(self, name: str) -> None:
        started = time.monotonic()
        self.get_logger().warning(f"{name} is back unconfigured (respawned): bringing it up again")
        try:
            for transition in UP:
                self.transition(name, transition)
        except (RuntimeError, TimeoutError) as error:
            self.failed_back[name] = failed = self.failed_back.get(name, 0) + 1
            left = "; left alone from now on" if failed == BRING_BACK_ATTEMPTS else ""
            self.get_logger().error(f"bringing {name} up again failed ({failed} of {BRING_BACK_ATTEMPTS}): "
                                    f"{error}{left}")
            return
        self.failed_back.pop(name, None)
        self.rejoined[name] = self.rejoined.get(name, 0) + 1
        self.get_logger().info(f"{name} rejoined: active again after {time.monotonic() - started:.2f} s")

    def _on_announcement(self, message) -> None:
        """An applied leave or a refused join: that node (agent_<id> of node_names), no longer or never in the team,
        is taken down from the watch loop."""
        if message.accepted == (message.kind == "leave"):
            self.leaving += [name for name in self.nodes if name.rsplit("/", 1)[-1] == f"agent_{message.member}"]

    def _team_changes(self) -> None:
        """Joiners that appeared are brought up (their heartbeat watched from then on); leavers are taken down."""
        for name in list(self.late):
            change, get = self.clients_[name]
            if change.service_is_ready() and get.service_is_ready():
                self.late.remove(name)
                self.get_logger().info(f"{name} appeared (a joiner): bringing it up")
                try:
                    for transition in UP:
                        self.transition(name, transition)
                except (RuntimeError, TimeoutError) as error:
                    self.get_logger().error(f"bringing up {name} failed: {error}")
                    continue
                topic = f"{name}/heartbeat"
                from .qos import STATUS_QOS
                self.create_subscription(Header, topic, lambda _m, t=topic: self._beat(t), STATUS_QOS)
                self.last_beat[topic] = time.monotonic()
        while self.leaving:
            name = self.leaving.pop(0)
            self.last_beat = {t: seen for t, seen in self.last_beat.items() if not t.startswith(f"{name}/")}
            try:
                for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                                   Transition.TRANSITION_UNCONFIGURED_SHUTDOWN):
                    self.transition(name, transition)
            except (RuntimeError, TimeoutError) as error:
                self.get_logger().warning(f"taking {name} down (it left or was refused): {error}")

    def watch(self) -> None:
        while rclpy.ok() and not self.stop_requested and not supervisor_gone():
            self.executor_.spin_once(timeout_sec=0.05)
            if self.adopting:
                self._poll_states()
            if self.late or self.leaving:
                self._team_changes()
            now = time.monotonic()
            for topic, seen in self.last_beat.items():
                if topic not in self.lost and now - seen > self.heartbeat_timeout:
                    self.lost.add(topic)
                    self.get_logger().error(f"lost agent: no heartbeat on {topic} for {self.heartbeat_timeout:.1f} s")

    def shut_down(self) -> None:
        """Take every node down from whatever state it is in, in reverse bring-up order."""
        self.shutting_down = True   # the service calls below are not cut short by a second signal
        next_transition = {State.PRIMARY_STATE_ACTIVE: Transition.TRANSITION_DEACTIVATE,
                           State.PRIMARY_STATE_INACTIVE: Transition.TRANSITION_CLEANUP,
                           State.PRIMARY_STATE_UNCONFIGURED: Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        for name in reversed(self.nodes):
            try:
                for _ in range(3):  # active → inactive → unconfigured → finalized
                    change, get = self.clients_[name]
                    if not get.wait_for_service(timeout_sec=1.0):
                        self.get_logger().info(f"shutdown: {name} has already exited")
                        break
                    state = self._call(get, GetState.Request(), f"state of {name}").current_state.id
                    if state not in next_transition:
                        break
                    self.transition(name, next_transition[state])
            except (RuntimeError, TimeoutError) as error:
                self.get_logger().warning(f"shutdown: {error}")


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    early = EarlyHeartbeat()
    try:
        from . import parameters  # noqa: F401  the slow imports, while the early heartbeat goes on
    finally:
        early.stop()
    try:
        manager = LifecycleManager()
    except ValueError as error:   # a parameter the table does not allow: one line, no traceback
        print(f"lifecycle_manager: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1

    def request_stop(*_):
        manager.stop_requested = True

    for signum in STOP_SIGNALS:   # SIGINT, SIGTERM, SIGHUP
        signal.signal(signum, request_stop)
    if not manager.bring_up():
        manager.destroy_node()  # whoever started the nodes stops them; their logs say what failed
        rclpy.try_shutdown()
        return 1
    manager.watch()
    code = 3 if manager.lost else 0
    manager.timeout = min(manager.timeout, 2.0)
    manager.shut_down()
    manager.destroy_node()
    rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
