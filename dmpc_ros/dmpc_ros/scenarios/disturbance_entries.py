"""`simulation.disturbances`: scripted load steps, ramps, pulses and CSV series, validated at load time.

    disturbances:
      - {agent: mass_2, input: F, step: {time: 2.0, value: 0.3}}          # a 0.3 N load from t = 2 s
      - {agent: 1, state: v, pulse: {start: 4.0, duration: 0.5, value: -0.05}}
      - {agent: mass_0, input: F, ramp: {start: 1.0, end: 3.0, final: 0.2}}   # or slope: [unit/s]
      - {agent: mass_3, input: F, csv: {file: gust.csv, interpolation: linear}}   # columns time, value

`agent` is an agent's name or index; the channel is `state` or `input`, by its symbol across agents (`v`) or the
agent's own name (`v_1`). The shapes are a registry (SHAPES: name → parser), their sampling is sim/disturbances.py.
"""
from __future__ import annotations

from collections.abc import Callable

from ..sim.disturbances import INTERPOLATIONS, Pulse, Ramp, ScriptedDisturbance, Series, Shape, Step
from .csv_series import read_series
from .validation import ScenarioError, check_number, choice, number, reject_unknown, symbol

FIELD = "simulation.disturbances"
CHANNELS = ("state", "input")


def parse_step(data: dict, name: str) -> Shape:
    reject_unknown(data, f"{name}.", {"time", "value"})
    return Step(number(data, f"{name}.", "time", minimum=0.0), number(data, f"{name}.", "value"))


def parse_ramp(data: dict, name: str) -> Shape:
    reject_unknown(data, f"{name}.", {"start", "end", "slope", "final"})
    start = number(data, f"{name}.", "start", minimum=0.0)
    end = number(data, f"{name}.", "end", minimum=start, strict_minimum=True)
    if ("slope" in data) == ("final" in data):
        raise ScenarioError(f"{name}: give exactly one of slope [unit/s] or final [unit], got "
                            f"{'both' if 'slope' in data else 'neither'}")
    final = number(data, f"{name}.", "final") if "final" in data else \
        number(data, f"{name}.", "slope") * (end - start)
    return Ramp(start, end, final)


def parse_pulse(data: dict, name: str) -> Shape:
    reject_unknown(data, f"{name}.", {"start", "duration", "value"})
    return Pulse(number(data, f"{name}.", "start", minimum=0.0),
                 number(data, f"{name}.", "duration", minimum=0.0, strict_minimum=True),
                 number(data, f"{name}.", "value"))


def parse_csv(data: dict, name: str) -> Shape:
    reject_unknown(data, f"{name}.", {"file", "interpolation"})
    if "file" not in data:
        raise ScenarioError(f"{name}.file: missing; give the path of a CSV file with columns time, value")
    series = read_series(data["file"], f"{name}.file", ("value",), required=("value",))
    interpolation = choice(data, f"{name}.", "interpolation", INTERPOLATIONS, default="zero_order_hold")
    return Series(tuple(series.times.tolist()), tuple(series.columns["value"].tolist()), interpolation)


SHAPES: dict[str, Callable[[dict, str], Shape]] = {"step": parse_step, "ramp": parse_ramp, "pulse": parse_pulse,
                                                   "csv": parse_csv}


def parse_disturbances(value: object, subsystems: list) -> tuple[ScriptedDisturbance, ...]:
    """The entries of simulation.disturbances (absent: none), resolved to stacked state/input indices."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ScenarioError(f"{FIELD}: {value!r} is not allowed: must be a list of entries "
                            f"{{agent, state | input, {' | '.join(SHAPES)}}}")
    return tuple(parse_entry(entry, f"{FIELD}[{k}]", subsystems) for k, entry in enumerate(value))


def parse_entry(entry: object, name: str, subsystems: list) -> ScriptedDisturbance:
    if not isinstance(entry, dict):
        raise ScenarioError(f"{name}: {entry!r} is not allowed: must be a mapping {{agent, state | input, "
                            f"{' | '.join(SHAPES)}}}")
    reject_unknown(entry, f"{name}.", {"agent", *CHANNELS, *SHAPES})
    agent = parse_agent(entry.get("agent"), f"{name}.agent", subsystems)
    channels = [c for c in CHANNELS if c in entry]
    if len(channels) != 1:
        raise ScenarioError(f"{name}: give exactly one channel, state or input, got "
                            f"{' and '.join(channels) if channels else 'none'}")
    channel = channels[0]
    index, label = parse_channel(entry[channel], f"{name}.{channel}", subsystems, agent, channel)
    shapes = [s for s in SHAPES if s in entry]
    if len(shapes) != 1:
        raise ScenarioError(f"{name}: give exactly one shape of {', '.join(SHAPES)}, got "
                            f"{' and '.join(shapes) if shapes else 'none'}")
    data = entry[shapes[0]]
    if not isinstance(data, dict):
        raise ScenarioError(f"{name}.{shapes[0]}: {data!r} is not allowed: must be a mapping")
    shape = SHAPES[shapes[0]](data, f"{name}.{shapes[0]}")
    return ScriptedDisturbance(agent, channel, index, shape, f"{label} of {subsystems[agent].name} ({shapes[0]})")


def parse_agent(value: object, name: str, subsystems: list) -> int:
    """An agent index 0..M−1 or an agent's (unique) name."""
    names = [sub.name for sub in subsystems]
    allowed = f"an agent name ({', '.join(names[:6])}{', …' if len(names) > 6 else ''}) or index 0..{len(names) - 1}"
    if value is None:
        raise ScenarioError(f"{name}: missing; give {allowed}")
    if isinstance(value, str):
        if names.count(value) == 1:
            return names.index(value)
        reason = "names several agents" if names.count(value) > 1 else "is no agent"
        raise ScenarioError(f"{name}: {value!r} is not allowed: it {reason}; give {allowed}")
    index = check_number(value, name, integer=True)
    if not 0 <= index < len(names):
        raise ScenarioError(f"{name}: {value!r} is not allowed: give {allowed}")
    return index


def parse_channel(value: object, name: str, subsystems: list, agent: int, channel: str) -> tuple[int, str]:
    """(stacked index, the agent's own name of it) of a state or input given by symbol or by the agent's name."""
    sub = subsystems[agent]
    names = list(sub.state_names if channel == "state" else sub.input_names)
    symbols = [symbol(n) for n in names]
    matches = [j for j, (n, s) in enumerate(zip(names, symbols)) if value == n or value == s]
    if len(matches) != 1:
        known = ", ".join(n if n == s else f"{s} ({n})" for n, s in zip(names, symbols))
        raise ScenarioError(f"{name}: {value!r} is not allowed: {'ambiguous' if matches else 'unknown'} {channel} "
                            f"of {sub.name}; its {channel}s: {known}")
    offset = sum(len(s.state_names if channel == "state" else s.input_names) for s in subsystems[:agent])
    return offset + matches[0], names[matches[0]]
