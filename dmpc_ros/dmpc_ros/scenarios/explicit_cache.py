"""The explicit schemes' offline part: every agent's mpQP solved into a cache file keyed by a hash of its problem.

`dmpc explicit build <scenario>` writes `<cache>/<digest>.npz` per agent (cache: $DMPC_EXPLICIT_CACHE, else
~/.cache/dmpc_ros/explicit); `Scenario.design()` loads them and refuses, with the command to run, when one is
missing or was built for another problem. Nothing is solved when a scenario loads or a node configures.

Each file carries a SHA-256 checksum over its arrays and the digest of the problem they were built from; a file
whose checksum, problem data, shapes or finiteness do not hold (changed, swapped, NaN) is refused at load with the
command that rebuilds it. The checksum finds corruption and edits, not a forger who recomputes it: the cache is
trusted like the code.
"""
from __future__ import annotations

import hashlib
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

FORMAT = 2                    # bump when the exploration or the file layout changes: old files become stale
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
    """Every agent's block QP in parametric form (ScenarioError when the explored set would be unbounded)."""
    problems = []
    for i in range(design.system.num_agents):
        try:
            problem, layout = parametric_block(design.block(i, "plant", "affected", "daqp"))
        except ValueError as error:   # an unbounded state or input: no explored set
            raise ScenarioError(f"controller.algorithm: no explicit solution can be built here: {error}") from None
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
        arrays = solution_arrays(solution)
        np.savez_compressed(temporary, **arrays, checksum=np.array(checksum(arrays, entry.problem.digest())))
        temporary.replace(entry.path)
        log(f"agent {entry.agent}: θ {entry.problem.num_parameters}, U_i {entry.problem.num_variables}, rows "
            f"{kept.size} of {entry.problem.A.shape[0]} can be active, {len(solution.regions)} regions "
            f"(mpQP {solution.build_time:.2f} s, facets {solution.adjacency_time:.2f} s, "
            f"{time.perf_counter() - started:.1f} s in all) → {entry.path}")
        solutions.append(solution)
    return solutions


def checksum(arrays: dict[str, np.ndarray], problem_digest: str) -> str:
    """SHA-256 over the problem's digest and every array (name, dtype, shape, bytes) but the checksum itself."""
    sha = hashlib.sha256(problem_digest.encode())
    for name in sorted(set(arrays) - {"checksum"}):
        array = np.ascontiguousarray(arrays[name])
        sha.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def refusal(arrays: dict[str, np.ndarray], entry: AgentProblem) -> str | None:
    """Why a cache file's arrays cannot be the law of `entry` (None if they can): checksum, finiteness, the problem
    data it was built from, and the shapes of the regions."""
    stored = arrays.get("checksum")
    if stored is None or stored.shape != () or str(stored) != checksum(arrays, entry.problem.digest()):
        return "its checksum does not match its contents (changed or damaged since it was built)"
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            return f"its array {name} has non-finite values"
    reduced, _ = entry.problem.reduced()
    for name in ("H", "f", "F", "A", "b", "B", "lower", "upper"):
        if name not in arrays or not np.array_equal(arrays[name], getattr(reduced, name)):
            return f"its problem data ({name}) is not this agent's problem"
    ptr, Phi, phi, gains, offsets = (arrays.get(k) for k in ("row_ptr", "Phi", "phi", "gains", "offsets"))
    if any(a is None for a in (ptr, Phi, phi, gains, offsets)) or gains.ndim != 3 or ptr.ndim != 1 or \
            ptr.size != gains.shape[0] + 1 or np.any(np.diff(ptr) < 0) or ptr[0] != 0 or \
            gains.shape[1:] != (reduced.num_variables, reduced.num_parameters) or \
            offsets.shape != gains.shape[:2] or Phi.shape != (ptr[-1], reduced.num_parameters) or \
            phi.shape != (ptr[-1],):
        return "its region arrays do not fit together (rows, gains and offsets of different sizes)"
    return None


def load(design, settings: ExplicitSettings, source: str) -> ExplicitLaws:
    """Every agent's law from the cache; ScenarioError with the command to run when one is missing, stale or fails
    its checks (refusal)."""
    laws = []
    rebuild = f"`dmpc explicit build {source or '<scenario>'}`"
    for entry in agent_problems(design):
        if not entry.path.is_file():
            raise ScenarioError(f"controller.algorithm: no explicit solution for agent {entry.agent} of this problem "
                                f"in {entry.path.parent} (missing, or built for another problem): run "
                                f"{rebuild} with the same overrides")
        try:
            with np.load(entry.path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            reason = refusal(arrays, entry)
            solution = None if reason else solution_of(arrays)
        except (OSError, KeyError, ValueError, IndexError, TypeError, zipfile.BadZipFile) as error:
            raise ScenarioError(f"controller.algorithm: the explicit solution {entry.path} cannot be read ({error}); "
                                f"run {rebuild} again") from None
        if reason:
            raise ScenarioError(f"controller.algorithm: the explicit solution {entry.path} is refused: {reason}; "
                                f"rebuild it: run {rebuild} with the same overrides")
        laws.append(ExplicitLaw(solution, entry.layout))
    return ExplicitLaws(tuple(laws), settings)
