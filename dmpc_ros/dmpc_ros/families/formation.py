"""`model.type: formation`: planar robots (double integrators) hold a shape around a centre that follows a
path, reconfigure at a switch time, agree on the centre by consensus first and keep a minimum distance by
separating half-planes (see models/formation.py)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..coordination.collision import CollisionAvoidance
from ..coordination.consensus import CentreConsensus, check_step_size, components
from ..coordination.team_change import JOIN
from ..models.layout import PlanarLayout
from ..models.formation import CentrePath, Formation, edge_errors, formation_metrics
from ..models.linear import CoupledLinearSystem
from ..mpc.reference import ReferenceTrajectory
from ..mpc.tubes import Zonotope
from ..scenarios.family import DesignExtras, FamilyParts, ModelFamily
from ..scenarios.validation import ScenarioError, check_number, choice, number, parse_rows, reject_unknown, section


@dataclass(frozen=True)
class ConsensusSettings:
    step_size: float
    rounds: int
    tolerance: float


@dataclass(frozen=True)
class FormationSettings:
    centre_path: CentrePath                 # the centre's path relative to its start
    consensus: ConsensusSettings | None     # None: the centre is known (no consensus first)
    anchor: tuple[float, float] | None = None   # where the path starts [m] (None: from the initial positions)


@dataclass(frozen=True)
class FormationJoiner:
    """A robot that joins: its offsets in both shapes and its graph neighbours (persistent ids; None: all)."""

    offset: tuple[float, float]
    offset_after: tuple[float, float]
    neighbours: tuple[int, ...] | None


class FormationFamily(ModelFamily):
    name = "formation"
    model_fields = frozenset({"robots", "path", "centre"})
    controller_fields = frozenset({"formation_weight", "tracking_weight", "velocity_weight", "input_weight",
                                   "consensus"})
    time_varying_reference = True
    collision_avoidance = True   # the robots keep apart by half-planes from each other's plans (design_extras)

    def parse(self, model: dict, controller: dict, sample_time: float) -> FamilyParts:
        formation = parse_formation(section(model, "model.", "robots", required=True))
        path = parse_centre_path(model.get("path"))
        Q, R, terms = formation_weights(controller, formation)
        centre = choice(model, "model.", "centre", ("consensus", "known"), default="consensus")
        consensus = parse_consensus(section(controller, "controller.", "consensus"), formation) \
            if centre == "consensus" else None
        return FamilyParts(formation, Q, R, terms, FormationSettings(path, consensus))

    def initial_state(self, value: object, parts: FamilyParts, sample_time: float) -> np.ndarray:
        """Rows (px, py, vx, vy); two graph neighbours (they keep min_distance apart) may not start closer."""
        x0 = parse_rows(value, "simulation.initial_state", parts.model.num_agents, ("px", "py", "vx", "vy"),
                        noun="lists (one per agent)")
        positions, formation = x0.reshape(-1, 4)[:, :2], parts.model
        for a, b in formation.edges:
            gap = float(np.linalg.norm(positions[a] - positions[b]))
            if gap < formation.min_distance:
                raise ScenarioError(f"simulation.initial_state: robots {a} and {b} start {gap:.3g} m apart, closer "
                                    f"than model.robots.min_distance {formation.min_distance} m (the collision "
                                    f"constraint would be violated from the first step)")
        return x0

    def reference(self, scenario, system: CoupledLinearSystem) -> ReferenceTrajectory:
        states, inputs = scenario.model.reference(scenario.family_settings.centre_path, scenario.sample_time,
                                                  scenario.reference_length)
        return ReferenceTrajectory(states + anchor_shift(scenario), inputs)

    def design_extras(self, scenario, reference: ReferenceTrajectory) -> DesignExtras:
        formation = scenario.model
        tubes = None if scenario.tubes is None else tuple(Zonotope(z.G[:2]) for z in scenario.tubes.tubes)
        collision = CollisionAvoidance(formation.edges, formation.min_distance, position_tubes=tubes)
        settings = scenario.family_settings.consensus
        if settings is None:
            return DesignExtras(collision=collision)
        # the agents work relative to their agreed centre: the path from 0
        relative = ReferenceTrajectory(reference.states - anchor_shift(scenario), reference.inputs)
        consensus = CentreConsensus(formation.edges, formation.offsets, settings.step_size, settings.rounds,
                                    relative, settings.tolerance)
        return DesignExtras(collision=collision, centre_consensus=consensus)

    def metrics(self, scenario, x: np.ndarray, u: np.ndarray) -> dict:
        """The formation's metrics, and the collision constraint's violation (the plant's sets do not hold it)."""
        metrics = formation_metrics(scenario.model, x, scenario.sample_time)
        metrics["constraint_violation"] = distance_shortfall(scenario.model, x)
        return metrics

    def layout(self, scenario) -> PlanarLayout:
        """Robots at their (x, y) states, with half the minimum distance as safety radius."""
        M = scenario.num_agents
        return PlanarLayout.planar([4] * M, [(0, 1)] * M, scenario.model.min_distance / 2)

    def plots(self, scenario, result, directory: Path) -> list[Path]:
        return [plot_formation(result, scenario.model, self.reference(scenario, scenario.prediction_model()),
                               directory, scenario.name)]

    # -- plug-and-play: a robot joins (its offsets and neighbours given), any robot leaves --------------------
    member_noun = "robot"

    def parse_joiner(self, entry: dict, where: str, parts: FamilyParts) -> tuple[FormationJoiner, np.ndarray]:
        """join: {shape: [x, y], shape_after: [x, y] (default: shape), neighbours: [ids] (default: every robot),
        initial_state: [px, py, vx, vy]}; the centre must be known (a consensus runs in step 0 only)."""
        path = f"{where}."
        if parts.settings.consensus is not None:
            raise ScenarioError(f"{where}: not allowed with model.centre consensus: the centre is agreed in step 0 "
                                f"only, so a joiner would not know it; use model.centre: known")
        reject_unknown(entry, path, {"shape", "shape_after", "neighbours", "initial_state"})
        shape = tuple(numbers(entry.get("shape"), f"{path}shape", ("x", "y")))
        after = tuple(numbers(entry.get("shape_after", list(shape)), f"{path}shape_after", ("x", "y")))
        neighbours = entry.get("neighbours")
        if neighbours is not None:
            if not isinstance(neighbours, list) or not neighbours:
                raise ScenarioError(f"{path}neighbours: {neighbours!r} is not allowed: a list of robot ids")
            neighbours = tuple(check_number(v, f"{path}neighbours[{k}]", minimum=0, integer=True)
                               for k, v in enumerate(neighbours))
        state = numbers(entry.get("initial_state"), f"{path}initial_state", ("px", "py", "vx", "vy"))
        return FormationJoiner(shape, after, neighbours), state

    def leave_refusal(self, parts: FamilyParts, index: int) -> str | None:
        return None if parts.settings.consensus is None else \
            "not allowed with model.centre consensus (the centre is agreed in step 0 only); use model.centre: known"

    def shifted(self, scenario, elapsed: float) -> FamilyParts:
        """The path from `elapsed` on, anchored where the old one is then; the shape switch moved with it."""
        formation, settings = scenario.model, scenario.family_settings
        knots = np.asarray(settings.centre_path.knots, float)
        centre = np.array([np.interp(elapsed, knots[:, 0], knots[:, d]) for d in (1, 2)])
        later = [(t - elapsed, x - centre[0], y - centre[1]) for t, x, y in knots if t > elapsed]
        path = CentrePath(((0.0, 0.0, 0.0),) + tuple(later))
        if formation.switch_time <= elapsed:   # switched already: shape B from now on
            formation = replace(formation, offsets=formation.offsets_after, switch_time=0.0)
        else:
            formation = replace(formation, switch_time=formation.switch_time - elapsed)
        anchor = tuple(float(v) for v in formation_anchor(scenario) + centre)
        controller = scenario.controller
        return FamilyParts(formation, controller.Q, controller.R, controller.coupling_terms,
                           replace(settings, centre_path=path, anchor=anchor))

    def team_change(self, scenario, members: tuple[int, ...], index: int, change,
                    x: np.ndarray) -> tuple[FamilyParts, np.ndarray]:
        """A joiner gets the next index and edges to its neighbours; a leaver's edges go, the others renumbered."""
        formation, M = scenario.model, scenario.model.num_agents
        if change.kind == JOIN:
            spec = change.spec
            absent = sorted(set(spec.neighbours or ()) - set(members))
            if absent:
                raise ScenarioError(f"team_changes[{change.entry}].join.neighbours: {absent} are not in the team "
                                    f"{list(members)}")
            neighbours = range(M) if spec.neighbours is None else sorted(members.index(m) for m in spec.neighbours)
            formation = replace(formation, offsets=formation.offsets + (spec.offset,),
                                offsets_after=formation.offsets_after + (spec.offset_after,),
                                edges=tuple(sorted(formation.edges + tuple((j, M) for j in neighbours))))
            x = np.concatenate([x, change.initial_state])
        else:
            renumber = {k: k - (k > index) for k in range(M) if k != index}
            formation = replace(formation, offsets=tuple(o for k, o in enumerate(formation.offsets) if k != index),
                                offsets_after=tuple(o for k, o in enumerate(formation.offsets_after) if k != index),
                                edges=tuple((renumber[a], renumber[b]) for a, b in formation.edges
                                            if index not in (a, b)))
            x = np.delete(np.asarray(x, float), np.s_[4 * index:4 * index + 4])
        Q, R, terms = formation_weights(scenario.sections.get("controller") or {}, formation)
        return FamilyParts(formation, Q, R, terms, scenario.family_settings), x


def distance_shortfall(formation, x: np.ndarray) -> float:
    """max over steps and graph neighbours of (min_distance − ‖p_a − p_b‖)⁺ [m]."""
    positions = x.reshape(x.shape[0], -1, 4)[:, :, :2]
    gaps = [np.linalg.norm(positions[:, a] - positions[:, b], axis=1) for a, b in formation.edges]
    return max(0.0, *(float(np.max(formation.min_distance - g)) for g in gaps))


def numbers(value: object, name: str, fields: tuple[str, ...]) -> np.ndarray:
    """One [a, b, ...] list of finite numbers, one per field."""
    if not isinstance(value, list) or len(value) != len(fields):
        raise ScenarioError(f"{name}: {value!r} is not allowed: give [{', '.join(fields)}]")
    return np.array([check_number(v, f"{name}[{k}]", finite=True) for k, v in enumerate(value)])


def formation_weights(controller: dict, formation: Formation) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(Q, R, pair terms) from the controller section's weights."""
    where = "controller."
    return formation.weights(
        formation=number(controller, where, "formation_weight", default=1.0, minimum=0.0),
        tracking=number(controller, where, "tracking_weight", default=0.1, minimum=0.0),
        velocity=number(controller, where, "velocity_weight", default=0.5, minimum=0.0, strict_minimum=True),
        input_weight=number(controller, where, "input_weight", default=0.1, minimum=0.0, strict_minimum=True),
    )


def formation_anchor(scenario) -> np.ndarray:
    """Where the centre path starts: given (a team re-formed on the way), or the average of the centres the robots'
    initial positions imply (the value the centre consensus converges to)."""
    if scenario.family_settings.anchor is not None:
        return np.asarray(scenario.family_settings.anchor, float)
    positions = scenario.initial_state.reshape(-1, 4)[:, :2]
    return np.mean(positions - np.asarray(scenario.model.offsets), axis=0)


def anchor_shift(scenario) -> np.ndarray:
    """The formation anchor added to every robot's position (stacked state layout)."""
    return np.tile(np.r_[formation_anchor(scenario), 0.0, 0.0], scenario.num_agents)


def plot_formation(result, formation: Formation, reference: ReferenceTrajectory, directory: Path,
                   title: str) -> Path:
    """formation.png: paths in the plane (with the reference and robot markers at the switch), formation error
    and the smallest distance between any two robots against the minimum distance."""
    from ..sim.plots import plt, save  # matplotlib only when plotting
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


MAX_ROBOTS = 64   # the largest formation run (bench/scaling.py --family formation --sizes 64, RESULTS.md)


def parse_formation(robots: dict) -> Formation:
    path = "model.robots."
    reject_unknown(robots, path, {"count", "shape", "shape_after", "switch_time", "graph", "speed_limit",
                                  "acceleration_limit", "min_distance"})
    M = number(robots, path, "count", minimum=2, maximum=MAX_ROBOTS, integer=True)
    shape = parse_rows(robots.get("shape"), f"{path}shape", M, ("x", "y")).reshape(M, 2)
    after = parse_rows(robots.get("shape_after", robots.get("shape")), f"{path}shape_after", M,
                       ("x", "y")).reshape(M, 2)
    edges = parse_graph(robots.get("graph", "ring"), f"{path}graph", M)
    formation = Formation(
        offsets=tuple(map(tuple, shape)), offsets_after=tuple(map(tuple, after)),
        switch_time=number(robots, path, "switch_time", default=float("inf"), minimum=0.0), edges=edges,
        speed_limit=number(robots, path, "speed_limit", default=1.0, minimum=0.0, strict_minimum=True),
        acceleration_limit=number(robots, path, "acceleration_limit", default=1.0, minimum=0.0, strict_minimum=True),
        min_distance=number(robots, path, "min_distance", default=0.5, minimum=0.0),
    )
    for name, offsets in (("shape", shape), ("shape_after", after)):
        for a, b in edges:
            gap = np.linalg.norm(offsets[a] - offsets[b])
            if gap < formation.min_distance:
                raise ScenarioError(f"{path}{name}: robots {a} and {b} are {gap:.3g} m apart in the formation, "
                                    f"closer than min_distance {formation.min_distance} m")
    return formation


def parse_graph(value: object, name: str, count: int) -> tuple[tuple[int, int], ...]:
    """'ring', 'complete', 'path' or a list of [i, j] edges (0 ≤ i, j < count, i ≠ j)."""
    if value == "ring":
        return tuple(sorted({tuple(sorted((i, (i + 1) % count))) for i in range(count)}))
    if value == "path":
        return tuple((i, i + 1) for i in range(count - 1))
    if value == "complete":
        return tuple((i, j) for i in range(count) for j in range(i + 1, count))
    if not isinstance(value, list) or not value:
        raise ScenarioError(f"{name}: {value!r} is not allowed: ring, path, complete or a list of [i, j] edges")
    edges = set()
    for e, edge in enumerate(value):
        if not (isinstance(edge, list) and len(edge) == 2 and all(isinstance(v, int) and 0 <= v < count for v in edge)
                and edge[0] != edge[1]):
            raise ScenarioError(f"{name}[{e}]: {edge!r} is not allowed: must be [i, j] with two different robots in "
                                f"0..{count - 1}")
        edges.add(tuple(sorted(edge)))
    return tuple(sorted(edges))


def parse_centre_path(value: object) -> CentrePath:
    name = "model.path"
    if value is None:
        return CentrePath(((0.0, 0.0, 0.0),))
    rows = parse_rows(value, name, len(value) if isinstance(value, list) else -1, ("t", "x", "y")).reshape(-1, 3)
    if rows[0, 0] != 0.0 or rows[0, 1] != 0.0 or rows[0, 2] != 0.0:
        raise ScenarioError(f"{name}[0]: {value[0]!r} is not allowed: the path starts at [0, 0, 0] (time 0 at the "
                            f"agreed centre); later knots are relative to it")
    for i in range(1, rows.shape[0]):
        if rows[i, 0] <= rows[i - 1, 0]:
            raise ScenarioError(f"{name}[{i}][0]: {rows[i, 0]} is not allowed: times must increase strictly")
    return CentrePath(tuple(map(tuple, rows)))


def parse_consensus(consensus: dict, formation: Formation) -> ConsensusSettings:
    path = "controller.consensus."
    reject_unknown(consensus, path, {"step_size", "rounds", "tolerance"})
    settings = ConsensusSettings(
        step_size=number(consensus, path, "step_size", default=0.2, minimum=0.0, strict_minimum=True),
        rounds=number(consensus, path, "rounds", default=60, minimum=1, maximum=10000, integer=True),
        tolerance=number(consensus, path, "tolerance", default=1e-6, minimum=0.0, strict_minimum=True))
    parts = components(formation.num_agents, formation.edges)
    if len(parts) > 1:   # the graph's fault, not the step size's
        groups = "; ".join(str(p) for p in parts)
        raise ScenarioError(f"model.robots.graph: splits the robots into {len(parts)} groups that never hear of "
                            f"each other ({groups}); centre consensus needs a connected graph")
    try:
        check_step_size(formation.num_agents, formation.edges, settings.step_size)
    except ValueError as error:
        raise ScenarioError(f"{path}step_size: {error}") from None
    return settings


FAMILY = FormationFamily()
