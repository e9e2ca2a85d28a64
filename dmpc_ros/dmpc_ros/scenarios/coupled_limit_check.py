"""The load-time check of state limits that neighbours drive (models/coupled_limits.py): when the chosen scheme does
not keep them at every iterate (Scheme.coupled_limits), the scenario's note names each such state and its driving
neighbour, says how the scheme treats them and which schemes allowed here keep them at every iterate.
"""
from __future__ import annotations

import numpy as np

from ..coordination.scheme import COUPLED_LIMITS, Problem, Scheme, allowed_for, scheme_of
from ..models.coupled_limits import describe, linear_driven_states

SHOWN = 4   # states named in the note (the rest counted)


def limited_states(subsystem) -> set[int]:
    """The states a row of the agent's state set constrains."""
    H = np.asarray(subsystem.state_constraint.H, float).reshape(-1, subsystem.n_x)
    return {int(c) for c in np.flatnonzero(np.any(H != 0, axis=0))}


def driven_limits(problem: Problem) -> list[str]:
    """'agent.state (driven by neighbour)' for every limited state a neighbour drives."""
    system, found = problem.system, []
    agent_names = tuple(sub.name for sub in system.subsystems)
    for i, sub in enumerate(system.subsystems):
        limits = limited_states(sub)
        driven = {r: js for r, js in linear_driven_states(system, i).items() if r in limits}
        names = tuple(sub.state_names) or tuple(f"x{r}" for r in range(sub.n_x))
        found += describe(names, agent_names, i, driven)
    return found


def coupled_limit_note(scheme: Scheme, problem: Problem) -> str | None:
    """The note for `scheme` on `problem` (None: no such limit, or the scheme keeps them at every iterate)."""
    if not scheme.runs_as_agents or scheme.coupled_limits == "every_iterate":
        return None
    states = driven_limits(problem)
    if not states:
        return None
    keepers = [name for name in allowed_for(problem)
               if scheme_of(name).runs_as_agents and scheme_of(name).coupled_limits == "every_iterate"]
    more = f" and {len(states) - SHOWN} more" if len(states) > SHOWN else ""
    advice = (f"schemes here that keep them at every iterate: {', '.join(keepers)}" if keepers else
              "no distributed scheme here keeps them at every iterate on this model (centralized does)")
    return (f"controller.algorithm: {scheme.name}: limits of states the neighbours drive, {', '.join(states[:SHOWN])}"
            f"{more} are {COUPLED_LIMITS[scheme.coupled_limits]}; {advice}")
