"""The negotiation rules of one agent, as a sans-IO state machine that both drivers run.

A `Negotiator` wraps one `Agent` and owns every rule about *when*: when a step starts (a measurement, or the wall
clock in robot mode), how long it waits for the neighbours' final plans of the previous step and for the plans an
iteration needs, what replaces a plan that does not come (the sender's newest plan, used shifted by the agent), what
is counted (missing, late, rejected plans, overtaken steps), when a new measurement overtakes a negotiation, and, in
robot mode, when the robot is stopped (stale pose, silent neighbour, overdue command) and when an activation came
too late. It does no I/O and reads no clock: the driver passes the time with every event and turns the returned
actions into messages, commands and timers.

Time budget (real time): with `step_budget` the step's input goes out at the latest that long after its measurement,
with what the negotiation has (its current iterate; counted as overtaken), and every wait ends by then. A neighbour
waited for in vain is then not waited for again in that step until it is heard from: a silent or stalled agent costs
each neighbour one bounded wait per step, and the others' inputs are never late because of it. Without a budget
(lock-step, `dmpc sim`) time is free, every iteration waits for its plans up to the timeout, and nothing changes.

Rejoin (issue 28): a measurement of the step whose input already went out (a respawned plant publishes its step
again; the input it had was lost with the dead process) sends that same input again, flagged `resent`; a
respawned agent's negotiator starts fresh and negotiates from the step it measures first (its warm start is the
agent's: `Agent.rejoin`). Before its first measurement such an agent cannot tell which steps are admissible, while
its neighbours' plans (TRANSIENT_LOCAL history in lock-step) already arrive steps ahead: it keeps each neighbour's
plans of its newest two steps aside (bounded: 2 (max_iteration + 1) per neighbour) and books those its first step
admits, so it joins the negotiation in progress instead of waiting out a timeout per iteration.

Injected delay (`plan_delay` [s], the agent parameter): every received plan is held that long before it counts as
received (booked, heard from, able to complete an iteration), in arrival order. The kernel here has no netem, so
this is how a ROS run gets a delay on its links; in `dmpc sim` a hold of d on an agent behaves as network latency d on
every link into it (a plan sent at t counts at t + d either way, in the order sent; test_negotiator.py).

Outages: at the end of each step the agent's statistics get `plan_outage_steps` (OUTAGE_COUNTER), the longest any
neighbour has been silent: k minus the newest step of which a plan from it was received (0: every neighbour was
heard in this step), which is what the tube fault bound D (controller.tube.missed_steps) is about.

Events (methods):  activate(now) · deactivate(now) · measure(step, state, now) · receive(plan, now) · pose(state, now)
                   · tick(now) · refuse(reason, topic) · silent(agent, now)
Actions (returned): PublishPlan · ApplyInput · DriveRobot · StopRobot · StepDone · Warn · WakeAt

Drivers: `sim.closed_loop` delivers plans through the simulated network (per-link latency, drops, outages) and
wakes negotiators in simulated time; `ros.agent_node` turns rclpy callbacks and one timer into events. The same fault
then means the same behaviour in `dmpc sim` and `dmpc run`. `now` is any clock in seconds (the node uses the
monotonic clock, or UNIX time in robot mode, where the step schedule is shared by synchronized robots); a clock that
jumps back moves the armed deadlines with it, so no jump makes a negotiator wait forever.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from .base import Agent
from .plan import Plan
from .plan_book import PlanBook

DEFAULT_ITERATION_TIMEOUT = 2.0   # [s] the wait for an iteration's plans before substitutes are used
OUTAGE_COUNTER = "plan_outage_steps"   # per step: the longest any neighbour has been silent [steps] (module docstring)


@dataclass(frozen=True)
class RobotTiming:
    """Wall-clock rules of robot mode [s]; step k starts at start_time + k·Δt (UNIX time, so robots whose clocks
    are synchronized agree on k without messages). start_time 0: the activation time."""

    sample_time: float
    start_time: float
    state_timeout: float        # a pose older than this is stale
    neighbour_timeout: float    # a neighbour whose last plan is older than this is silent
    command_deadline: float     # the step's command must be out this long after its start

    def step_at(self, now: float) -> int:
        return math.floor((now - self.start_time) / self.sample_time + 1e-9)

    def step_start(self, step: int) -> float:
        return self.start_time + step * self.sample_time


# -- actions -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishPlan:
    plan: Plan


@dataclass(frozen=True)
class ApplyInput:
    """u_i for `step` (finite and inside U_i: Agent.control); stop=True: the input nearest zero at deactivation."""

    step: int
    input: np.ndarray
    stop: bool = False
    resent: bool = False   # the same input of the same step again (the plant asked for the step again)


@dataclass(frozen=True)
class DriveRobot:
    input: np.ndarray


@dataclass(frozen=True)
class StopRobot:
    reason: str


@dataclass(frozen=True)
class StepDone:
    """The step's input is out: what the negotiation counted during it (for AgentStatus and the records)."""

    step: int
    counts: dict[str, int]


@dataclass(frozen=True)
class Warn:
    """A warning for the log; `topic` lets the driver throttle a flood of the same kind."""

    text: str
    topic: str = ""


@dataclass(frozen=True)
class WakeAt:
    """Call tick() at `time` (or later); earlier wake-ups are harmless."""

    time: float


Action = PublishPlan | ApplyInput | DriveRobot | StopRobot | StepDone | Warn | WakeAt

COUNTS = ("missing", "late", "rejected", "overtaken", "stale_steps", "deadline_misses", "watchdog_stops",
          "plan_deadlines")
# missing: needed plans replaced by a substitute after a deadline (per neighbour and iteration, or a final plan of
#   the previous step absent at a forced start); late: such a plan arriving after all; rejected: plans or states
#   refused (inadmissible step or iteration, wrong shape, not finite); overtaken: steps ended by a newer measurement
#   or the robot schedule before their last iteration; stale_steps: robot steps without a fresh pose;
#   deadline_misses: robot commands not out within the deadline; watchdog_stops: zero-velocity commands;
#   plan_deadlines: a neighbour's plan topic silent for a whole DDS deadline (`silent`).


@dataclass
class _Deadline:
    due: float
    armed_at: float


@dataclass
class Negotiator:
    """One agent's negotiation rules (see the module docstring). `max_iteration` bounds the iterations a step can
    have (max_iterations plus the consensus rounds); `steps` is the run's length (measurements at or after it end
    nothing and start nothing)."""

    agent: Agent
    max_iteration: int
    steps: int
    iteration_timeout: float = DEFAULT_ITERATION_TIMEOUT
    robot: RobotTiming | None = None
    state_dim: int | None = None
    step_budget: float | None = None   # [s] after a step's measurement its input goes out (real time); None: no limit
    plan_delay: float = 0.0   # [s] a received plan is held this long before it counts (injected delay)
    book: PlanBook = field(init=False)

    def __post_init__(self) -> None:
        if not self.iteration_timeout > 0 or not math.isfinite(self.iteration_timeout):
            raise ValueError(f"iteration_timeout: {self.iteration_timeout} is not allowed: must be a finite number "
                             "of seconds > 0")
        if self.step_budget is not None and not (self.step_budget > 0 and math.isfinite(self.step_budget)):
            raise ValueError(f"step_budget: {self.step_budget} is not allowed: must be a finite number of seconds > 0 "
                             "(or None: no budget)")
        if not (self.plan_delay >= 0 and math.isfinite(self.plan_delay)):
            raise ValueError(f"plan_delay: {self.plan_delay} is not allowed: must be a finite number of seconds ≥ 0")
        self.book = PlanBook(self.agent, self.max_iteration)
        self._held: list[tuple[float, int, Plan]] = []   # plan_delay: (due, arrival order, plan), a heap
        self._arrivals = itertools.count()
        self.heard_step: dict[int, int] = {}   # neighbour → the newest step of which a plan from it was received
        self.active = False
        self.last_step = -1           # the newest step started (or skipped for a stale pose)
        self.negotiating = False
        self._measured: np.ndarray | None = None   # a started step's state, waiting for the previous finals
        self._pending: tuple[int, np.ndarray] | None = None   # a measurement that came while inactive
        self._deadline: _Deadline | None = None
        self._clock = -math.inf       # the newest `now` seen (clock jumps back are detected against it)
        self.counts = dict.fromkeys(COUNTS, 0)
        self._substituted: set[tuple[int, int, int]] = set()   # (sender, step, iteration or -1: its final) replaced
        self._given_up: set[int] = set()   # budget: waited for in vain in this step, silent since: not waited for
        self._step_due: float | None = None   # budget: when the step's input must go out
        self.heard: dict[int, float] = {}                     # neighbour → time of its last admissible plan
        self._pose: tuple[np.ndarray, float] | None = None
        self._command_due: float | None = None
        self._ended = False
        self.measured_state: np.ndarray | None = None   # x_i of the newest step started (in the plant's frame)
        self._sent: ApplyInput | None = None   # the newest step's input (sent again if that step is measured again)
        self._early: dict[int, dict[tuple[int, int], Plan]] = {}   # before the first step: plans ahead, kept aside

    # -- events --------------------------------------------------------------------------------------------------
    def activate(self, now: float) -> list[Action]:
        """Lifecycle activation: robot mode fixes its schedule (and warns when step 0 is long gone); a measurement
        that arrived while inactive starts its step."""
        actions: list[Action] = []
        self._see(now)
        self.active = True
        if self.robot is not None:
            if self.robot.start_time == 0.0:
                self.robot = dataclasses.replace(self.robot, start_time=now)
            late = now - self.robot.start_time
            if late > self.robot.sample_time:
                actions.append(Warn(f"active {late:.1f} s after step 0 (start_time): steps before "
                                    f"{self.robot.step_at(now)} are missed; give start_time (or start_delay) more "
                                    "room (a first bring-up compiles ~5 s per agent)"))
            actions += self.tick(now)
        if self._pending is not None:
            (step, state), self._pending = self._pending, None
            actions += self.measure(step, state, now)
        return actions

    def deactivate(self, now: float) -> list[Action]:
        """Lifecycle deactivation: the robot stops, the plant gets the input nearest zero for the last step."""
        actions: list[Action] = []
        if self.robot is not None:
            actions.append(self._stop("deactivated"))
        if self.last_step >= 0:
            guard = self.agent.guard
            actions.append(ApplyInput(self.last_step, guard.nearest(np.zeros(guard.size)), stop=True))
        self.negotiating, self.active, self._deadline, self._measured = False, False, None, None
        return actions

    def measure(self, step: int, state: np.ndarray, now: float) -> list[Action]:
        """The measured x_i(step) (plant mode). Duplicates, old steps and the state after the last step start
        nothing; a state of the wrong size or not finite is refused and counted."""
        self._see(now)
        state = np.asarray(state, float)
        if (self.state_dim is not None and state.shape != (self.state_dim,)) or not np.all(np.isfinite(state)):
            self.counts["rejected"] += 1
            return [Warn(f"rejected state of step {step}: {state.size} values (expected {self.state_dim} finite)",
                         "state")]
        if not self.active:
            self._pending = (step, state)
            return []
        if step == self.last_step and self._sent is not None and self._sent.step == step and not self.negotiating \
                and self._measured is None:   # measured again after its input went out: a respawned plant's
            return [dataclasses.replace(self._sent, resent=True)]
        if step <= self.last_step or step >= self.steps:
            return []
        return self._start_step(step, state, now)

    def receive(self, plan: Plan, now: float) -> list[Action]:
        """A neighbour's plan (its message already decoded and shape-checked): refused if no run of this agent can
        have it, else booked; it may complete what a waiting step or iteration needs. With plan_delay it is held
        first and counts from now + plan_delay (released by tick)."""
        self._see(now)
        if self.plan_delay > 0:
            due = now + self.plan_delay
            heapq.heappush(self._held, (due, next(self._arrivals), plan))
            return [WakeAt(due)]
        return self._take(plan, now)

    def _take(self, plan: Plan, now: float) -> list[Action]:
        """A plan that counts as received now."""
        reason = self.book.inadmissible(plan)
        if reason and self.last_step < 0 and plan.agent in self.book.neighbours and plan.step >= 0 and \
                plan.iteration <= self.book.max_iteration:   # no step yet (a rejoining agent): kept for the first
            self._keep_early(plan)
            return []
        if reason:
            self.counts["rejected"] += 1
            return [Warn(f"rejected plan: {reason}", "plan")]
        if plan.agent not in self.book.neighbours:
            return []
        self.heard[plan.agent] = now
        self.heard_step[plan.agent] = max(self.heard_step.get(plan.agent, -1), plan.step)
        if plan.step >= self.last_step:
            self._given_up.discard(plan.agent)   # heard from in this step: waited for again
        for key in ((plan.agent, plan.step, plan.iteration), (plan.agent, plan.step, -1) if plan.final else None):
            if key in self._substituted:
                self._substituted.discard(key)
                self.counts["late"] += 1
        if not self.book.record(plan) or not self.active:
            return []
        if self._overdue(now):   # its timer has not fired yet: the budget rules, whatever the plan completes
            return self._budget_spent(now)
        if self._measured is not None:
            return self._try_begin(now)
        if self.negotiating:
            return self._advance(now)
        return []

    def silent(self, agent: int, now: float) -> list[Action]:
        """The middleware reports that neighbour `agent` published no plan for a whole plan deadline (DDS deadline
        QoS, plan_qos best_effort_deadline): counted; with a step budget (real time) it is given up for this step at
        once, as if waited for in vain, so a needed plan of it is substituted now instead of at the timeout. Without
        a budget (lock-step, `dmpc sim`) time is free and nothing else changes."""
        self.counts["plan_deadlines"] += 1
        if self._step_due is None or agent not in self.book.neighbours or not self.negotiating:
            return []
        self._given_up.add(agent)
        return self._advance(now)

    def refuse(self, reason: str, topic: str) -> list[Action]:
        """A message the driver could not even decode as one of this run's (wrong sender, sizes): counted."""
        self.counts["rejected"] += 1
        return [Warn(reason, topic)]

    def pose(self, state: np.ndarray, now: float) -> list[Action]:
        """Robot mode: the latest pose, as the model state (a non-finite one is ignored: never a NaN into x)."""
        state = np.asarray(state, float)
        if np.all(np.isfinite(state)):
            self._pose = (state, now)
        return []

    def tick(self, now: float) -> list[Action]:
        """The clock: a due deadline forces progress with what is there; robot mode starts steps on schedule and
        runs the watchdog."""
        self._see(now)
        actions: list[Action] = []
        while self._held and self._held[0][0] <= now:   # held plans first: a plan due at a deadline is in time
            actions += self._take(heapq.heappop(self._held)[2], now)
        if self.robot is not None and self.active:
            actions += self._robot_tick(now)
        deadline = self._deadline
        if self._overdue(now):
            return actions + self._budget_spent(now)
        if deadline is not None and now >= deadline.due:
            self._deadline = None
            if self._measured is not None:
                actions += self._try_begin(now, forced=True)
            elif self.negotiating:
                actions += self._advance(now, forced=True)
        return actions

    # -- queries -------------------------------------------------------------------------------------------------
    @property
    def next_wake(self) -> float | None:
        """When tick() has something to do next (None: nothing is armed)."""
        times = [t for t in (self._deadline.due if self._deadline else None, self._command_due,
                             self._held[0][0] if self._held else None,
                             self._step_due if self.negotiating or self._measured is not None else None)
                 if t is not None]
        if self.robot is not None and self.active and not self._ended:
            times.append(self.robot.step_start(max(self.last_step + 1, self.robot.step_at(self._clock) + 1)))
        return min(times) if times else None

    def silent_neighbours(self, now: float) -> list[int]:
        """Robot mode: the neighbours not heard from for neighbour_timeout."""
        timeout = self.robot.neighbour_timeout if self.robot else math.inf
        return [j for j in sorted(self.book.neighbours) if now - self.heard.get(j, -math.inf) > timeout]

    # -- rules ---------------------------------------------------------------------------------------------------
    def _see(self, now: float) -> None:
        """Track the clock; a jump back moves the armed deadline by the same amount (it keeps its remaining wait)."""
        if now < self._clock and self._deadline is not None:
            shift = now - self._clock
            self._deadline = _Deadline(self._deadline.due + shift, self._deadline.armed_at + shift)
        if self._command_due is not None and now < self._clock:
            self._command_due += now - self._clock
        if self._step_due is not None and now < self._clock:
            self._step_due += now - self._clock
        if self._held and now < self._clock:
            self._held = [(due + now - self._clock, order, plan) for due, order, plan in self._held]
        self._clock = now

    def _arm(self, now: float) -> list[Action]:
        due = now + self.iteration_timeout
        if self._step_due is not None:
            due = min(due, self._step_due)   # no wait outlasts the step's budget
        self._deadline = _Deadline(due, now)
        return [WakeAt(due)]

    def _overdue(self, now: float) -> bool:
        """A step (gated or negotiating) whose budget is spent."""
        return self._step_due is not None and now >= self._step_due and (self.negotiating or self._measured is not None)

    def _budget_spent(self, now: float) -> list[Action]:
        """The step's time is up: begin it with substitutes if still gated (its warm start is a feasible candidate),
        then its input goes out with the current iterate."""
        self._deadline = None
        actions: list[Action] = []
        if self._measured is not None:
            actions += self._try_begin(now, forced=True)
        if self.negotiating:
            self.counts["overtaken"] += 1
            actions.append(Warn(f"step {self.last_step}: the step budget ({self.step_budget:g} s) is spent at "
                                f"iteration {self.agent.iteration}; the input goes out with the current iterate",
                                "budget"))
            actions += self._finish_step(now)
        return actions

    def _start_step(self, step: int, state: np.ndarray, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.negotiating or self._measured is not None:   # a new measurement overtook the step: apply what we have
            self.counts["overtaken"] += 1
            actions += self._finish_step(now)
        self.last_step = step
        self._measured = self.measured_state = state
        self._substituted = {key for key in self._substituted if key[1] >= step - 1}   # bounded: two steps' keys
        self._given_up = set()
        self.book.expected = step   # its neighbours' plans of this step are admissible before it begins
        self._book_early(now)
        self._deadline = None
        self._step_due = None if self.step_budget is None else now + self.step_budget
        actions += self._try_begin(now)
        if self._measured is not None:   # gated on the previous step's final plans: wait at most the timeout
            actions += self._arm(now)
        return actions

    def _keep_early(self, plan: Plan) -> None:
        """A plan that came before the first measurement, for a step not yet admissible: kept, per neighbour, with the
        others of its newest two steps (the final plans of the step before and the iterations of the current one)."""
        plans = self._early.setdefault(plan.agent, {})
        plans[(plan.step, plan.iteration)] = plan
        newest = max(step for step, _ in plans)
        for key in [key for key in plans if key[0] < newest - 1]:
            del plans[key]

    def _book_early(self, now: float) -> None:
        """The first step is known: the plans kept aside that it admits are booked (as if they came now)."""
        early, self._early = self._early, {}
        for plan in (plan for plans in early.values() for _, plan in sorted(plans.items())):
            if self.book.inadmissible(plan):
                self.counts["rejected"] += 1
            elif self.book.record(plan):
                self.heard[plan.agent] = now

    def _try_begin(self, now: float, forced: bool = False) -> list[Action]:
        """Start the measured step once the neighbours' final plans of the previous step are in (their warm starts
        build on them); after the deadline start anyway and count the absent ones."""
        step = self.last_step
        actions: list[Action] = []
        if not forced and not self.book.previous_step_complete(step):
            return actions
        if forced:
            absent = self.book.without_final(step - 1)
            if self._step_due is not None:
                self._given_up.update(absent)   # one wait per step: not waited for again until heard from
            self._substituted.update((j, step - 1, -1) for j in absent)
            self.counts["missing"] += len(absent)
            actions.append(Warn(f"step {step}: starting without the final plans of step {step - 1} from {absent}",
                                "gate"))
        state, self._measured = self._measured, None
        self.negotiating = True
        self._deadline = None
        plan = self._call(self.agent.begin_step, step, state, self.book.begin(step))
        actions.append(PublishPlan(plan))
        return actions + self._advance(now)

    def _advance(self, now: float, forced: bool = False) -> list[Action]:
        """Iterate while the needed plans are present (once with substitutes after a deadline)."""
        actions: list[Action] = []
        while self.negotiating:
            if self._step_due is not None and now >= self._step_due:
                return actions + self._budget_spent(now)
            iteration = self.agent.iteration + 1
            inbox = self.book.inbox(iteration)
            waited, closed = forced, set()
            if inbox is None and not forced:
                closed = self.book.closed(iteration)   # (both sets are empty unless a fault happened: then no scan)
                if (self._given_up or closed) and set(self.book.missing(iteration)) <= self._given_up | closed:
                    forced = True   # budget: each silent neighbour costs one wait per step; a closed key none
            if inbox is None and forced:
                inbox, missing = self.book.inbox_with_substitutes(iteration)
                if self._step_due is not None:
                    self._given_up.update(missing)
                for j in missing:
                    self._substituted.add((j, self.last_step, self.book.needed_iteration(j, iteration)))
                self.counts["missing"] += len(missing)
                why = (f"within {self.iteration_timeout:g} s" if waited else "(two different plans came: refused)"
                       if closed else "(already waited for in this step)")
                actions.append(Warn(f"step {self.last_step} iteration {iteration}: no plan from {missing} {why}; "
                                    "using their last plans", "missing"))
            if inbox is None:
                if self._deadline is None:
                    actions += self._arm(now)
                return actions
            forced = False
            self._deadline = None
            plan = self._call(self.agent.iterate, inbox)
            actions.append(PublishPlan(plan))
            if plan.final:
                actions += self._finish_step(now)
        return actions

    def _finish_step(self, now: float) -> list[Action]:
        """The step's input goes out (once per step): the last plan, flagged final if the step was cut short, then
        the guarded input, the robot command and the step's counts."""
        actions: list[Action] = []
        step = self.last_step
        self._deadline = self._step_due = None
        if self._measured is not None:   # never began (gated): the input stays the previous step's
            self._measured = None
            self.negotiating = False
            return actions
        self.negotiating = False
        plan = self.agent.last_plan
        if plan is not None and not plan.final:   # overtaken or out of time: tell the neighbours we stopped
            final = self.agent.cut_short()
            if final is not None:
                actions.append(PublishPlan(final))
        neighbours = self.book.neighbours
        self.agent.statistics.counters[OUTAGE_COUNTER] = \
            max((max(step - self.heard_step.get(j, -1), 0) for j in neighbours), default=0)
        u = self.agent.control()   # finite and inside U_i whatever the solver did (coordination/safe_input.py)
        self._sent = ApplyInput(step, u)
        actions.append(self._sent)
        if self.robot is not None and self._command_due is not None:
            self._command_due = None
            actions.append(self._stop("a neighbour is silent") if self.silent_neighbours(now) else DriveRobot(u))
        actions.append(StepDone(step, dict(self.counts)))
        self.counts = dict.fromkeys(COUNTS, 0)
        return actions

    def _call(self, method, *args) -> Plan:
        """One whole agent call, timed into its statistics (call_times)."""
        started = time.perf_counter()
        plan = method(*args)
        self.agent.statistics.call_times.append(time.perf_counter() - started)
        return plan

    # -- robot mode ----------------------------------------------------------------------------------------------
    def _stop(self, reason: str) -> StopRobot:
        self.counts["watchdog_stops"] += 1
        return StopRobot(reason)

    def _robot_tick(self, now: float) -> list[Action]:
        """Start step k when it is due (with the latest pose); stop the robot when the pose is stale, a neighbour is
        silent or the step's command is overdue; stop it once when the scenario's steps are done."""
        robot, actions = self.robot, []
        if self._command_due is not None and now > self._command_due:
            self._command_due = None
            self.counts["deadline_misses"] += 1
            actions.append(self._stop("no command within the deadline"))
            actions.append(Warn(f"step {self.last_step}: no command within the deadline; robot stopped"))
        step = robot.step_at(now)
        if step <= self.last_step or step < 0 or self._ended:
            return actions
        if self.negotiating or self._measured is not None:   # the last step overran: its command goes out now
            self.counts["overtaken"] += 1
            actions += self._finish_step(now)
        if step >= self.steps:
            self._ended = True
            self.last_step = self.steps
            actions.append(self._stop("the scenario's steps are done"))
            actions.append(Warn(f"robot mode: the scenario's {self.steps} steps are done; robot stopped", "end"))
            return actions
        fresh = self._pose is not None and now - self._pose[1] <= robot.state_timeout
        if not fresh:
            self.counts["stale_steps"] += 1
            self.last_step = step
            actions.append(self._stop("stale pose"))
            actions.append(Warn(f"step {step}: no pose younger than {robot.state_timeout:.2f} s; robot stopped",
                                "stale"))
            return actions
        silent = self.silent_neighbours(now) if step > 0 else []
        if silent:   # negotiate on (with their last plans) so that the robot drives again when they are back
            actions.append(self._stop("a neighbour is silent"))
            actions.append(Warn(f"step {step}: no plan from {silent} for {robot.neighbour_timeout:.2f} s; robot "
                                "stopped", "silent"))
        self._command_due = None if silent else robot.step_start(step) + robot.command_deadline
        return actions + self._start_step(step, self._pose[0], now)
