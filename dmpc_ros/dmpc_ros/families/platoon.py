"""`model.type: platoon`: heterogeneous vehicles with actuator lag in gap coordinates; the leader follows a
speed profile, the followers keep a constant-time-headway spacing (see models/platoon.py)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..coordination.team_change import JOIN
from ..models.layout import PlanarLayout
from ..models.linear import CoupledLinearSystem
from ..models.platoon import TOPOLOGIES, Platoon, SpeedProfile, platoon_metrics, platoon_signals
from ..mpc.reference import ReferenceTrajectory
from ..scenarios.family import FamilyParts, ModelFamily
from ..scenarios.validation import ScenarioError, check_number, choice, number, per_agent, reject_unknown, section

MAX_VEHICLES = 100


@dataclass(frozen=True)
class PlatoonSettings:
    speed_profile: SpeedProfile   # the leader's reference speed
    follower_speeds: tuple[float, ...] | None = None   # followers' reference speeds at step 0 (None: the leader's)


PER_VEHICLE = ("time_constant", "acceleration_min", "acceleration_max", "jerk_limit")   # Platoon's per-vehicle fields


@dataclass(frozen=True)
class PlatoonJoiner:
    """A vehicle that joins at the tail: its own parameters (Platoon's per-vehicle fields)."""

    time_constant: float        # τ [s]
    acceleration_min: float     # [m/s²]
    acceleration_max: float     # [m/s²]
    jerk_limit: float           # [m/s³]


class PlatoonFamily(ModelFamily):
    name = "platoon"
    model_fields = frozenset({"vehicles", "speed_profile"})
    controller_fields = frozenset({"spacing_weight", "speed_weight", "acceleration_weight", "input_weight",
                                   "coupling_weight"})
    time_varying_reference = True
    initial_state_default = "equilibrium"

    def parse(self, model: dict, controller: dict, sample_time: float) -> FamilyParts:
        platoon = parse_platoon(section(model, "model.", "vehicles", required=True))
        profile = parse_speed_profile(model.get("speed_profile"), platoon)
        Q, R, terms = parse_platoon_weights(controller, platoon)
        return FamilyParts(platoon, Q, R, terms, PlatoonSettings(profile))

    def initial_state(self, value: object, parts: FamilyParts, sample_time: float) -> np.ndarray:
        return parse_platoon_initial_state(value, parts.model, parts.settings.speed_profile, sample_time)

    def reference(self, scenario, system: CoupledLinearSystem) -> ReferenceTrajectory:
        """The ideal platoon along the speed profile, for the run plus one horizon of preview."""
        speed, acceleration = scenario.family_settings.speed_profile.sample(scenario.sample_time,
                                                                            scenario.reference_length)
        return ReferenceTrajectory(*scenario.model.reference_states(speed, acceleration, scenario.sample_time,
                                                                    scenario.family_settings.follower_speeds))

    def metrics(self, scenario, x: np.ndarray, u: np.ndarray) -> dict:
        leader_speed = self.reference(scenario, scenario.prediction_model()).states[:, 0]
        return platoon_metrics(scenario.model, x, u, leader_speed)

    def layout(self, scenario) -> PlanarLayout:
        """In the leader's frame along x: vehicle i at its nominal slot −i·r, moved back by its own spacing error
        e_i − (r + h v_i) (each vehicle knows only its own gap, so errors do not add up along the platoon)."""
        platoon = scenario.model
        r, h = platoon.standstill_gap, platoon.time_headway
        maps = [np.zeros((2, 2))] + [np.array([[-1.0, h, 0.0], [0.0, 0.0, 0.0]])] * (platoon.num_agents - 1)
        anchors = [np.zeros(2)] + [np.array([-i * r + r, 0.0]) for i in range(1, platoon.num_agents)]
        return PlanarLayout(tuple(maps), tuple(anchors))

    def plots(self, scenario, result, directory: Path) -> list[Path]:
        return [plot_platoon(result, scenario.model, self.reference(scenario, scenario.prediction_model()),
                             directory, scenario.name)]

    # -- plug-and-play: a vehicle joins at the tail, any follower leaves (its follower closes up) -------------
    member_noun = "vehicle"

    def parse_joiner(self, entry: dict, where: str, parts: FamilyParts) -> tuple[PlatoonJoiner, np.ndarray]:
        """join: {time_constant, acceleration_min, acceleration_max, jerk_limit (default: the tail's), initial_state:
        [gap to the tail m, v m/s, a m/s²]}."""
        platoon = parts.model
        path = f"{where}."
        reject_unknown(entry, path, set(PER_VEHICLE) | {"initial_state"})
        joiner = PlatoonJoiner(
            time_constant=number(entry, path, "time_constant", default=platoon.time_constant[-1], minimum=0.01),
            acceleration_min=number(entry, path, "acceleration_min", default=platoon.acceleration_min[-1],
                                    maximum=-0.01),
            acceleration_max=number(entry, path, "acceleration_max", default=platoon.acceleration_max[-1],
                                    minimum=0.0, strict_minimum=True),
            jerk_limit=number(entry, path, "jerk_limit", default=platoon.jerk_limit[-1], minimum=0.0,
                              strict_minimum=True))
        value = entry.get("initial_state")
        if not isinstance(value, list) or len(value) != 3:
            raise ScenarioError(f"{path}initial_state: {value!r} is not allowed: give [gap m, v m/s, a m/s²] (the gap "
                                f"to the vehicle it joins behind)")
        gap = check_number(value[0], f"{path}initial_state[0]", minimum=platoon.min_gap, finite=True)
        speed = check_number(value[1], f"{path}initial_state[1]", minimum=0.0, maximum=platoon.speed_max)
        acceleration = check_number(value[2], f"{path}initial_state[2]", minimum=joiner.acceleration_min,
                                    maximum=joiner.acceleration_max)
        return joiner, np.array([gap, speed, acceleration])

    def leave_refusal(self, parts: FamilyParts, index: int) -> str | None:
        return "the leader cannot leave (it alone follows the speed profile)" if index == 0 else None

    def shifted(self, scenario, elapsed: float) -> FamilyParts:
        """The profile from `elapsed` on, the followers' reference speeds carried over (their lags keep their state)."""
        profile = shifted_profile(scenario.family_settings.speed_profile, elapsed)
        step = int(round(elapsed / scenario.sample_time))
        states = self.reference(scenario, scenario.prediction_model()).states
        _, speeds, _ = platoon_signals(scenario.model, states[min(step, states.shape[0] - 1)][None, :])
        controller = scenario.controller
        return FamilyParts(scenario.model, controller.Q, controller.R, controller.coupling_terms,
                           PlatoonSettings(profile, tuple(float(v) for v in speeds[0, 1:])))

    def team_change(self, scenario, members: tuple[int, ...], index: int, change,
                    x: np.ndarray) -> tuple[FamilyParts, np.ndarray]:
        """A joiner appended at the tail (its gap is to the old tail); a leaver's follower now follows the
        leaver's predecessor, at the sum of both gaps (vehicles are points: the gaps are bumper to bumper)."""
        platoon = scenario.model
        offsets, M = platoon.state_offsets, platoon.num_agents
        rows = [np.array(x[offsets[k]:offsets[k + 1]], float) for k in range(M)]
        settings = scenario.family_settings
        speeds = list(settings.follower_speeds or [settings.speed_profile.speeds[0]] * (M - 1))
        if change.kind == JOIN:   # the joiner's reference starts where its predecessor's is
            joined = replace(platoon, **{f: getattr(platoon, f) + (getattr(change.spec, f),) for f in PER_VEHICLE})
            rows.append(np.asarray(change.initial_state, float))
            speeds.append(speeds[-1] if speeds else settings.speed_profile.speeds[0])
        else:
            keep = [k for k in range(M) if k != index]
            joined = replace(platoon, **{f: tuple(getattr(platoon, f)[k] for k in keep) for f in PER_VEHICLE})
            if index + 1 < M:
                rows[index + 1][0] += rows[index][0]
            rows = [rows[k] for k in keep]
            del speeds[index - 1]
        Q, R, terms = parse_platoon_weights(scenario.sections.get("controller") or {}, joined)
        return (FamilyParts(joined, Q, R, terms, replace(settings, follower_speeds=tuple(speeds))),
                np.concatenate(rows))

    def change_metrics(self, scenario, x: np.ndarray, u: np.ndarray, source: int | None) -> dict:
        """The platoon's figures over the stretch; after a leave (`source`: the follower that closes up) the
        string-stability ratios are taken from that vehicle down, with its spacing error in the role of the first
        follower's: max_{j > s} ‖δ_j‖∞ / ‖δ_s‖∞ (≤ 1: the disturbance does not grow down the
        platoon)."""
        metrics = self.metrics(scenario, x, u)
        peaks = np.asarray(metrics["peak_spacing_error"])   # follower f at f − 1
        if source is not None and 1 <= source <= peaks.size:
            tail, floor = peaks[source - 1:], 0.01
            metrics["string_stability_ratio"] = float(np.max(tail[1:] / max(tail[0], floor), initial=0.0))
            metrics["consecutive_spacing_ratio"] = float(np.max(tail[1:] / np.maximum(tail[:-1], floor), initial=0.0))
            metrics["string_stability_from"] = int(source)
        return metrics


def shifted_profile(profile: SpeedProfile, elapsed: float) -> SpeedProfile:
    """The profile as seen from time `elapsed` on (its speed then is the first knot)."""
    later = [(t - elapsed, v) for t, v in zip(profile.times, profile.speeds) if t > elapsed]
    start = float(np.interp(elapsed, profile.times, profile.speeds))
    return SpeedProfile((0.0,) + tuple(t for t, _ in later), (start,) + tuple(v for _, v in later))


def plot_platoon(result, platoon: Platoon, reference: ReferenceTrajectory, directory: Path, title: str) -> Path:
    """platoon.png: speeds against the leader's profile, spacing errors, gaps against the minimum gap, jerk."""
    from ..sim.plots import label_time_axes, plt, save  # matplotlib only when plotting
    path = directory / "platoon.png"
    gaps, speeds, accelerations = platoon_signals(platoon, result.x)
    M, t = platoon.num_agents, result.t
    labelled = M <= 10
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(t, reference.states[: t.size, 0], "k--", lw=1, label="leader profile")
    axes[0].axhline(platoon.speed_max, color="r", lw=1, ls=":", label="speed limit")
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


def parse_platoon(vehicles: dict) -> Platoon:
    path = "model.vehicles."
    reject_unknown(vehicles, path, {"count", "time_constant", "acceleration_min", "acceleration_max", "jerk_limit",
                                    "speed_max", "min_gap", "standstill_gap", "time_headway", "topology"})
    M = number(vehicles, path, "count", minimum=2, maximum=MAX_VEHICLES, integer=True)
    positive = dict(minimum=0.0, strict_minimum=True)
    platoon = Platoon(
        time_constant=tuple(per_agent(vehicles, path, "time_constant", M, 0.4, minimum=0.01)),
        acceleration_min=tuple(per_agent(vehicles, path, "acceleration_min", M, -4.0, maximum=-0.01)),
        acceleration_max=tuple(per_agent(vehicles, path, "acceleration_max", M, 2.0, **positive)),
        jerk_limit=tuple(per_agent(vehicles, path, "jerk_limit", M, 5.0, **positive)),
        speed_max=number(vehicles, path, "speed_max", default=40.0, **positive),
        min_gap=number(vehicles, path, "min_gap", default=2.0, minimum=0.0),
        standstill_gap=number(vehicles, path, "standstill_gap", default=5.0, minimum=0.0),
        time_headway=number(vehicles, path, "time_headway", default=0.6, minimum=0.0, maximum=10.0),
        topology=choice(vehicles, path, "topology", TOPOLOGIES, default="predecessor_follower"),
    )
    if platoon.standstill_gap < platoon.min_gap:
        raise ScenarioError(f"{path}standstill_gap: {platoon.standstill_gap} is not allowed: must be ≥ min_gap "
                            f"{platoon.min_gap} (the desired gap would violate the minimum gap)")
    return platoon


def parse_platoon_weights(controller: dict, platoon: Platoon) -> tuple[np.ndarray, np.ndarray, tuple]:
    path = "controller."
    nonnegative = dict(minimum=0.0)
    weights = dict(
        spacing=number(controller, path, "spacing_weight", default=1.0, **nonnegative),
        speed=number(controller, path, "speed_weight", default=1.0, minimum=0.0, strict_minimum=True),
        acceleration=number(controller, path, "acceleration_weight", default=0.1, **nonnegative),
        input_weight=number(controller, path, "input_weight", default=0.1, minimum=0.0, strict_minimum=True),
        coupling=number(controller, path, "coupling_weight", default=0.0, **nonnegative),
    )
    if weights["coupling"] > 0 and platoon.topology != "bidirectional":
        raise ScenarioError(f"{path}coupling_weight: {weights['coupling']} is not allowed with topology "
                            f"{platoon.topology}: only the bidirectional topology couples neighbours' spacing errors")
    return platoon.weights(**weights)


def parse_speed_profile(value: object, platoon: Platoon) -> SpeedProfile:
    """[[t, v], ...] knots, times strictly increasing, speeds within [0, speed_max], slopes every vehicle can
    follow (within its acceleration limits)."""
    name = "model.speed_profile"
    if not isinstance(value, list) or not value or not all(isinstance(k, list) and len(k) == 2 for k in value):
        raise ScenarioError(f"{name}: {value!r} is not allowed: give [[time s, speed m/s], ...] knots")
    times = [check_number(k[0], f"{name}[{i}][0]", minimum=0.0) for i, k in enumerate(value)]
    speeds = [check_number(k[1], f"{name}[{i}][1]", minimum=0.0, maximum=platoon.speed_max)
              for i, k in enumerate(value)]
    a_min, a_max = max(platoon.acceleration_min), min(platoon.acceleration_max)
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise ScenarioError(f"{name}[{i}][0]: {times[i]} is not allowed: times must increase strictly")
        slope = (speeds[i] - speeds[i - 1]) / (times[i] - times[i - 1])
        if not a_min <= slope <= a_max:
            raise ScenarioError(f"{name}[{i}]: slope {slope:.3g} m/s² is not allowed: every vehicle must be able "
                                f"to follow it, i.e. within [{a_min}, {a_max}] m/s²")
    return SpeedProfile(tuple(times), tuple(speeds))


def parse_platoon_initial_state(value: object, platoon: Platoon, profile: SpeedProfile,
                                sample_time: float) -> np.ndarray:
    """'equilibrium' (the ideal platoon at the profile's initial speed) or one list per vehicle: [v, a] for the
    leader, [gap, v, a] for followers; gaps must respect the minimum gap."""
    name = "simulation.initial_state"
    if value == "equilibrium":
        speed, _ = profile.sample(sample_time, 1)
        return platoon.reference_states(speed, np.zeros(1), sample_time)[0][0]
    M = platoon.num_agents
    if not isinstance(value, list) or len(value) != M:
        raise ScenarioError(f"{name}: {value!r} is not allowed: 'equilibrium' or {M} lists "
                            f"([v, a] for the leader, then [gap, v, a] per follower)")
    rows = []
    for i, entry in enumerate(value):
        size = platoon.state_size(i)
        if not isinstance(entry, list) or len(entry) != size:
            raise ScenarioError(f"{name}[{i}]: {entry!r} is not allowed: "
                                f"must be {'[v, a]' if i == 0 else '[gap, v, a]'}")
        rows.extend(check_number(v, f"{name}[{i}][{j}]") for j, v in enumerate(entry))
        if i > 0 and entry[0] < platoon.min_gap:
            raise ScenarioError(f"{name}[{i}][0]: gap {entry[0]} is not allowed: below the minimum gap "
                                f"{platoon.min_gap} m")
    return np.asarray(rows, float)


FAMILY = PlatoonFamily()
