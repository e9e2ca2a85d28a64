"""References from CSV for a nonlinear network (`model.reference` of the nonlinear family).

    model:
      type: nonlinear
      reference:
        - {agent: left, csv: left_levels.csv, interpolation: linear}   # columns time, h1, (h3, v1 …)

Each entry names an agent (name or index) and a CSV file (relative to the scenario file) with a `time` column [s]
and any of that agent's state and input names; those entries of x̄(t), ū(t) follow the file (zero-order hold by
default, or linear between the samples; the first row holds before its time, the last after it), the others keep
the network's own reference (its setpoints or reference function).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..sim.disturbances import INTERPOLATIONS, TIME_SLACK
from .csv_series import read_series
from .disturbance_entries import parse_agent
from .validation import ScenarioError, choice, reject_unknown


@dataclass(frozen=True, eq=False)
class CsvReference:
    """(x̄(t), ū(t)) of `base` with some stacked entries replaced by recorded series."""
    base: Callable[[float], tuple[np.ndarray, np.ndarray]]
    columns: tuple[tuple[str, int, np.ndarray, np.ndarray, str], ...]   # (state | input, index, times, values, interp.)

    def __call__(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        x, u = (np.array(v, float) for v in self.base(t))
        for kind, index, times, values, interpolation in self.columns:
            target = x if kind == "state" else u
            target[index] = hold(times, values, t, interpolation)
        return x, u


def hold(times: np.ndarray, values: np.ndarray, t: float, interpolation: str) -> float:
    """The series at t: linear or zero-order hold between samples, the first value before, the last after."""
    if interpolation == "linear":
        return float(np.interp(t, times, values))
    return float(values[max(int(np.searchsorted(times, t + TIME_SLACK, side="right")) - 1, 0)])


def parse_csv_reference(value: object, network) -> Callable[[float], tuple[np.ndarray, np.ndarray]] | None:
    """model.reference (absent: None): entries {agent, csv, interpolation?} over the network's own reference."""
    name = "model.reference"
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be a list of entries {{agent, csv, "
                            f"interpolation}}")
    subsystems = network.subsystems()
    columns = []
    for k, entry in enumerate(value):
        where = f"{name}[{k}]"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{where}: {entry!r} is not allowed: must be a mapping {{agent, csv, interpolation}}")
        reject_unknown(entry, f"{where}.", {"agent", "csv", "interpolation"})
        i = parse_agent(entry.get("agent"), f"{where}.agent", subsystems)
        agent = network.agents[i]
        interpolation = choice(entry, f"{where}.", "interpolation", INTERPOLATIONS, default="zero_order_hold")
        if entry.get("csv") is None:
            raise ScenarioError(f"{where}.csv: missing; give the path of a CSV file with columns time and any of "
                                f"{', '.join(agent.state_names + agent.input_names)}")
        series = read_series(entry["csv"], f"{where}.csv", tuple(agent.state_names) + tuple(agent.input_names))
        if not series.columns:
            raise ScenarioError(f"{where}.csv: {series.path.name}: no column besides time; give any of "
                                f"{', '.join(agent.state_names + agent.input_names)}")
        for column, values in series.columns.items():
            kind = "state" if column in agent.state_names else "input"
            names = agent.state_names if kind == "state" else agent.input_names
            offset = (network.state_slice(i) if kind == "state" else network.input_slice(i)).start
            columns.append((kind, offset + list(names).index(column), series.times, values, interpolation))
    return CsvReference(network.reference_at, tuple(columns))
