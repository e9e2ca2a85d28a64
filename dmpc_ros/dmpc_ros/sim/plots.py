"""PNG plots of a closed-loop result: states and inputs per agent; cost gap and iterations per step; tubes.
Model families add their own plots with the helpers here (families/*.py)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from ..models.linear import CoupledLinearSystem  # noqa: E402
from ..mpc.tubes import TubeFamily  # noqa: E402
from ..printable import readable  # noqa: E402
from .results import SimulationResult  # noqa: E402


def save(fig, path: Path) -> Path:
    """Write `fig` as a PNG; every text of it that came from the scenario (titles, labels, legends) is made
    drawable first (printable.readable: a lone surrogate in a name crashed matplotlib) and never parsed as math."""
    clean_texts(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def clean_texts(fig) -> None:
    """Titles, axis labels, legends and free texts of `fig` through printable.readable, shown literally (a `$` in
    a name is no mathtext); tick labels, which matplotlib writes itself (some as mathtext), are left alone."""
    ticks = set()
    for axes in fig.axes:
        for axis in (axes.xaxis, axes.yaxis):
            ticks.update(id(t) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                         for t in (tick.label1, tick.label2))
            ticks.add(id(axis.offsetText))
    for text in fig.findobj(Text):
        if id(text) not in ticks:
            text.set_text(readable(text.get_text()))
            text.set_parse_math(False)


def label_time_axes(axes, labels: list[str], legend_columns: int) -> None:
    """Stacked time plots: y labels, grids, legends (0 columns: none, too many lines) and the shared time axis."""
    for axis, label in zip(axes, labels):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if legend_columns:
            axis.legend(loc="upper right", fontsize=7, ncol=legend_columns)
    axes[-1].set_xlabel("time [s]")


PANELS = [(0, "state"), (1, "state"), (0, "input")]   # states_inputs.png: (index within the agent, kind) per panel


def box_limits(constraint, index: int) -> list[float]:
    """The bounds a polytope {H v ≤ h} puts on v[index] alone (its rows with one nonzero entry, there)."""
    H, h = constraint.H, constraint.h
    return [float(b / row[index]) for row, b in zip(H, h) if np.count_nonzero(row) == 1 and row[index] != 0]


def agent_labels(names: list[str]) -> list[str]:
    """Legend entries: the names, or 'agent i: name' where agents share names (a model built in Python)."""
    return names if len(set(names)) == len(names) else [f"agent {i}: {name}" for i, name in enumerate(names)]


ORDINALS = ("first", "second", "third")


def channel(sub, r: int, kind: str) -> tuple[str, str]:
    """(name, unit) of a subsystem's r-th state or input ("" when it names no unit)."""
    names, units = (sub.state_names, sub.state_units) if kind == "state" else (sub.input_names, sub.input_units)
    return (names[r] if r < len(names) else f"{kind} {r}"), (units[r] if r < len(units) else "")


def with_unit(name: str, unit: str) -> str:
    return f"{name} [{unit}]" if unit else name


def panel_labels(subsystems, rows: list[tuple[int, str]]) -> list[str]:
    """Axis labels of the panels' (index, "state" | "input") rows over every agent that has that entry: the name
    they share (up to an "_i" suffix: "p" for p_0, p_1) or "first state of each agent", with the unit when they share
    one (each line's legend names its own channel and unit: see plot_result). One subsystem stands for all."""
    subsystems = list(subsystems) if isinstance(subsystems, (list, tuple)) else [subsystems]
    labels = []
    for r, kind in rows:
        found = [channel(sub, r, kind) for sub in subsystems if r < (sub.n_x if kind == "state" else sub.n_u)]
        bases, units = {name.split("_")[0] for name, _ in found}, {unit for _, unit in found}
        ordinal = ORDINALS[r] if r < len(ORDINALS) else f"#{r + 1}"
        name = bases.pop() if len(bases) == 1 else f"{ordinal} {kind} of each agent"
        labels.append(with_unit(name, units.pop() if len(units) == 1 else ""))
    return labels


def reference_samples(reference, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """x̄(k) for k = 0..steps and ū(k) for k < steps of a ReferenceTrajectory (its setpoints or path)."""
    samples = [reference.at(k) for k in range(steps + 1)]
    return np.array([x for x, _ in samples]), np.array([u for _, u in samples[:-1]])


def plot_result(result: SimulationResult, system: CoupledLinearSystem, directory: Path, title: str,
                reference_stage_cost: np.ndarray | None = None, reference=None) -> list[Path]:
    """states_inputs.png (first two states and first input per agent, with their box limits dashed and, given the
    scenario's `reference` (a ReferenceTrajectory), their setpoints dotted; one legend entry per agent's channel,
    "name [unit]") and convergence.png (the signed cost gap to the centralized optimum per iteration when the run
    recorded it, else the closed loop's stage cost against the centralized reference run's; iterations per step)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "states_inputs.png", directory / "convergence.png"]
    M = system.num_agents
    targets = None if reference is None else reference_samples(reference, result.steps)
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    rows = PANELS
    for panel, (r, kind) in zip(axes, rows):
        names = []
        for i, sub in enumerate(system.subsystems):
            size, offset = (sub.n_x, system.state_slice(i).start) if kind == "state" else \
                (sub.n_u, system.input_slice(i).start)
            if r >= size:
                continue
            values = result.x[:, offset + r] if kind == "state" else result.u[:, offset + r]
            line, = (panel.plot(result.t, values) if kind == "state"
                     else panel.step(result.t[:-1], values, where="post"))
            names.append((line, channel(sub, r, kind)))
            if targets is not None:
                target = targets[0][:, offset + r] if kind == "state" else targets[1][:, offset + r]
                panel.step(result.t[:target.size], target, where="post", color=line.get_color(), ls=":", lw=1)
            constraint = sub.state_constraint if kind == "state" else sub.input_constraint
            for bound in box_limits(constraint, r):
                panel.axhline(bound, color=line.get_color(), ls="--", lw=0.8, alpha=0.7)
        if names and M <= 8:
            labels = agent_labels([name for _, (name, _) in names])
            for (line, (_, unit)), label in zip(names, labels):
                line.set_label(with_unit(label, unit))
    label_time_axes(axes, panel_labels(system.subsystems, rows), legend_columns=2 if M <= 8 else 0)
    shown = "dashed: limits" + ("; dotted: setpoints" if targets is not None else "")
    axes[0].set_title(f"{title}: states and inputs ({result.algorithm}); {shown}")
    save(fig, paths[0])

    fig, axes = plt.subplots(2, 1, figsize=(9, 6))
    reference = result.centralized_cost
    if np.any(np.isfinite(reference)) and np.any(np.isfinite(result.cost_per_iteration)):
        gap = (result.cost_per_iteration - reference[:, None]) / np.abs(reference[:, None])
        for k in range(0, result.steps, max(1, result.steps // 8)):
            trace = gap[k][np.isfinite(gap[k])]
            axes[0].plot(np.arange(trace.size), trace, marker=".", label=f"step {k}")
        axes[0].set_yscale("symlog", linthresh=1e-6)
        axes[0].axhline(0.0, color="k", lw=0.8)
        axes[0].set_ylabel("(V(Uᵖ) − V*) / |V*|")
        axes[0].set_xlabel("negotiation iteration p")
        axes[0].legend(fontsize=7, ncol=3)
        axes[0].set_title("plant-wide cost gap to the centralized optimum over iterations (signed)")
    elif reference_stage_cost is not None:
        reference_stage_cost = reference_stage_cost[:result.steps]   # a run stopped early (strict mode, a failure)
        axes[0].plot(result.t[:-1], result.stage_cost, label=f"{result.algorithm} (this run)")
        axes[0].plot(result.t[:reference_stage_cost.size], reference_stage_cost, "--",
                     label="centralized MPC (reference run)")
        common = reference_stage_cost.size
        gap = (np.cumsum(result.stage_cost[:common]) - np.cumsum(reference_stage_cost)) / max(
            abs(float(np.sum(reference_stage_cost))), 1e-300)
        twin = axes[0].twinx()
        twin.plot(result.t[:common], 100 * gap, color="tab:red", lw=0.8)
        twin.set_ylabel("cumulative gap [%] (signed)", color="tab:red")
        axes[0].set_ylabel("stage cost ℓ(x, u)")
        axes[0].set_xlabel("time [s]")
        axes[0].legend(fontsize=7)
        axes[0].set_title("closed-loop stage cost against the centralized reference run")
    else:
        axes[0].text(0.5, 0.5, "centralized reference not computed (--no-reference)", ha="center",
                     transform=axes[0].transAxes)
    axes[0].grid(alpha=0.3)
    axes[1].bar(np.arange(result.steps), result.iterations)
    axes[1].set_xlabel("control step k")
    axes[1].set_ylabel("iterations")
    axes[1].grid(alpha=0.3)
    save(fig, paths[1])
    return paths


def plot_tubes(result: SimulationResult, system: CoupledLinearSystem, tubes: TubeFamily, directory: Path,
               title: str) -> Path:
    """tube.png: per agent and state, the nominal trajectory x̄ with its tube x̄ ± (interval hull of Z_i), the
    real state, and the state limits."""
    path = directory / "tube.png"
    M = system.num_agents
    n = max(sub.n_x for sub in system.subsystems)
    fig, axes = plt.subplots(n, M, figsize=(3.2 * M, 2.6 * n), sharex=True, squeeze=False)
    t = result.t
    for i, sub in enumerate(system.subsystems):
        xs = system.state_slice(i)
        radii = tubes.tubes[i].radii()
        for r in range(sub.n_x):
            axis = axes[r][i]
            nominal = result.nominal_x[:, xs.start + r]
            axis.fill_between(t[:-1], nominal - radii[r], nominal + radii[r], color="tab:blue", alpha=0.2, label="tube")
            axis.plot(t[:-1], nominal, color="tab:blue", lw=1, label="nominal x̄")
            axis.plot(t, result.x[:, xs.start + r], color="k", lw=1, label="real x")
            for bound in box_limits(sub.state_constraint, r):
                axis.axhline(bound, color="r", ls=":", lw=1)
            unit = sub.state_units[r] if sub.state_units else ""
            axis.set_ylabel(f"{sub.state_names[r]} [{unit}]" if unit else sub.state_names[r])
            axis.grid(alpha=0.3)
        axes[-1][i].set_xlabel("time [s]")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title}: nominal trajectory, its tube and the real state ({result.algorithm})")
    return save(fig, path)


def plot_disturbances(result: SimulationResult, scenario, directory: Path) -> Path | None:
    """disturbances.png (when the scenario scripts any: simulation.disturbances): per channel hit, the summed
    scripted disturbance d(t) as the plant applied it (left) and the agent's states, their reference dashed, with
    the entries' event times dotted (right)."""
    entries = scenario.scripted_disturbances
    if not entries:
        return None
    system = scenario.plant()
    state, applied = scenario.scripted()
    channels = sorted({(e.channel, e.index, e.agent) for e in entries})
    steps = result.steps
    targets = np.array([scenario.reference_trajectory(scenario.prediction_model()).at(k)[0] for k in range(steps + 1)])
    fig, axes = plt.subplots(len(channels), 2, figsize=(10, 2.4 * len(channels) + 0.6), sharex=True, squeeze=False)
    for row, (channel, index, agent) in enumerate(channels):
        sub = system.subsystems[agent]
        offset = (system.state_slice(agent) if channel == "state" else system.input_slice(agent)).start
        names, units = (sub.state_names, sub.state_units) if channel == "state" else (sub.input_names, sub.input_units)
        unit = units[index - offset] if units else ""
        values = (state if channel == "state" else applied)[:steps, index]
        left, right = axes[row]
        left.step(result.t[:-1], values, where="post", color="tab:red")
        left.set_ylabel(f"d on {names[index - offset]}" + (f" [{unit}]" if unit else ""))
        xs = system.state_slice(agent)
        for r in range(sub.n_x):
            line, = right.plot(result.t, result.x[:, xs.start + r], lw=1, label=sub.state_names[r])
            right.plot(result.t, targets[:, xs.start + r], ls="--", lw=0.8, color=line.get_color())
        right.set_ylabel(f"{sub.name} states")
        right.legend(loc="upper right", fontsize=7)
        for entry in entries:
            if (entry.channel, entry.index) == (channel, index):
                for time in entry.shape.events():
                    for axis in (left, right):
                        axis.axvline(time, color="grey", ls=":", lw=0.8)
        for axis in (left, right):
            axis.grid(alpha=0.3)
    for axis in axes[-1]:
        axis.set_xlabel("time [s]")
    fig.suptitle(f"{scenario.name}: scripted disturbances (left) and the states they hit, reference dashed "
                 f"({result.algorithm})")
    return save(fig, directory / "disturbances.png")
