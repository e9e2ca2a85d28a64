"""What a plant applies as each subsystem's input: the rules the ROS plant node, `dmpc sim` and the robot link share.

The agents already guard what they send (coordination/safe_input.py: finite, inside U_i), but the plant is the last
line against whatever else arrives on a control topic:

- refuse: an input that is not finite, has the wrong size, or lies outside U_i (with the mixed rows at the current
  state) beyond the agents' own clean-up tolerance is refused and counted per agent and reason (`REFUSALS`); the
  subsystem keeps its previous input;
- clamp: what is applied is projected onto U_i (an input within the tolerance, a held input whose mixed rows moved
  with the state, a safe input), so it is always inside U_i;
- rate limit (optional): no component changes by more than `rate_limit` from one step to the next (U_i first where
  a mixed row moved under the previous input);
- stale: an input older than `stale_periods` sample periods (lock-step: steps; real time: the clock) is replaced by
  the subsystem's safe input — `zero` (the input of U_i nearest 0), `hold` (its last accepted input) or
  `terminal_law` (ū(k) + K (x − x̄(k)) with the plant-wide LQR gain the agents' shifted plans end with, clamped) —
  and the steps on it are counted per agent.

- late (real time; offers that name their step): when the input of the step being applied has not come, the
  agent's fallback sent with its previous input (`NextStepLaw`: its plan shifted one step, u = v + K (x_i − z), K the
  tube's ancillary gain or 0) is applied instead of the held input, clamped like any other, and counted
  (`plan_fallback_steps`); a fallback of the wrong size or not finite is dropped and counted (`bad_fallbacks`).

Before a subsystem's first input the plant holds the input of U_i nearest to zero; a subsystem that has sent
nothing for `stale_periods` since the clock started (`start`: the plant's activation) gets its safe input too (a
real-time plant steps while the agents come up). Inputs the agents send are fresh and
inside U_i, so none of these rules changes what a fault-free run applies (a lock-step run stays equal to `dmpc sim`).
`Heartbeat` is the plant's other guard: the team is gone when the lifecycle manager's heartbeat falls silent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coordination.safe_input import CLEAN_UP, InputGuard
from ..mpc.terminal import lqr_terminal

SAFE_INPUTS = ("zero", "hold", "terminal_law")
REFUSALS = ("size", "not_finite", "outside")   # why an input was refused: the counts' columns


@dataclass(frozen=True)
class InputRules:
    """The plant's parameters for what it applies (see the module docstring); the defaults change nothing."""

    rate_limit: float = 0.0       # largest |Δu_j| per step [the input's unit]; 0: no limit
    stale_periods: float = 0.0    # an input older than this many sample periods is stale; 0: never
    safe_input: str = "hold"      # what replaces a stale input: one of SAFE_INPUTS

    def __post_init__(self) -> None:
        for name in ("rate_limit", "stale_periods"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: {value!r} is not allowed: must be a finite number ≥ 0 (0: off)")
        if self.safe_input not in SAFE_INPUTS:
            raise ValueError(f"safe_input: {self.safe_input!r} is not allowed: must be one of {', '.join(SAFE_INPUTS)}")


class TerminalLaw:
    """u = ū(k) + K (x − x̄(k)): the LQR terminal controller of the design (mpc/terminal.lqr_terminal on the
    prediction model, or on a nonlinear network's linearization), plant-wide."""

    def __init__(self, gain: np.ndarray, reference) -> None:
        self.gain, self.reference = np.asarray(gain, float), reference

    @staticmethod
    def of(design, Q: np.ndarray, R: np.ndarray) -> "TerminalLaw":
        """From a controller design (linear or nonlinear: its `system` and `reference`) and the scenario's weights."""
        return TerminalLaw(lqr_terminal(*design.system.full_matrices(), Q, R)[1], design.reference)

    def input(self, x: np.ndarray, step: int) -> np.ndarray:
        x_ref, u_ref = self.reference.at(step)
        return u_ref + self.gain @ (np.asarray(x, float) - x_ref)


@dataclass(frozen=True)
class NextStepLaw:
    """An agent's fallback for `step`, sent with its input of step − 1: u = input + gain (x_i − state)."""

    step: int
    input: np.ndarray
    state: np.ndarray
    gain: np.ndarray

    def at(self, x: np.ndarray) -> np.ndarray:
        return self.input + self.gain @ (np.asarray(x, float) - self.state)

    def fault(self, n_u: int, n_x: int) -> str | None:
        """Why it cannot be used for a subsystem of n_u inputs and n_x states, or None."""
        shapes = (self.input.shape, self.state.shape, self.gain.shape)
        if shapes != ((n_u,), (n_x,), (n_u, n_x)):
            return f"fallback of sizes {shapes} (expected {(n_u,)}, {(n_x,)}, {(n_u, n_x)})"
        if not all(np.all(np.isfinite(a)) for a in (self.input, self.state, self.gain)):
            return "fallback not finite"
        return None


class PlantInputs:
    """Every subsystem's accepted input, what was applied, and the counts: refusals per agent and reason, steps on
    the safe input, rate-limited steps, clamped steps (each per agent)."""

    def __init__(self, subsystems, rules: InputRules = InputRules(), law: TerminalLaw | None = None) -> None:
        if rules.safe_input == "terminal_law" and law is None:
            raise ValueError("safe_input: 'terminal_law' needs the design's terminal law (none was given)")
        self.guards = [InputGuard.of(subsystem) for subsystem in subsystems]
        self.rules, self.law = rules, law
        sizes = [guard.size for guard in self.guards]
        self.input_slices = [slice(a, b) for a, b in zip(np.cumsum([0] + sizes[:-1]), np.cumsum(sizes))]
        n_x = [subsystem.n_x for subsystem in subsystems]
        self.state_slices = [slice(a, b) for a, b in zip(np.cumsum([0] + n_x[:-1]), np.cumsum(n_x))]
        self.held: list[np.ndarray | None] = [None] * len(self.guards)   # the last accepted input (None: not yet)
        self.applied = [guard.nearest(np.zeros(guard.size)) for guard in self.guards]
        M = len(self.guards)
        self.accepted_at = np.zeros(M)   # [sample periods] of the last accepted input, or of the start
        self.refusals = np.zeros((M, len(REFUSALS)), int)
        self.safe_steps, self.rate_limited, self.clamped = (np.zeros(M, int) for _ in range(3))
        self.offered_step: list[int | None] = [None] * M   # the step of the last accepted input, where named
        self.laws: list[NextStepLaw | None] = [None] * M   # the fallback sent with it
        self.plan_fallback_steps, self.bad_fallbacks = np.zeros(M, int), np.zeros(M, int)
        self.stale = np.zeros(M, bool)   # on the safe input at the last step
        self.limiting = np.zeros(M, bool)   # rate-limited at the last step
        self.notes: list[tuple[int, str]] = []   # (agent, what changed) at the last step: the node's warnings
        self._pending: list[tuple[int, str]] = []   # notes of offers since the last step

    @property
    def refused(self) -> int:
        return int(self.refusals.sum())

    def start(self, now: float) -> None:
        """The clock starts [sample periods] (the plant's activation): the age of a subsystem with no input yet."""
        self.accepted_at[:] = now

    def offer(self, agent: int, u, state: np.ndarray | None = None, now: float | None = None,
              step: int | None = None, law: NextStepLaw | None = None) -> str | None:
        """Take `u` as subsystem `agent`'s input, or say why not (then it is counted and the previous input stays).
        `state`: the subsystem's current state, for mixed state-input rows; `now` [sample periods]: when; `step`:
        the step it is for and `law` the agent's fallback for the next (see the module docstring)."""
        guard = self.guards[agent]
        u = np.asarray(u, float)
        reason, why = None, ""
        if u.shape != (guard.size,):
            reason, why = "size", f"{u.size} values (expected {guard.size})"
        elif not np.all(np.isfinite(u)):
            reason, why = "not_finite", "not finite"
        else:
            H, h = guard.rows(state)
            violation = float(np.max(H @ u - h, initial=0.0))
            if violation > CLEAN_UP * (1.0 + float(np.max(np.abs(h), initial=0.0))):
                reason, why = "outside", f"outside its input set by {violation:.3g}"
        if reason is not None:
            self.refusals[agent, REFUSALS.index(reason)] += 1
            return f"input {np.array2string(u.ravel()[:8], precision=4)} of agent {agent} refused: {why}"
        self.held[agent] = u
        if now is not None:
            self.accepted_at[agent] = now
        self.offered_step[agent], self.laws[agent] = step, law
        fault = None if law is None else law.fault(guard.size, self.state_slices[agent].stop -
                                                   self.state_slices[agent].start)
        if fault is not None:   # the input stands; the note comes with the next apply's
            self.bad_fallbacks[agent] += 1
            self.laws[agent] = None
            self._pending.append((agent, f"agent {agent}'s input accepted, its {fault} dropped"))
        return None

    def apply(self, x: np.ndarray | None = None, now: float | None = None, step: int = 0) -> np.ndarray:
        """The plant-wide input of this step (agents in order), each inside its U_i (mixed rows at x) and within
        the rate limit of the last applied one; a stale input replaced by the safe input. `x`: the plant state;
        `now` [sample periods] (None: nothing is stale); `step`: the reference sample of the terminal law."""
        self.notes, self._pending = self._pending, []
        law = None
        for i, guard in enumerate(self.guards):
            state = None if x is None else np.asarray(x, float)[self.state_slices[i]]
            H, h = guard.rows(state)
            stale = self.rules.stale_periods > 0 and now is not None and \
                now - self.accepted_at[i] > self.rules.stale_periods
            if stale:
                self.safe_steps[i] += 1
                if not self.stale[i]:
                    age = f"{now - self.accepted_at[i]:.1f} sample periods"
                    what = f"agent {i}'s input is {age} old" if self.held[i] is not None else \
                        f"agent {i} has sent no input for {age}"
                    self.notes.append((i, f"{what} (limit {self.rules.stale_periods:g}): its safe input "
                                          f"({self.rules.safe_input}) is applied"))
                if self.rules.safe_input == "terminal_law" and x is not None:
                    law = self.law.input(x, step) if law is None else law
                    wanted = law[self.input_slices[i]]
                elif self.rules.safe_input == "hold" and self.held[i] is not None:
                    wanted = self.held[i]
                else:   # zero (also the terminal law without a state, and hold before any input)
                    wanted = np.zeros(guard.size)
            elif self.stale[i]:
                self.notes.append((i, f"agent {i}'s input is fresh again"))
            self.stale[i] = stale
            if not stale:
                wanted = self.held[i] if self.held[i] is not None else self.applied[i]
                fallback, offered = self.laws[i], self.offered_step[i]
                if fallback is not None and offered is not None and offered < step == fallback.step and \
                        state is not None:
                    wanted = fallback.at(state)   # this step's input is late: the agent's plan, shifted
                    self.plan_fallback_steps[i] += 1
            u = self._inside(guard, wanted, H, h)
            if not stale and np.any(u != wanted):
                self.clamped[i] += 1
            limited = self._rate_limited(guard, u, self.applied[i], H, h)
            if np.any(limited != u):
                if not self.limiting[i]:
                    self.notes.append((i, f"agent {i}'s input is rate-limited (|Δu| ≤ {self.rules.rate_limit:g} per "
                                          "step)"))
                self.rate_limited[i] += 1
            self.limiting[i] = bool(np.any(limited != u))
            self.applied[i] = limited
        return np.concatenate(self.applied) if self.applied else np.zeros(0)

    def inputs(self) -> np.ndarray:
        """The plant-wide input applied last (agents in order)."""
        return np.concatenate(self.applied) if self.applied else np.zeros(0)

    @staticmethod
    def _inside(guard: InputGuard, u: np.ndarray, H: np.ndarray, h: np.ndarray) -> np.ndarray:
        """u itself when inside the set, else its projection onto it."""
        if np.all(np.isfinite(u)) and float(np.max(H @ u - h, initial=0.0)) <= 0.0:
            return u
        return guard.project(np.where(np.isfinite(u), u, 0.0), H, h)

    def _rate_limited(self, guard: InputGuard, u: np.ndarray, previous: np.ndarray, H: np.ndarray,
                      h: np.ndarray) -> np.ndarray:
        """u with each component's change from `previous` cut to the rate limit (inside the set: componentwise, or
        else scaled along u − previous; if `previous` itself left the set with the state, the set wins)."""
        rate = self.rules.rate_limit
        change = u - previous
        if rate <= 0 or float(np.max(np.abs(change), initial=0.0)) <= rate:
            return u
        for candidate in (previous + np.clip(change, -rate, rate),
                          previous + change * (rate / float(np.max(np.abs(change))))):
            if float(np.max(H @ candidate - h, initial=0.0)) <= 0.0:
                return candidate
        return guard.project(previous + np.clip(change, -rate, rate), H, h)

    def counts(self) -> dict:
        """The counts as summary.json and plant.npz carry them (lists per agent)."""
        return {"refused": {reason: self.refusals[:, r].tolist() for r, reason in enumerate(REFUSALS)},
                "safe_input_steps": self.safe_steps.tolist(), "rate_limited_steps": self.rate_limited.tolist(),
                "clamped_steps": self.clamped.tolist(), "plan_fallback_steps": self.plan_fallback_steps.tolist(),
                "bad_fallbacks": self.bad_fallbacks.tolist(), "safe_input": self.rules.safe_input,
                "stale_periods": self.rules.stale_periods, "rate_limit": self.rules.rate_limit}


class Heartbeat:
    """Whether the team is still there: silent for more than `timeout` [s] after a first beat (0: never). A gap
    between two checks longer than half the timeout means the watcher itself stalled (its messages may be queued
    behind it), so the silence is measured again from then."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last: float | None = None
        self.checked: float | None = None

    def beat(self, now: float) -> None:
        self.last = now

    def silence(self, now: float) -> float | None:
        """Seconds of silence once that exceeds the timeout, else None."""
        if self.timeout <= 0 or self.last is None:
            return None
        if self.checked is not None and now - self.checked > self.timeout / 2:
            self.last = max(self.last, now - self.timeout / 2)
        self.checked = now
        silent = now - self.last
        return silent if silent > self.timeout else None
