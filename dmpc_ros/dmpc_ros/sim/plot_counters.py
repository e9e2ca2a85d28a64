"""counter_traces.png: per-step traces, one line per agent, of the scheme counters that are levels rather than
counts (a count's total is in summary.json; a level's sum means nothing): the dissimilar-horizon scheme's control
horizon N_c,i and the decision variables of its problem (8). `dmpc sim`, `dmpc run` and `dmpc plot` (an output
folder's trajectory.npz or a bag's AgentStatus counters) draw it whenever the result has one of them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .plots import plt, save
from .results import SimulationResult

# counter name → its axis label; a counter left unreported at a step (0: no solve then) is drawn as a gap
TRACES = {
    "control_horizon": "control horizon N_c,i [steps]",
    "decision_variables": "decision variables of (8)",
}
FILE = "counter_traces.png"


def traced(result: SimulationResult) -> list[str]:
    """The counters of TRACES the result reported (some value nonzero), in TRACES' order."""
    return [name for name in TRACES if name in result.counters and np.any(result.counters[name])]


def plot_counter_traces(result: SimulationResult, directory: Path, title: str,
                        agent_names: list[str] | None = None) -> list[Path]:
    """counter_traces.png (module docstring): one panel per traced counter, one step line per agent over the
    control steps; [] when the result has none."""
    names = traced(result)
    if not names:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.6 * len(names) + 0.6), sharex=True, squeeze=False)
    for axis, name in zip(axes[:, 0], names):
        values = np.asarray(result.counters[name], float)
        for agent in range(values.shape[1]):
            trace = np.where(values[:, agent] > 0, values[:, agent], np.nan)
            label = agent_names[agent] if agent_names and agent < len(agent_names) else f"agent {agent}"
            axis.step(np.arange(values.shape[0]), trace, where="post", label=label,
                      lw=max(0.8, 2.6 - 0.5 * agent))   # thinner over thicker: equal horizons stay visible
        axis.set_ylabel(TRACES[name])
        axis.grid(alpha=0.3)
        if values.shape[1] <= 8:
            axis.legend(loc="upper right", fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel("control step k")
    axes[0, 0].set_title(f"{title}: per-agent counters at each step's last solve ({result.algorithm})")
    return [save(fig, directory / FILE)]
