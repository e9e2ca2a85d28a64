"""Plug-and-play, sans IO: a member joins or leaves a running team at a step boundary.

The rules both drivers share (the in-process run, scenarios/team_run.py; the ROS team topic, when it exists):
- a change is scheduled for step k and announced before step k's measurements: an `Announcement` carries the
  members in agent order (persistent ids: a member keeps its id whatever its agent index), the coupling graph
  and the predecessor links of the re-formed team;
- the re-formed team starts step k from a *candidate*: the members' final plans of step k − 1, shifted one step,
  the departed member's columns dropped, with the terminal controller u = ū + K (x̂ − x̄) at the last step of
  every member and at every step of a joiner, which has no plan yet, each member's part projected onto the inputs
  admissible at its predicted state (U_i and its mixed rows, e.g. a jerk limit) (`candidate_inputs`);
- the change is applied only if that candidate satisfies every constraint of the re-formed problem over the
  horizon (`first_violation`: state and input sets, mixed rows, collision distances). Then the new team's first
  problem is feasible (the candidate is a feasible point), which is the recursive-feasibility argument carried
  through the change; otherwise the change is refused with one line naming the member, the step and the violated
  constraint, and the team runs on unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import scipy.sparse as sp

from ..models.linear import CoupledLinearSystem, PolytopicConstraint
from ..mpc.projection import Projection

JOIN, LEAVE = "join", "leave"
KINDS = (JOIN, LEAVE)
FEASIBILITY_TOLERANCE = 1e-6   # constraint slack a candidate may miss by (solver tolerance) [constraint units]


@dataclass(frozen=True)
class TeamChange:
    """One scheduled change: at `step`, `member` (a persistent id) joins or leaves. A joiner brings its family's
    parameters (`spec`, opaque here) and its state when it joins; `entry` is its index in `team_changes`."""

    step: int
    kind: str
    member: int
    spec: Any = None
    initial_state: np.ndarray | None = None
    entry: int = 0


@dataclass(frozen=True)
class Roster:
    """Who is in the team, in agent order: members[i] is the persistent id of agent i (a platoon: leader first)."""

    members: tuple[int, ...]

    @staticmethod
    def initial(count: int) -> "Roster":
        return Roster(tuple(range(count)))

    def index(self, member: int) -> int:
        return self.members.index(member)

    def after(self, change: TeamChange) -> "Roster":
        """The roster once `change` is applied: a joiner at the tail, a leaver removed (the others keep order)."""
        if change.kind == JOIN:
            return Roster(self.members + (change.member,))
        return Roster(tuple(m for m in self.members if m != change.member))


@dataclass(frozen=True)
class Announcement:
    """What the team topic carries for one change (and what a run reports): the change, whether it is applied,
    why not, and the team it leaves: members in agent order, coupling graph and predecessor links (persistent
    ids). A refused change announces the unchanged team."""

    step: int
    kind: str
    member: int
    accepted: bool
    reason: str
    members: tuple[int, ...]
    edges: tuple[tuple[int, int], ...] = ()
    predecessors: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def line(self, noun: str = "member") -> str:
        """One line for the console and the log."""
        verdict = "applied" if self.accepted else f"refused: {self.reason}"
        links = ", ".join(f"{m}←{'/'.join(map(str, p))}" for m, p in self.predecessors.items() if p)
        return (f"step {self.step}: {noun} {self.member} {self.kind}s — {verdict}; team {list(self.members)}"
                + (f", predecessors {links}" if links else ""))


def coupling_graph(system: CoupledLinearSystem, roster: Roster, extra_pairs=()) -> tuple[
        tuple[tuple[int, int], ...], dict[int, tuple[int, ...]]]:
    """(edges, predecessors) of a team in persistent ids: agent j is a predecessor of i when j's state or input
    enters i's dynamics (A_ij or B_ij ≠ 0); edges join predecessors and the `extra_pairs` (agent indices) that
    couple through the cost or constraints (formation edges, collision pairs)."""
    M, ids = system.num_agents, roster.members
    predecessors = {ids[i]: tuple(ids[j] for j in range(M) if j != i and (
        np.any(system.A[i][j]) or np.any(system.B[i][j]))) for i in range(M)}
    edges = {tuple(sorted((m, p))) for m, ps in predecessors.items() for p in ps}
    edges |= {tuple(sorted((ids[a], ids[b]))) for a, b in extra_pairs}
    return tuple(sorted(edges)), predecessors


def shifted_inputs(plan_inputs: np.ndarray) -> np.ndarray:
    """A final plan's inputs (N × m) shifted one step: rows 1..N−1 (the last row is the terminal law's, filled by
    `candidate_inputs`)."""
    return np.asarray(plan_inputs, float)[1:]


def candidate_inputs(system: CoupledLinearSystem, gain: np.ndarray, reference_states: np.ndarray,
                     reference_inputs: np.ndarray, x0: np.ndarray, fixed: np.ndarray,
                     fixed_columns: np.ndarray) -> np.ndarray:
    """The re-formed team's candidate (N × m): input columns `fixed_columns` take `fixed` (N−1 rows: the members'
    shifted plans) for steps 0..N−2; every other entry is the terminal law u = ū + K (x̂ − x̄), each member's
    part projected onto its admissible inputs at x̂ (`AdmissibleInputs`), along the candidate's own prediction x̂
    (reference window N+1 × n, N × m)."""
    A, B = system.full_matrices()
    N, m = reference_inputs.shape
    admissible = [AdmissibleInputs(system, i) for i in range(system.num_agents)]
    U, x = np.zeros((N, m)), np.asarray(x0, float).copy()
    for t in range(N):
        law = reference_inputs[t] + gain @ (x - reference_states[t])
        for inputs in admissible:
            law[inputs.columns] = inputs.nearest(law[inputs.columns], x[inputs.states])
        if t < N - 1:
            law[fixed_columns] = fixed[t]
        U[t] = law
        x = A @ x + B @ U[t]
    return U


class AdmissibleInputs:
    """Agent i's inputs admissible at its state: U_i and its mixed rows Hx x_i + Hu u ≤ h (a jerk limit)."""

    def __init__(self, system: CoupledLinearSystem, agent: int) -> None:
        sub = system.subsystems[agent]
        self.columns, self.states = system.input_slice(agent), system.state_slice(agent)
        mixed = sub.mixed_constraint
        rows = [sub.input_constraint.H] + ([mixed.Hu] if mixed is not None else [])
        self.bound, self.mixed = sub.input_constraint.h, mixed
        self.projection = Projection(sp.csr_matrix(np.vstack(rows))) if sum(r.shape[0] for r in rows) else None

    def nearest(self, u: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The admissible input nearest to u (u itself when none is: the check then names the row)."""
        if self.projection is None:
            return u
        d = self.bound if self.mixed is None else np.concatenate([self.bound, self.mixed.h - self.mixed.Hx @ x])
        z, ok, _ = self.projection.solve(d, np.asarray(u, float))
        return z if ok else u


@dataclass(frozen=True)
class Violation:
    """The first constraint a candidate misses: which agent, at which prediction step, which row, by how much."""

    agent: int
    step: int
    constraint: str
    amount: float
    partner: int | None = None   # a collision pair's other agent (the constraint is then its distance to it)


def first_violation(system: CoupledLinearSystem, states: np.ndarray, inputs: np.ndarray,
                    collision=None, tolerance: float = FEASIBILITY_TOLERANCE) -> Violation | None:
    """The earliest (then largest) violation of a candidate (states N+1 × n from x(0), inputs N × m) against the
    re-formed problem (`violations`); None: feasible."""
    return earliest(violations(system, states, inputs, collision, tolerance))


def earliest(found: list[Violation]) -> Violation | None:
    """The violation at the earliest prediction step, the largest of that step."""
    return min(found, key=lambda v: (v.step, -v.amount)) if found else None


def violations(system: CoupledLinearSystem, states: np.ndarray, inputs: np.ndarray, collision=None,
               tolerance: float = FEASIBILITY_TOLERANCE, agents=None) -> list[Violation]:
    """Every row of the re-formed problem the candidate misses, of the `agents` given (None: all; an agent's own
    rows are what it checks when it votes, team_protocol.py): X_i at prediction steps 1..N, U_i and the mixed rows
    at 0..N−1, and the collision pairs' distance at 1..N (counted for both robots of a pair)."""
    found: list[Violation] = []
    N = inputs.shape[0]
    chosen = range(system.num_agents) if agents is None else agents
    for i in chosen:
        sub = system.subsystems[i]
        xs, us = system.state_slice(i), system.input_slice(i)
        for t in range(N + 1):
            if t >= 1:
                found += _rows(i, t, sub.state_constraint, states[t, xs], sub.state_names, tolerance)
            if t < N:
                found += _rows(i, t, sub.input_constraint, inputs[t, us], sub.input_names, tolerance)
                mixed = sub.mixed_constraint
                if mixed is not None:
                    load = mixed.Hx @ states[t, xs] + mixed.Hu @ inputs[t, us] - mixed.h
                    r = int(np.argmax(load)) if load.size else 0
                    if load.size and load[r] > tolerance:
                        text = row_text(np.r_[mixed.Hx[r], mixed.Hu[r]], mixed.h[r], sub.state_names + sub.input_names,
                                        np.r_[states[t, xs], inputs[t, us]])
                        found.append(Violation(i, t, text, float(load[r])))
    if collision is not None:
        columns = np.asarray(collision.position_columns)
        for a, b in collision.pairs:
            distance = np.linalg.norm(states[:, system.state_offsets[a] + columns]
                                      - states[:, system.state_offsets[b] + columns], axis=1)
            for t in range(1, N + 1):
                if collision.min_distance - distance[t] > tolerance:
                    for own, other in ((b, a), (a, b)):
                        if own in chosen:
                            found.append(Violation(own, t, f"≥ {collision.min_distance:g} m ({distance[t]:.3g} m)",
                                                   float(collision.min_distance - distance[t]), other))
    return found


def _rows(agent: int, t: int, constraint: PolytopicConstraint, value: np.ndarray, names: tuple[str, ...],
          tolerance: float) -> list[Violation]:
    """The rows of H v ≤ h that `value` misses, each named ('e_3 ≥ 2 m' for a box row)."""
    if constraint.h.size == 0:
        return []
    load = constraint.H @ value - constraint.h
    result = []
    for r in np.flatnonzero(load > tolerance):
        result.append(Violation(agent, t, row_text(constraint.H[r], constraint.h[r], names, value), float(load[r])))
    return result


def row_text(row: np.ndarray, bound: float, names: tuple[str, ...], value: np.ndarray) -> str:
    """'e ≥ 2 (1.2)' for a box row, else 'u − a ≤ 1.6 (2.1)' (symbols without the agent index, which changes
    with the team; the value the candidate reaches in brackets)."""
    nonzero = np.flatnonzero(row)
    symbols = [symbol(n) for n in names] if len(names) == row.size else [f"v[{j}]" for j in range(row.size)]
    if nonzero.size == 1:
        j = int(nonzero[0])
        return f"{symbols[j]} {'≤' if row[j] > 0 else '≥'} {bound / row[j]:g} ({value[j]:.4g})"
    terms = " ".join(f"{'−' if row[j] < 0 else '+'} {'' if abs(row[j]) == 1 else f'{abs(row[j]):g}·'}{symbols[j]}"
                     for j in nonzero).removeprefix("+ ").replace("− ", "−", 1 if row[nonzero[0]] < 0 else 0)
    return f"{terms} ≤ {bound:g} ({float(row @ value):.4g})"


def symbol(name: str) -> str:
    """'e_3' → 'e' (built-in families number their states by agent index), else the name."""
    stem, _, suffix = name.rpartition("_")
    return stem if stem and suffix.isdigit() else name


def refusal(change: TeamChange, violation: Violation, roster: Roster, noun: str) -> str:
    """The one-line reason: member, step, violated constraint and by how much."""
    def member(agent: int) -> int:
        return roster.members[agent] if agent < len(roster.members) else agent

    row = violation.constraint if violation.partner is None else \
        f"the distance to {noun} {member(violation.partner)} {violation.constraint}"
    return (f"{noun} {change.member} {change.kind} at step {change.step}: the shifted candidate violates {row} of "
            f"{noun} {member(violation.agent)} at prediction step {violation.step} by {violation.amount:.3g}")
