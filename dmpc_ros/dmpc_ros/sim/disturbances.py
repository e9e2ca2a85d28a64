"""Scripted plant disturbances: load steps, ramps, pulses and recorded time series, as numbers per control step.

A scenario's `simulation.disturbances` entries (parsed in scenarios/disturbance_entries.py) each act on one channel
of one agent: a state (an additive w on that state of x(k+1), in the state's SI unit) or an input (added to the
input the plant applies over the sample: an input disturbance, a load force, a leak). Their shapes are functions
of time sampled once per step at t_k = k·Δt; the value at t_k acts over [t_k, t_k + Δt). An event at time t0 acts
from the first step with t_k ≥ t0 (1 ns of slack absorbs the rounding of k·Δt). Several entries add up; the
seeded random draws of `disturbance_bound` add on top.

The sequences are computed here once, from the scenario alone (no I/O, no clock), so `dmpc sim` and the ROS plant
node apply the very same numbers and a lock-step ROS run stays bit-identical to the in-process one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

TIME_SLACK = 1e-9   # [s] an event at t0 acts at t_k ≥ t0 − slack (k·Δt rounds: 3·0.1 = 0.30000000000000004)
INTERPOLATIONS = ("zero_order_hold", "linear")


class Shape(Protocol):
    """A disturbance profile d(t) [the channel's unit], zero before it starts."""

    def sample(self, t: np.ndarray) -> np.ndarray: ...

    def events(self) -> tuple[float, ...]: ...


def started(t: np.ndarray, t0: float) -> np.ndarray:
    return t >= t0 - TIME_SLACK


@dataclass(frozen=True)
class Step:
    """d(t) = value from `time` on (a load step)."""
    time: float
    value: float

    def sample(self, t: np.ndarray) -> np.ndarray:
        return np.where(started(t, self.time), self.value, 0.0)

    def events(self) -> tuple[float, ...]:
        return (self.time,)


@dataclass(frozen=True)
class Ramp:
    """d(t) rises linearly from 0 at `start` to `final` at `end` and holds `final` afterwards."""
    start: float
    end: float
    final: float

    def sample(self, t: np.ndarray) -> np.ndarray:
        share = np.clip((t - self.start) / (self.end - self.start), 0.0, 1.0)
        return np.where(started(t, self.start), self.final * share, 0.0)

    def events(self) -> tuple[float, ...]:
        return (self.start, self.end)


@dataclass(frozen=True)
class Pulse:
    """d(t) = value for start ≤ t < start + duration, else 0."""
    start: float
    duration: float
    value: float

    def sample(self, t: np.ndarray) -> np.ndarray:
        return np.where(started(t, self.start) & ~started(t, self.start + self.duration), self.value, 0.0)

    def events(self) -> tuple[float, ...]:
        return (self.start, self.start + self.duration)


@dataclass(frozen=True)
class Series:
    """A recorded time series (times strictly increasing): zero before the first sample, the last value after the
    last; in between held from each sample to the next (zero_order_hold) or interpolated linearly (linear)."""
    times: tuple[float, ...]
    values: tuple[float, ...]
    interpolation: str = "zero_order_hold"

    def sample(self, t: np.ndarray) -> np.ndarray:
        times, values = np.asarray(self.times, float), np.asarray(self.values, float)
        if self.interpolation == "linear":
            inside = np.interp(t, times, values)
        else:
            inside = values[np.clip(np.searchsorted(times, t + TIME_SLACK, side="right") - 1, 0, None)]
        return np.where(started(t, times[0]), inside, 0.0)

    def events(self) -> tuple[float, ...]:
        return (self.times[0],)


@dataclass(frozen=True)
class ScriptedDisturbance:
    """One entry: `shape` acting on stacked state (channel 'state') or input (channel 'input') entry `index`."""
    agent: int
    channel: str          # state | input
    index: int            # in the stacked state or input vector
    shape: Shape
    label: str = ""       # e.g. "F_2 of mass_2 (step)", for plots and logs


@dataclass(frozen=True, eq=False)
class PlantDisturbance:
    """What the plant adds at every step: w(k) on x(k+1) (steps × n_x) and d(k) on the applied input (steps × n_u);
    None where nothing is added (a run without disturbances steps exactly as x(k+1) = f(x(k), u(k)))."""
    state: np.ndarray | None = None
    input: np.ndarray | None = None

    def step(self, plant, x: np.ndarray, u: np.ndarray, k: int) -> np.ndarray:
        """x(k+1) of `plant` from x(k) under the controllers' u(k) plus d(k), plus w(k)."""
        applied = u if self.input is None else u + self.input[k]
        return plant.step(x, applied, None if self.state is None else self.state[k])


def scripted_sequences(entries: tuple[ScriptedDisturbance, ...] | list[ScriptedDisturbance], steps: int,
                       sample_time: float, n_x: int, n_u: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(steps × n_x state, steps × n_u input) sums of the entries sampled at t_k = k·Δt; None for a channel kind
    without entries."""
    t = np.arange(steps) * sample_time
    state = np.zeros((steps, n_x)) if any(e.channel == "state" for e in entries) else None
    applied = np.zeros((steps, n_u)) if any(e.channel == "input" for e in entries) else None
    for entry in entries:
        target = state if entry.channel == "state" else applied
        target[:, entry.index] += entry.shape.sample(t)
    return state, applied


def add(first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    """The sum of two optional sequences (None: nothing; one alone is returned as it is, bit for bit)."""
    if first is None or second is None:
        return second if first is None else first
    return first + second
