"""`model.type: linear`: the user's own coupled linear system, one entry per agent (see models/network.py and
examples/four_tank.yaml). Setpoints may leave states free: the steady state of the whole plant fills them in
and gives the steady inputs; a setpoint no input can hold is refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models.linear import CoupledLinearSystem, MixedConstraint, PolytopicConstraint
from ..models.network import TIME_DOMAINS, CostCoupling, LinearAgent, LinearNetwork, Setpoint
from ..mpc.reference import ReferenceTrajectory
from ..scenarios.csv_series import read_series
from ..scenarios.family import FamilyParts, ModelFamily
from ..scenarios.parameters import MAX_AGENTS
from ..scenarios.validation import ScenarioError, check_number, choice, number, reject_unknown, section, text, \
    weight_matrix

AGENT_FIELDS = {"name", "states", "inputs", "state_units", "input_units", "A", "B", "couplings", "state_limits",
                "state_constraint", "input_limits", "input_constraint", "mixed_constraint", "Q", "R", "setpoint",
                "setpoints"}
STEADY_STATE = 1e-9   # residual of [A − I, B] z relative to the setpoint's size


class LinearFamily(ModelFamily):
    name = "linear"
    model_fields = frozenset({"time", "agents", "graph", "shared_input_constraint", "cost_couplings",
                              "setpoint_interpolation"})

    def parse(self, model: dict, controller: dict, sample_time: float) -> FamilyParts:
        return self.from_model(parse_network(model, sample_time))

    def from_model(self, model: object) -> FamilyParts:
        if not isinstance(model, LinearNetwork):
            raise ScenarioError(f"model: a {type(model).__name__} is not a LinearNetwork")
        Q, R, terms = model.weights()
        return FamilyParts(model, Q, R, terms)

    def initial_state(self, value: object, parts: FamilyParts, sample_time: float) -> np.ndarray:
        """Stacked x(0): one list per agent (in order), a mapping agent name → list, an array of the stacked
        state, or 'setpoint' (the steady state of the first setpoint)."""
        network: LinearNetwork = parts.model
        name = "simulation.initial_state"
        if isinstance(value, str) and value == "setpoint":
            return steady_state(network, network.discrete(sample_time), 0.0)[0]
        if isinstance(value, np.ndarray) and value.ndim == 1:
            if value.size != network.n_x:
                raise ScenarioError(f"{name}: has {value.size} entries, expected {network.n_x} (all agents' states)")
            return np.array([check_number(v, f"{name}[{k}]") for k, v in enumerate(value)])
        if isinstance(value, dict):
            unknown = sorted(set(value) - {a.name for a in network.agents})
            if unknown:
                raise ScenarioError(f"{name}.{unknown[0]}: unknown agent; agents: "
                                    f"{', '.join(a.name for a in network.agents)}")
            value = [value.get(a.name) for a in network.agents]
        if not isinstance(value, (list, tuple)) or len(value) != network.num_agents:
            raise ScenarioError(f"{name}: {value!r} is not allowed: give 'setpoint', one list per agent "
                                f"({network.num_agents}) or a mapping from agent name to its states")
        rows = []
        for agent, entry in zip(network.agents, value):
            where = f"{name}.{agent.name}"
            if entry is None:
                raise ScenarioError(f"{where}: missing; give its {agent.n_x} states ({', '.join(agent.state_names)})")
            entry = list(np.ravel(entry)) if isinstance(entry, np.ndarray) else entry
            if not isinstance(entry, (list, tuple)) or len(entry) != agent.n_x:
                raise ScenarioError(f"{where}: {entry!r} is not allowed: must be [{', '.join(agent.state_names)}]")
            rows.extend(check_number(v, f"{where}[{k}]") for k, v in enumerate(entry))
        return np.asarray(rows, float)

    def reference(self, scenario, system: CoupledLinearSystem) -> ReferenceTrajectory:
        """The agents' setpoints completed to steady states of the plant, piecewise constant (or linear between
        the setpoint times), for the run plus one horizon of preview; one sample when nothing changes."""
        network: LinearNetwork = scenario.model
        times = network.setpoint_times()
        steady = [steady_state(network, system, t) for t in times]
        if len(times) == 1:
            return ReferenceTrajectory.constant(*steady[0])
        t = np.arange(scenario.reference_length) * scenario.sample_time
        states = np.column_stack([self._sample(t, times, [s[0][k] for s in steady], network)
                                  for k in range(system.n_x)])
        inputs = np.column_stack([self._sample(t, times, [s[1][k] for s in steady], network)
                                  for k in range(system.n_u)])
        return ReferenceTrajectory(states, inputs)

    @staticmethod
    def _sample(t: np.ndarray, times: list[float], values: list[float], network: LinearNetwork) -> np.ndarray:
        if network.setpoint_interpolation == "linear":
            return np.interp(t, times, values)
        return np.asarray(values)[np.searchsorted(times, t, side="right") - 1]

    def metrics(self, scenario, x: np.ndarray, u: np.ndarray) -> dict:
        """Setpoint error [state units]: RMS over the run and the largest at the end, over all states."""
        reference = self.reference(scenario, scenario.prediction_model())
        error = x - np.array([reference.at(k)[0] for k in range(x.shape[0])])
        return {"rms_setpoint_error": float(np.sqrt(np.mean(error ** 2))),
                "final_setpoint_error": float(np.max(np.abs(error[-1])))}

    def plots(self, scenario, result, directory: Path) -> list[Path]:
        return [plot_setpoints(result, scenario, self.reference(scenario, scenario.prediction_model()), directory)]


def steady_state(network: LinearNetwork, system: CoupledLinearSystem, time: float) -> tuple[np.ndarray, np.ndarray]:
    """(x̄, ū) with x̄ = A x̄ + B ū, the fixed entries of the setpoints active at `time` as given and the free
    ones (NaN) solved for (least norm where several steady states fit); ScenarioError if none fits."""
    A, B = system.full_matrices()
    n, m = B.shape
    x_set, u_set = network.setpoint_at(time)
    target = np.r_[x_set, u_set]
    fixed = ~np.isnan(target)
    M = np.hstack([A - np.eye(n), B])
    z = np.where(fixed, target, 0.0)
    free = ~fixed
    if np.any(free):
        z[free] = np.linalg.lstsq(M[:, free], -M[:, fixed] @ z[fixed], rcond=None)[0]
    residual = M @ z
    worst = int(np.argmax(np.abs(residual)))
    if abs(residual[worst]) > STEADY_STATE * (1.0 + np.max(np.abs(z))):
        names = [f"{name} of {sub.name}" for sub in system.subsystems for name in sub.state_names]
        raise ScenarioError(
            f"model.agents: the setpoint at t = {time:g} s is not a steady state: no input holds the plant there "
            f"(x̄ − A x̄ − B ū is {residual[worst]:.3g} in {names[worst]}); leave states free (null) so the "
            f"steady state fills them in, or change the fixed values")
    return z[:n], z[n:]


def plot_setpoints(result, scenario, reference: ReferenceTrajectory, directory: Path) -> Path:
    """setpoints.png: per agent (up to 8), every state against its setpoint and every input, with the box limits."""
    from ..sim.plots import plt, save  # matplotlib only when plotting

    system = scenario.plant()
    agents = system.subsystems[:8]
    rows = max(sub.n_x + sub.n_u for sub in agents)
    fig, axes = plt.subplots(rows, len(agents), figsize=(3.6 * len(agents), 2.2 * rows), sharex=True, squeeze=False)
    t = result.t
    targets = np.array([reference.at(k)[0] for k in range(t.size)])
    for i, sub in enumerate(agents):
        xs, us = system.state_slice(i), system.input_slice(i)
        signals = [(result.x[:, xs.start + r], targets[:, xs.start + r], sub.state_names[r],
                    sub.state_units[r] if sub.state_units else "", sub.state_constraint, r) for r in range(sub.n_x)]
        signals += [(result.u[:, us.start + r], None, sub.input_names[r],
                     sub.input_units[r] if sub.input_units else "", sub.input_constraint, r) for r in range(sub.n_u)]
        for row, (values, target, label, unit, constraint, column) in enumerate(signals):
            axis = axes[row][i]
            if target is None:
                axis.step(t[:-1], values, where="post", color="k", lw=1)
            else:
                axis.plot(t, values, color="k", lw=1, label="x")
                axis.step(t, target, where="post", color="tab:blue", ls="--", lw=1, label="setpoint")
            for H, h in zip(constraint.H, constraint.h):
                if np.count_nonzero(H) == 1 and H[column] != 0 and np.isfinite(h):
                    axis.axhline(h / H[column], color="r", ls=":", lw=1)
            axis.set_ylabel(f"{label} [{unit}]" if unit else label)
            axis.grid(alpha=0.3)
        for row in range(len(signals), rows):
            axes[row][i].axis("off")
        axes[0][i].set_title(sub.name)
        axes[len(signals) - 1][i].set_xlabel("time [s]")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{scenario.name}: states against their setpoints, inputs; red: limits ({result.algorithm})")
    return save(fig, directory / "setpoints.png")


# -- the YAML format -----------------------------------------------------------------------------------------
def numbers(value: object, name: str, allow_none: bool = False) -> np.ndarray:
    """A number, a list of numbers or a list of lists as a float array (None → NaN where allowed)."""
    if isinstance(value, list):
        if not (value and all(isinstance(v, list) for v in value)):
            return np.array([np.nan if v is None and allow_none else check_number(v, f"{name}[{k}]")
                             for k, v in enumerate(value)], float)
        rows = [numbers(v, f"{name}[{k}]", allow_none) for k, v in enumerate(value)]
        if len({row.shape for row in rows}) > 1:
            raise ScenarioError(f"{name}: rows of different lengths ({', '.join(str(r.size) for r in rows)}) are not "
                                f"allowed: a matrix needs rows of equal length")
        return np.array(rows, dtype=float)
    if value is None and allow_none:
        return np.array(np.nan)
    return np.array(check_number(value, name), float)


def finite(values: np.ndarray, name: str) -> np.ndarray:
    """`values` unless an entry is ±inf (NaN stands for null: a free entry)."""
    for k in np.flatnonzero(np.isinf(values)):
        raise ScenarioError(f"{name}[{k}]: {values[k]} is not allowed: must be a finite number (null: free)")
    return values


def weight(value: object, name: str, size: int) -> np.ndarray:
    """A scalar (times identity; absent: identity), or what validation.weight_matrix takes (a diagonal or a
    full PSD matrix)."""
    if value is None:
        return np.eye(size)
    array = numbers(value, name)   # every entry a number, no ragged rows
    return float(array) * np.eye(size) if array.ndim == 0 else weight_matrix(array.tolist(), name, size)


def limits(value: object, name: str, size: int) -> PolytopicConstraint:
    """{lower: [...], upper: [...]} (null or .inf: unbounded) as box rows."""
    if value is None:
        return PolytopicConstraint(np.zeros((0, size)), np.zeros(0))
    if not isinstance(value, dict):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be a mapping with lower and/or upper")
    reject_unknown(value, f"{name}.", {"lower", "upper"})
    bounds = {}
    for key, default in (("lower", -np.inf), ("upper", np.inf)):
        entry = value.get(key)
        array = np.full(size, default) if entry is None else numbers(entry, f"{name}.{key}", allow_none=True)
        array = np.full(size, float(array)) if array.ndim == 0 else array
        if array.shape != (size,):
            raise ScenarioError(f"{name}.{key}: has {array.size} entries, expected {size}")
        bounds[key] = np.where(np.isnan(array), default, array)
    for k in np.flatnonzero(bounds["lower"] > bounds["upper"]):
        raise ScenarioError(f"{name}: lower[{k}] = {bounds['lower'][k]} is above upper[{k}] = {bounds['upper'][k]}: "
                            f"the set is empty")
    for k in np.flatnonzero((bounds["lower"] == np.inf) | (bounds["upper"] == -np.inf)):   # no value beyond ±inf
        raise ScenarioError(f"{name}: lower[{k}] = {bounds['lower'][k]} and upper[{k}] = {bounds['upper'][k]} leave "
                            f"no value: the set is empty (use -.inf for no lower bound, .inf for no upper bound)")
    return PolytopicConstraint.box(bounds["lower"], bounds["upper"])


def polytope(value: object, name: str, size: int) -> PolytopicConstraint | None:
    """{H: rows × size, h: rows}."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be a mapping with H and h")
    reject_unknown(value, f"{name}.", {"H", "h"})
    H, h = numbers(value.get("H"), f"{name}.H"), numbers(value.get("h"), f"{name}.h")
    H = H.reshape(1, -1) if H.ndim == 1 else H
    if H.ndim != 2 or H.shape[1] != size or h.ndim != 1 or h.size != H.shape[0]:
        raise ScenarioError(f"{name}: H is {'×'.join(map(str, H.shape))} and h has {h.size} entries, expected "
                            f"rows × {size} and one bound per row")
    return PolytopicConstraint(H, h)


def combined(*parts: PolytopicConstraint | None) -> PolytopicConstraint:
    present = [p for p in parts if p is not None]
    return PolytopicConstraint(np.vstack([p.H for p in present]), np.concatenate([p.h for p in present]))


def names(value: object, name: str, size: int | None, default: str, unique: bool = True) -> tuple[str, ...]:
    """`size` names (state, input or agent names: each once when `unique`; units may repeat)."""
    if value is None:
        return tuple(f"{default}{k + 1}" for k in range(size or 0))
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be a list of names")
    if size is not None and len(value) != size:
        raise ScenarioError(f"{name}: has {len(value)} entries, expected {size}")
    for entry in value:
        text(entry, name)
    twice = next((v for k, v in enumerate(value) if v in value[:k]), None) if unique else None
    if twice is not None:
        raise ScenarioError(f"{name}: {twice!r} is given twice; each name may appear once")
    return tuple(value)


def parse_agent(entry: object, where: str) -> LinearAgent:
    if not isinstance(entry, dict):
        raise ScenarioError(f"{where}: {entry!r} is not allowed: must be a mapping (name, A, B, ...)")
    reject_unknown(entry, f"{where}.", AGENT_FIELDS)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}.name: {name!r} is not allowed: every agent needs a name")
    where = f"{where} ({name})"
    A = numbers(entry.get("A"), f"{where}.A") if entry.get("A") is not None else None
    if A is None or A.ndim != 2 or A.shape[0] != A.shape[1]:
        shape = "missing" if A is None else "×".join(map(str, A.shape))
        raise ScenarioError(f"{where}.A: {shape} is not allowed: must be a square n_x × n_x matrix")
    n = A.shape[0]
    if entry.get("B") is None:
        raise ScenarioError(f"{where}.B: missing; give the n_x × n_u input matrix")
    B = numbers(entry["B"], f"{where}.B")
    B = B.reshape(-1, 1) if B.ndim == 1 else B
    if B.ndim != 2 or B.shape[0] != n:
        raise ScenarioError(f"{where}.B: is {'×'.join(map(str, B.shape))}, expected {n} rows (n_x × n_u)")
    m = B.shape[1]
    couplings = section(entry, f"{where}.", "couplings")
    parsed = {}
    for other, blocks in couplings.items():
        if not isinstance(blocks, dict):
            raise ScenarioError(f"{where}.couplings.{other}: {blocks!r} is not allowed: "
                                "must be a mapping with A and/or B")
        reject_unknown(blocks, f"{where}.couplings.{other}.", {"A", "B"})
        parsed[other] = {key: numbers(blocks[key], f"{where}.couplings.{other}.{key}") for key in ("A", "B")
                         if blocks.get(key) is not None}
    mixed = section(entry, f"{where}.", "mixed_constraint")
    if mixed:
        reject_unknown(mixed, f"{where}.mixed_constraint.", {"Hx", "Hu", "h"})
        mixed = MixedConstraint(*(np.atleast_2d(numbers(mixed.get(k), f"{where}.mixed_constraint.{k}"))
                                  for k in ("Hx", "Hu")),
                                numbers(mixed.get("h"), f"{where}.mixed_constraint.h").ravel())
    state_names = names(entry.get("states"), f"{where}.states", n, "x")
    input_names = names(entry.get("inputs"), f"{where}.inputs", m, "u")
    return LinearAgent(
        name=name, A=A, B=B, couplings=parsed,
        Q=weight(entry.get("Q"), f"{where}.Q", n), R=weight(entry.get("R"), f"{where}.R", m),
        state_constraint=combined(limits(entry.get("state_limits"), f"{where}.state_limits", n),
                                  polytope(entry.get("state_constraint"), f"{where}.state_constraint", n)),
        input_constraint=combined(limits(entry.get("input_limits"), f"{where}.input_limits", m),
                                  polytope(entry.get("input_constraint"), f"{where}.input_constraint", m)),
        mixed_constraint=mixed or None,
        state_names=state_names,
        input_names=input_names,
        state_units=names(entry.get("state_units"), f"{where}.state_units", n, "", False) if "state_units" in entry
        else (),
        input_units=names(entry.get("input_units"), f"{where}.input_units", m, "", False) if "input_units" in entry
        else (),
        setpoints=parse_setpoints(entry, where, n, m, tuple(state_names), tuple(input_names)),
    )


def parse_setpoints(entry: dict, where: str, n: int, m: int, state_names: tuple[str, ...] = (),
                    input_names: tuple[str, ...] = ()) -> tuple[Setpoint, ...]:
    """`setpoint: [x…]` (constant; null: free), `setpoints: [{time, x, u?}, …]` from time 0 on, or
    `setpoints: {csv: file}` (a row per setpoint: see csv_setpoints)."""
    if "setpoint" in entry and "setpoints" in entry:
        raise ScenarioError(f"{where}.setpoints: give either setpoint (constant) or setpoints (changes), not both")
    if entry.get("setpoint") is not None:
        value = finite(numbers(entry["setpoint"], f"{where}.setpoint", allow_none=True).ravel(), f"{where}.setpoint")
        if value.size != n:
            raise ScenarioError(f"{where}.setpoint: has {value.size} entries, expected {n} (null for a free state)")
        return (Setpoint(0.0, value),)
    value = entry.get("setpoints")
    if value is None:
        return ()
    if isinstance(value, dict):
        reject_unknown(value, f"{where}.setpoints.", {"csv"})
        return csv_setpoints(value.get("csv"), f"{where}.setpoints.csv", state_names, input_names)
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{where}.setpoints: {value!r} is not allowed: a list of {{time, x, u}} from time 0")
    result = []
    for k, item in enumerate(value):
        name = f"{where}.setpoints[{k}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{name}: {item!r} is not allowed: must be a mapping with time, x and optionally u")
        reject_unknown(item, f"{name}.", {"time", "x", "u"})
        time = number(item, f"{name}.", "time", minimum=0.0)
        if k == 0 and time != 0.0:
            raise ScenarioError(f"{name}.time: {time} is not allowed: the first setpoint holds from time 0")
        if k and time <= result[-1].time:
            raise ScenarioError(f"{name}.time: {time} is not allowed: times must increase strictly")
        x = finite(numbers(item.get("x"), f"{name}.x", allow_none=True).ravel(), f"{name}.x")
        if x.size != n:
            raise ScenarioError(f"{name}.x: has {x.size} entries, expected {n} (null for a free state)")
        u = None
        if item.get("u") is not None:
            u = finite(numbers(item["u"], f"{name}.u", allow_none=True).ravel(), f"{name}.u")
            if u.size != m:
                raise ScenarioError(f"{name}.u: has {u.size} entries, expected {m}")
        result.append(Setpoint(time, x, u))
    return tuple(result)


def csv_setpoints(value: object, name: str, state_names: tuple[str, ...],
                  input_names: tuple[str, ...]) -> tuple[Setpoint, ...]:
    """Setpoints from a CSV file (relative to the scenario file): columns time [s] (from 0, increasing) and any of
    the agent's state and input names; an absent column or a blank cell leaves that entry free (the plant's steady
    state fills it in). Between rows: model.setpoint_interpolation (step or linear), as for listed setpoints."""
    if value is None:
        raise ScenarioError(f"{name}: missing; give the path of a CSV file with columns time, "
                            f"{', '.join(state_names + input_names)}")
    series = read_series(value, name, state_names + input_names, blanks=True)
    if series.times[0] != 0.0:
        raise ScenarioError(f"{name}: {series.path.name}: the first time is {series.times[0]:g}, not allowed: the "
                            f"first setpoint holds from time 0")
    free = np.full(series.times.size, np.nan)
    x = np.column_stack([series.columns.get(c, free) for c in state_names])
    given = [c for c in input_names if c in series.columns]
    u = np.column_stack([series.columns.get(c, free) for c in input_names]) if given else None
    return tuple(Setpoint(float(t), x[k], None if u is None else u[k]) for k, t in enumerate(series.times))


def parse_network(model: dict, sample_time: float) -> LinearNetwork:
    entries = model.get("agents")
    if entries is None:
        raise ScenarioError("model.agents: missing; give one entry per agent (name, A, B, ...)")
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(f"model.agents: {entries!r} is not allowed: a list with one entry per agent "
                            f"(name, A, B, ...)")
    if len(entries) > MAX_AGENTS:
        raise ScenarioError(f"model.agents: {len(entries)} agents is not allowed: at most {MAX_AGENTS}")
    agents = [parse_agent(entry, f"model.agents[{i}]") for i, entry in enumerate(entries)]
    graph = model.get("graph")
    if graph is not None and not (isinstance(graph, list) and all(isinstance(e, list) and len(e) == 2 and
                                                                  all(isinstance(v, str) for v in e) for e in graph)):
        raise ScenarioError(f"model.graph: {graph!r} is not allowed: a list of [agent, agent] name pairs")
    terms = []
    for k, item in enumerate(model.get("cost_couplings") or []):
        if not isinstance(item, dict):
            raise ScenarioError(f"model.cost_couplings[{k}]: {item!r} is not allowed: a mapping with agents and W")
        reject_unknown(item, f"model.cost_couplings[{k}].", {"agents", "W"})
        pair = item.get("agents")
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
            raise ScenarioError(f"model.cost_couplings[{k}].agents: {pair!r} is not allowed: [owner, other] names")
        terms.append(CostCoupling(pair[0], pair[1], numbers(item.get("W"), f"model.cost_couplings[{k}].W")))
    shared = polytope(model.get("shared_input_constraint"), "model.shared_input_constraint",
                      sum(a.B.shape[1] for a in agents))
    try:
        return LinearNetwork(tuple(agents), sample_time, choice(model, "model.", "time", TIME_DOMAINS),
                             shared, tuple(terms), None if graph is None else tuple(map(tuple, graph)),
                             choice(model, "model.", "setpoint_interpolation", ("step", "linear"), default="step"),
                             number(model, "model.", "coupling_tolerance", default=1e-6, minimum=0.0, maximum=1.0))
    except ValueError as error:
        raise ScenarioError(f"model.agents: {error}") from None


FAMILY = LinearFamily()
