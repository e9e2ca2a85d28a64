"""The explicit schemes' offline part: every agent's mpQP solved into a cache file keyed by a hash of its problem.

`dmpc explicit build <scenario>` writes `<cache>/<digest>.npz` per agent (cache: $DMPC_EXPLICIT_CACHE, else
~/.cache/dmpc_ros/explicit); `Scenario.design()` loads them and refuses, with the command to run, when one is
missing or was built for another problem. Nothing is solved when a scenario loads or a node configures.
"""
from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..mpc.explicit_law import ExplicitLaw, ExplicitLaws, ExplicitSettings, ParameterLayout, parametric_block
from ..mpc.multiparametric import (ExplicitSolution, ParametricQP, active_set_bound, adjacency, explore,
                                   solution_arrays, solution_of)
from ..progress import report
from .validation import ScenarioError

FORMAT = 1                    # bump when the exploration or the file layout changes: old files become stale
MAX_ACTIVE_SETS = 2_000_000   # region-count bound above which a design is refused as intractable
SECONDS_PER_REGION = 0.05     # measured exploration cost per region on this project's machine (one LP per row)


def cache_directory() -> Path:
    return Path(os.environ.get("DMPC_EXPLICIT_CACHE") or Path.home() / ".cache" / "dmpc_ros" / "explicit")


@dataclass(frozen=True)
class AgentProblem:
    """One agent's mpQP, the layout of its parameter and where its solution is cached."""

    agent: int
    problem: ParametricQP
    layout: ParameterLayout

    @property
    def path(self) -> Path:
        return cache_directory() / f"agent{self.agent}-{self.problem.digest()}-v{FORMAT}.npz"


def agent_problems(design) -> list[AgentProblem]:
    """Every agent's block QP in parametric form (ValueError when the explored set would be unbounded)."""
    problems = []
    for i in range(design.system.num_agents):
        problem, layout = parametric_block(design.block(i, "plant", "affected", "daqp"))
        problems.append(AgentProblem(i, problem, layout))
    return problems


def tractability(problem: ParametricQP) -> str | None:
    """Why exploring this mpQP is out of reach (None if it is not): parameter size and a region-count estimate."""
    reduced, _ = problem.reduced()
    bound = active_set_bound(reduced.A.shape[0], reduced.num_variables)
    if bound <= MAX_ACTIVE_SETS:
        return None
    return (f"its parameter has {problem.num_parameters} entries and its {reduced.num_variables} variables meet "
            f"{reduced.A.shape[0]} constraint rows that can be active: up to {bound:.3g} critical regions (about "
            f"{bound * SECONDS_PER_REGION / 3600:.3g} h to explore); shorten the horizon or split the plant")


def build(design, log=print) -> list[ExplicitSolution]:
    """Solve every agent's mpQP with its adjacency and write the cache files; returns the solutions."""
    solutions = []
    for entry in agent_problems(design):
        reason = tractability(entry.problem)
        if reason:
            raise ScenarioError(f"controller.algorithm: agent {entry.agent}'s explicit solution is intractable: "
                                f"{reason}")
        reduced, kept = entry.problem.reduced()
        started = time.perf_counter()
        solution = explore(reduced, progress=lambda done, total, i=entry.agent:
                           report(f"agent {i}: exploring critical regions", done, total))
        adjacency(solution)
        entry.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = entry.path.with_suffix(".tmp.npz")
        np.savez_compressed(temporary, **solution_arrays(solution))
        temporary.replace(entry.path)
        log(f"agent {entry.agent}: θ {entry.problem.num_parameters}, U_i {entry.problem.num_variables}, rows "
            f"{kept.size} of {entry.problem.A.shape[0]} can be active, {len(solution.regions)} regions "
            f"(mpQP {solution.build_time:.2f} s, facets {solution.adjacency_time:.2f} s, "
            f"{time.perf_counter() - started:.1f} s in all) → {entry.path}")
        solutions.append(solution)
    return solutions


def load(design, settings: ExplicitSettings, source: str) -> ExplicitLaws:
    """Every agent's law from the cache; ScenarioError with the command to run when one is missing or stale."""
    laws = []
    for entry in agent_problems(design):
        if not entry.path.is_file():
            raise ScenarioError(f"controller.algorithm: no explicit solution for agent {entry.agent} of this problem "
                                f"in {entry.path.parent} (missing, or built for another problem): run "
                                f"`dmpc explicit build {source or '<scenario>'}` with the same overrides")
        try:
            with np.load(entry.path) as data:
                solution = solution_of({key: data[key] for key in data.files})
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            raise ScenarioError(f"controller.algorithm: the explicit solution {entry.path} cannot be read ({error}); "
                                f"run `dmpc explicit build {source or '<scenario>'}` again") from None
        laws.append(ExplicitLaw(solution, entry.layout))
    return ExplicitLaws(tuple(laws), settings)
