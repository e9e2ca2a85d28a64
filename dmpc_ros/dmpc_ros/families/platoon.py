"""`model.type: platoon`: heterogeneous vehicles with actuator lag in gap coordinates; the leader follows a
speed profile, the followers keep a constant-time-headway spacing (see models/platoon.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
        return ReferenceTrajectory(*scenario.model.reference_states(speed, acceleration, scenario.sample_time))

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
