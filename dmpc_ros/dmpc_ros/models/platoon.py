"""Vehicle platoon: longitudinal dynamics with first-order actuator lag, in gap coordinates.

Vehicle 0 leads and tracks a speed profile; vehicle i ≥ 1 follows vehicle i−1.
    leader   x_0 = (v_0, a_0):          v̇_0 = a_0,  ȧ_0 = (u_0 − a_0)/τ_0
    follower x_i = (e_i, v_i, a_i):     ė_i = v_{i−1} − v_i,  v̇_i = a_i,  ȧ_i = (u_i − a_i)/τ_i
e_i is the bumper-to-bumper gap to the predecessor [m], v speed [m/s], a acceleration [m/s²], u the commanded
acceleration [m/s²] (the powertrain tracks it with time constant τ_i [s]). Working in gaps keeps every state
bounded while the platoon drives on, and makes the minimum gap e_i ≥ d_min a local state constraint.
Jerk ȧ_i = (u_i − a_i)/τ_i is largest at the start of a zero-order-hold interval, so the mixed constraint
|u_i(k) − a_i(k)| ≤ τ_i j_max bounds the jerk over the whole interval exactly.
Spacing policy: desired gap d_i = r + h v_i (constant time headway h; h = 0 gives constant distance r);
spacing error δ_i = e_i − r − h v_i.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linear import CoupledLinearSystem, CouplingTerm, MixedConstraint, PolytopicConstraint, Subsystem, discretize_zoh

TOPOLOGIES = ("predecessor_follower", "bidirectional")


@dataclass(frozen=True)
class Platoon:
    """Per-vehicle parameters (sequences of length M, vehicle 0 is the leader) and the spacing policy."""

    time_constant: tuple[float, ...]        # τ_i [s]
    acceleration_min: tuple[float, ...]     # [m/s²] (negative: braking capability)
    acceleration_max: tuple[float, ...]     # [m/s²]
    jerk_limit: tuple[float, ...]           # |ȧ_i| ≤ limit [m/s³]
    speed_max: float = 40.0                 # 0 ≤ v_i ≤ speed_max [m/s]
    min_gap: float = 2.0                    # e_i ≥ d_min [m], hard
    standstill_gap: float = 5.0             # r [m]
    time_headway: float = 0.6               # h [s]; 0: constant distance
    topology: str = "predecessor_follower"

    @property
    def num_agents(self) -> int:
        return len(self.time_constant)

    def state_size(self, i: int) -> int:
        return 2 if i == 0 else 3

    @property
    def state_offsets(self) -> np.ndarray:
        """Start of each vehicle's states in the stacked state (and the total size last)."""
        return np.concatenate([[0], np.cumsum([self.state_size(i) for i in range(self.num_agents)])])

    def spacing_row(self) -> np.ndarray:
        """c with δ_i = c' x_i + (−r) for a follower's state (e, v, a)."""
        return np.array([1.0, -self.time_headway, 0.0])

    def desired_gap(self, speed: np.ndarray | float) -> np.ndarray | float:
        return self.standstill_gap + self.time_headway * np.asarray(speed)

    def continuous(self) -> tuple[np.ndarray, np.ndarray]:
        """(Ac, Bc) of the whole platoon; states stacked leader first, then followers in order."""
        M = self.num_agents
        offsets = self.state_offsets
        Ac, Bc = np.zeros((offsets[-1], offsets[-1])), np.zeros((offsets[-1], M))
        for i in range(M):
            v = offsets[i] + (0 if i == 0 else 1)   # index of v_i; a_i follows it
            tau = self.time_constant[i]
            Ac[v, v + 1] = 1.0
            Ac[v + 1, v + 1] = -1.0 / tau
            Bc[v + 1, i] = 1.0 / tau
            if i > 0:
                previous_v = offsets[i - 1] + (0 if i == 1 else 1)
                Ac[offsets[i], previous_v] = 1.0
                Ac[offsets[i], v] = -1.0
        return Ac, Bc

    def subsystems(self) -> list[Subsystem]:
        result = []
        for i in range(self.num_agents):
            a_lo, a_hi = self.acceleration_min[i], self.acceleration_max[i]
            leader = i == 0
            lower = np.array(([] if leader else [self.min_gap]) + [0.0, a_lo])
            upper = np.array(([] if leader else [np.inf]) + [self.speed_max, a_hi])
            n = lower.size
            jerk = self.time_constant[i] * self.jerk_limit[i]
            select_a = np.zeros((1, n))
            select_a[0, -1] = 1.0
            names = ("v", "a") if leader else ("e", "v", "a")
            result.append(Subsystem(
                name=f"vehicle_{i}", n_x=n, n_u=1,
                state_constraint=PolytopicConstraint.box(lower, upper),
                input_constraint=PolytopicConstraint.box(np.array([a_lo]), np.array([a_hi])),
                state_names=tuple(f"{s}_{i}" for s in names), input_names=(f"u_{i}",),
                state_units=(("m",) if not leader else ()) + ("m/s", "m/s^2"), input_units=("m/s^2",),
                mixed_constraint=MixedConstraint(np.vstack([-select_a, select_a]), np.array([[1.0], [-1.0]]),
                                                 np.array([jerk, jerk])),
            ))
        return result

    def discrete(self, sample_time: float, coupling_tolerance: float = 1e-9) -> CoupledLinearSystem:
        """Exact ZOH of the platoon (a follower's gap also picks up its predecessor's a and u over a step)."""
        A, B = discretize_zoh(*self.continuous(), sample_time)
        return CoupledLinearSystem.from_full(self.subsystems(), A, B, sample_time, coupling_tolerance)

    def weights(self, spacing: float, speed: float, acceleration: float, input_weight: float,
                coupling: float = 0.0) -> tuple[np.ndarray, np.ndarray, tuple[CouplingTerm, ...]]:
        """Plant-wide (Q, R): leader speed (v_0 − v̄)², followers' spacing error δ_i² and speed (v_i − v̄)²,
        everyone's a_i² and (u_i − ū)²; the bidirectional topology adds coupling·(δ_i − δ_{i+1})² so a vehicle
        also weighs the gap behind it (an objective coupling between neighbours, returned as pair terms owned
        by the vehicle in front)."""
        M = self.num_agents
        offsets = self.state_offsets
        Q = np.zeros((offsets[-1], offsets[-1]))
        c = self.spacing_row()
        for i in range(M):
            s = slice(offsets[i], offsets[i + 1])
            if i == 0:
                Q[s, s] += np.diag([speed, acceleration])
            else:
                Q[s, s] += spacing * np.outer(c, c) + np.diag([0.0, speed, acceleration])
        terms = []
        if self.topology == "bidirectional" and coupling > 0:
            for i in range(1, M - 1):
                pair = np.r_[c, -c]
                terms.append(CouplingTerm(i, i + 1, coupling * np.outer(pair, pair)))
                Q[offsets[i]:offsets[i + 2], offsets[i]:offsets[i + 2]] += terms[-1].W
        return Q, input_weight * np.eye(M), tuple(terms)

    def reference_states(self, leader_speed: np.ndarray, leader_acceleration: np.ndarray,
                         sample_time: float, follower_speeds=None) -> tuple[np.ndarray, np.ndarray]:
        """(x̄ S × n, ū S × M): the ideal platoon driving the leader's profile with zero spacing error.
        Zero spacing error e_i = r + h v_i needs ė_i = h a_i = v_{i−1} − v_i, so follower i's reference speed is
        its predecessor's passed through the first-order lag 1/(1 + h s) (exact for a held input); with h = 0
        every vehicle drives the leader's speed. Each lag has unit DC gain and no overshoot, so the reference
        itself is string stable. `follower_speeds`: the followers' reference speeds at step 0 (a platoon re-formed
        on the way, whose lags are not at rest; None: the leader's)."""
        speeds, accelerations = [np.asarray(leader_speed, float)], [np.asarray(leader_acceleration, float)]
        h = self.time_headway
        decay = np.exp(-sample_time / h) if h > 0 else 0.0
        for i in range(1, self.num_agents):
            ahead = speeds[-1]
            v = np.empty_like(ahead)
            v[0] = ahead[0] if follower_speeds is None else follower_speeds[i - 1]
            for k in range(1, ahead.size):
                v[k] = decay * v[k - 1] + (1.0 - decay) * ahead[k - 1]
            speeds.append(v)
            accelerations.append((ahead - v) / h if h > 0 else accelerations[-1])
        columns = [speeds[0], accelerations[0]]
        for i in range(1, self.num_agents):
            columns += [self.desired_gap(speeds[i]), speeds[i], accelerations[i]]
        return np.column_stack(columns), np.column_stack(accelerations)   # steady actuator: ū = ā


@dataclass(frozen=True)
class SpeedProfile:
    """Piecewise-linear leader speed: (time [s], speed [m/s]) knots; constant before the first and after the last."""

    times: tuple[float, ...]
    speeds: tuple[float, ...]

    def sample(self, sample_time: float, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(v̄(k), ā(k)) at t = k·T for k < count; ā is the profile's slope on [t, t + T)."""
        t = np.arange(count) * sample_time
        v = np.interp(t, self.times, self.speeds)
        a = (np.interp(t + sample_time, self.times, self.speeds) - v) / sample_time
        return v, a


def platoon_metrics(platoon: Platoon, x: np.ndarray, u: np.ndarray, reference_speed: np.ndarray,
                    floor: float = 0.01) -> dict:
    """Closed-loop platoon figures from states x (T+1 × n) and inputs u (T × M):
    - peak |δ_i| per follower [m] and the minimum gap [m];
    - string stability ratio max_{i≥2} ‖δ_i‖∞ / ‖δ_1‖∞: how much the spacing error the leader's manoeuvre causes
      behind it grows down the platoon (≤ 1: it does not grow); also the largest ratio of consecutive followers
      (stricter; heterogeneous actuators can exceed 1 there). Denominators below `floor` m count as `floor`;
    - RMS and peak jerk [m/s³] (comfort), leader speed RMS error against its profile [m/s]."""
    T = u.shape[0]
    gaps, speeds, accelerations = platoon_signals(platoon, x)
    peaks = np.max(np.abs(gaps - platoon.desired_gap(speeds[:, 1:])), axis=0)
    jerk = (u - accelerations[:T]) / np.asarray(platoon.time_constant)
    return {
        "peak_spacing_error": [float(p) for p in peaks],
        "min_gap": float(np.min(gaps)),
        "string_stability_ratio": float(np.max(peaks[1:] / max(peaks[0], floor), initial=0.0)),
        "consecutive_spacing_ratio": float(np.max(peaks[1:] / np.maximum(peaks[:-1], floor), initial=0.0)),
        "rms_jerk": float(np.sqrt(np.mean(jerk ** 2))),
        "max_jerk": float(np.max(np.abs(jerk))),
        "leader_speed_rms_error": float(np.sqrt(np.mean((speeds[:T + 1, 0] - reference_speed[:T + 1]) ** 2))),
    }


def platoon_signals(platoon: Platoon, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gaps T+1 × M−1 [m], speeds T+1 × M [m/s], accelerations T+1 × M [m/s²]) from stacked states."""
    M = platoon.num_agents
    offsets = platoon.state_offsets
    gaps = np.column_stack([x[:, offsets[i]] for i in range(1, M)])
    speeds = np.column_stack([x[:, offsets[i] + (0 if i == 0 else 1)] for i in range(M)])
    accelerations = np.column_stack([x[:, offsets[i + 1] - 1] for i in range(M)])
    return gaps, speeds, accelerations
