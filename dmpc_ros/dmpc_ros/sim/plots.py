"""PNG plots of a closed-loop result: states and inputs per agent; cost gap and iterations per step; tubes.
Model families add their own plots with the helpers here (families/*.py)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..models.linear import CoupledLinearSystem  # noqa: E402
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
    kinds = ([name.split("_")[0] for name in first.state_names + first.input_names]
             or ["first state", "second state", "input"])
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
