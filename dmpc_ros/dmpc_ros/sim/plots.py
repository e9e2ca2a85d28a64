"""PNG plots of a closed-loop result: states and inputs per agent; cost gap and iterations per step."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..models.linear import CoupledLinearSystem  # noqa: E402
from ..models.formation import Formation, edge_errors  # noqa: E402
from ..models.platoon import Platoon, platoon_signals  # noqa: E402
from ..mpc.reference import ReferenceTrajectory  # noqa: E402
from ..mpc.tubes import TubeFamily  # noqa: E402
from .results import SimulationResult  # noqa: E402


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def label_time_axes(axes, labels: list[str], legend_columns: int) -> None:
    """Stacked time plots: y labels, grids, legends (0 columns: none, too many lines) and the shared time axis."""
    for axis, label in zip(axes, labels):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if legend_columns:
            axis.legend(loc="upper right", fontsize=7, ncol=legend_columns)
    axes[-1].set_xlabel("time [s]")


def plot_result(result: SimulationResult, system: CoupledLinearSystem, directory: Path, title: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "states_inputs.png", directory / "convergence.png"]
    M = system.num_agents
    names = [name for sub in system.subsystems for name in sub.state_names]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for i in range(M):
        xs = system.state_slice(i)
        axes[0].plot(result.t, result.x[:, xs.start], label=names[xs.start] if M <= 8 else None)
        if xs.stop - xs.start > 1:
            axes[1].plot(result.t, result.x[:, xs.start + 1], label=names[xs.start + 1] if M <= 8 else None)
        axes[2].step(result.t[:-1], result.u[:, system.input_slice(i).start], where="post",
                     label=system.subsystems[i].input_names[0] if M <= 8 and system.subsystems[i].input_names else None)
    first = system.subsystems[0]
    units = list(first.state_units) + list(first.input_units) or ["", "", ""]
    kinds = [name.split("_")[0] for name in first.state_names + first.input_names] or ["first state", "second state", "input"]
    labels = [f"{kind} [{unit}]" if unit else kind for kind, unit in zip(kinds, units)]
    label_time_axes(axes, labels, legend_columns=2 if M <= 8 else 0)
    axes[0].set_title(f"{title}: states and inputs ({result.algorithm})")
    save(fig, paths[0])

    fig, axes = plt.subplots(2, 1, figsize=(9, 6))
    reference = result.centralized_cost
    if np.any(np.isfinite(reference)):
        gap = (result.cost_per_iteration - reference[:, None]) / np.abs(reference[:, None])
        for k in range(0, result.steps, max(1, result.steps // 8)):
            trace = gap[k][np.isfinite(gap[k])]
            axes[0].semilogy(np.arange(trace.size), np.maximum(np.abs(trace), 1e-16), marker=".", label=f"step {k}")
        axes[0].set_ylabel("|V(Uᵖ) − V*| / V*")
        axes[0].set_xlabel("negotiation iteration p")
        axes[0].legend(fontsize=7, ncol=3)
    else:
        axes[0].text(0.5, 0.5, "centralized reference not computed", ha="center", transform=axes[0].transAxes)
    axes[0].set_title("plant-wide cost gap to the centralized optimum over iterations")
    axes[0].grid(alpha=0.3)
    axes[1].bar(np.arange(result.steps), result.iterations)
    axes[1].set_xlabel("control step k")
    axes[1].set_ylabel("iterations")
    axes[1].grid(alpha=0.3)
    save(fig, paths[1])
    return paths


def plot_platoon(result: SimulationResult, platoon: Platoon, reference: ReferenceTrajectory, directory: Path,
                 title: str) -> Path:
    """platoon.png: speeds against the leader's profile, spacing errors, gaps against the minimum gap, jerk."""
    path = directory / "platoon.png"
    gaps, speeds, accelerations = platoon_signals(platoon, result.x)
    M, t = platoon.num_agents, result.t
    labelled = M <= 10
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(t, reference.states[: t.size, 0], "k--", lw=1, label="leader profile")
    for i in range(M):
        axes[0].plot(t, speeds[:, i], lw=1, label=f"v_{i}" if labelled else None)
    for i in range(1, M):
        axes[1].plot(t, gaps[:, i - 1] - platoon.desired_gap(speeds[:, i]), lw=1, label=f"δ_{i}" if labelled else None)
        axes[2].plot(t, gaps[:, i - 1], lw=1, label=f"e_{i}" if labelled else None)
    axes[2].axhline(platoon.min_gap, color="r", lw=1, ls=":", label="minimum gap")
    jerk = (result.u - accelerations[:-1]) / np.asarray(platoon.time_constant)
    for i in range(M):
        axes[3].step(t[:-1], jerk[:, i], where="post", lw=1, label=f"vehicle {i}" if labelled else None)
    limit = max(platoon.jerk_limit)
    axes[3].axhline(limit, color="r", lw=1, ls=":")
    axes[3].axhline(-limit, color="r", lw=1, ls=":")
    label_time_axes(axes, ["speed [m/s]", "spacing error δ [m]", "gap [m]", "jerk [m/s³]"], 4 if labelled else 0)
    axes[0].set_title(f"{title}: platoon ({result.algorithm}, {platoon.topology.replace('_', '-')}, "
                      f"h = {platoon.time_headway} s)")
    return save(fig, path)


def plot_formation(result: SimulationResult, formation: Formation, reference: ReferenceTrajectory, directory: Path,
                   title: str) -> Path:
    """formation.png: paths in the plane (with the reference and robot markers at the switch), formation error
    and the smallest distance between any two robots against the minimum distance."""
    path = directory / "formation.png"
    M, T = formation.num_agents, result.x.shape[0]
    positions = result.x.reshape(T, M, 4)[:, :, :2]
    targets = reference.states[:T].reshape(T, M, 4)[:, :, :2]
    fig = plt.figure(figsize=(10, 9))
    plane = fig.add_subplot(2, 1, 1)
    for i in range(M):
        line, = plane.plot(positions[:, i, 0], positions[:, i, 1], lw=1.2, label=f"robot {i}" if M <= 10 else None)
        plane.plot(targets[:, i, 0], targets[:, i, 1], ls=":", lw=0.8, color=line.get_color())
        plane.plot(*positions[0, i], "o", color=line.get_color(), ms=4)
        plane.plot(*positions[-1, i], "s", color=line.get_color(), ms=5)
    switch = min(int(np.ceil(formation.switch_time / result.sample_time)), T - 1)
    plane.plot(positions[switch, :, 0], positions[switch, :, 1], "k+", ms=8, label="at the switch")
    plane.set_aspect("equal")
    plane.set_xlabel("x [m]")
    plane.set_ylabel("y [m]")
    plane.grid(alpha=0.3)
    plane.legend(fontsize=7, ncol=4, loc="best")
    plane.set_title(f"{title}: paths (dotted: reference, o start, □ end) — {result.algorithm}")
    errors = fig.add_subplot(4, 1, 3)
    errors.plot(result.t, edge_errors(formation, result.x, result.sample_time))
    errors.axvline(formation.switch_time, color="k", ls=":", lw=1)
    errors.set_ylabel("formation error [m]")
    errors.grid(alpha=0.3)
    distance = fig.add_subplot(4, 1, 4, sharex=errors)
    closest = [min(np.linalg.norm(positions[k, a] - positions[k, b]) for a in range(M) for b in range(a + 1, M))
               for k in range(T)]
    distance.plot(result.t, closest, label="closest pair")
    distance.axhline(formation.min_distance, color="r", ls=":", lw=1, label="minimum distance")
    distance.set_ylabel("distance [m]")
    distance.set_xlabel("time [s]")
    distance.grid(alpha=0.3)
    distance.legend(fontsize=7)
    return save(fig, path)


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
        H, h = sub.state_constraint.H, sub.state_constraint.h
        for r in range(sub.n_x):
            axis = axes[r][i]
            nominal = result.nominal_x[:, xs.start + r]
            axis.fill_between(t[:-1], nominal - radii[r], nominal + radii[r], color="tab:blue", alpha=0.2, label="tube")
            axis.plot(t[:-1], nominal, color="tab:blue", lw=1, label="nominal x̄")
            axis.plot(t, result.x[:, xs.start + r], color="k", lw=1, label="real x")
            for row, bound in zip(H, h):   # box limits on this state
                if np.count_nonzero(row) == 1 and row[r] != 0:
                    axis.axhline(bound / row[r], color="r", ls=":", lw=1)
            unit = sub.state_units[r] if sub.state_units else ""
            axis.set_ylabel(f"{sub.state_names[r]} [{unit}]" if unit else sub.state_names[r])
            axis.grid(alpha=0.3)
        axes[-1][i].set_xlabel("time [s]")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title}: nominal trajectory, its tube and the real state ({result.algorithm})")
    return save(fig, path)
