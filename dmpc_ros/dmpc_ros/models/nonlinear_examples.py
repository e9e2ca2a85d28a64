"""The shipped nonlinear examples (`model: {type: nonlinear, example: NAME, parameters: {...}}`), in SI units.

- `four_tank`: Johansson's quadruple tank (2000, P−) with its √h outflows, two agents (one per pump, as the linear
  examples/four_tank.yaml), setpoint changes across operating points;
- `water_tanks`: M tanks in a row with Torricelli outflow and pipes between neighbours;
- `spring_chain`: M masses between two walls, hardening springs F = k Δ + k₃ Δ³;
- `unicycle_formation`: planar robots ẋ = v cos θ, ẏ = v sin θ, θ̇ = ω in a formation on a straight path, with
  a minimum distance between neighbours.
Each builder's keyword arguments are its parameters; their defaults are documented choices.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import casadi as ca
import numpy as np

from .nonlinear import NeighbourCoupling, NonlinearNetwork, NonlinearSetpoint, NonlinearSubsystem
from .robot import UnicycleBase

GRAVITY = 9.81   # [m/s²]
LEVEL_FLOOR = 1e-4   # [m] √h is evaluated at max(h, floor): smooth enough, and the limits keep h above it


def torricelli(area: float, h) -> ca.SX:
    """Outflow a √(2 g h) [m³/s] through an orifice of `area` [m²] at level h [m]."""
    return area * ca.sqrt(2 * GRAVITY * ca.fmax(h, LEVEL_FLOOR))


def four_tank(sample_time: float = 5.0, h1: tuple = (0.124, 0.174, 0.134), h2: tuple = (0.127, 0.167, 0.187),
              setpoint_times: tuple = (0.0, 50.0, 400.0), min_level: float = 0.002, max_level: float = 0.20,
              max_voltage: float = 6.0,
              lower_weight: float = 10000.0, upper_weight: float = 100.0, input_weight: float = 0.1,
              substeps: int = 4, terminal_weight: float = 1.0) -> NonlinearNetwork:
    """Quadruple tank, P− (Johansson, Tables I/II): A1 = A3 = 28 cm², A2 = A4 = 32 cm², a1 = a3 = 0.071 cm²,
    a2 = a4 = 0.057 cm², k1 = 3.33, k2 = 3.35 cm³/(V s), γ1 = 0.70, γ2 = 0.60. Agents: left (h1, h3; v1), right
    (h2, h4; v2); the lower levels h1, h2 follow the setpoints, the rest is the steady state."""
    A = np.array([28e-4, 32e-4, 28e-4, 32e-4])
    a = np.array([0.071e-4, 0.057e-4, 0.071e-4, 0.057e-4])
    k, gamma = np.array([3.33e-6, 3.35e-6]), np.array([0.70, 0.60])
    if not (len(h1) == len(h2) == len(setpoint_times)):
        raise ValueError("four_tank: h1, h2 and setpoint_times need the same number of entries")

    def left(x, u):
        return ca.vertcat((-torricelli(a[0], x[0]) + torricelli(a[2], x[1]) + gamma[0] * k[0] * u[0]) / A[0],
                          -torricelli(a[2], x[1]) / A[2])

    def right(x, u):
        return ca.vertcat((-torricelli(a[1], x[0]) + torricelli(a[3], x[1]) + gamma[1] * k[1] * u[0]) / A[1],
                          -torricelli(a[3], x[1]) / A[3])

    def pump2_fills_tank3(x, u, x_j, u_j):
        return ca.vertcat(0, (1 - gamma[1]) * k[1] * u_j[0] / A[2])

    def pump1_fills_tank4(x, u, x_j, u_j):
        return ca.vertcat(0, (1 - gamma[0]) * k[0] * u_j[0] / A[3])

    def steady(level1: float, level2: float) -> NonlinearSetpoint:
        flow = lambda i, h: a[i] * np.sqrt(2 * GRAVITY * h)   # noqa: E731
        # a1 √(2g h1) = γ1 k1 v1 + (1 − γ2) k2 v2,  a2 √(2g h2) = (1 − γ1) k1 v1 + γ2 k2 v2
        v = np.linalg.solve([[gamma[0] * k[0], (1 - gamma[1]) * k[1]], [(1 - gamma[0]) * k[0], gamma[1] * k[1]]],
                            [flow(0, level1), flow(1, level2)])
        h3 = ((1 - gamma[1]) * k[1] * v[1] / a[2]) ** 2 / (2 * GRAVITY)
        h4 = ((1 - gamma[0]) * k[0] * v[0] / a[3]) ** 2 / (2 * GRAVITY)
        return NonlinearSetpoint(0.0, np.array([level1, h3, level2, h4]), v)

    setpoints = []
    for t, l1, l2 in zip(setpoint_times, h1, h2):
        s = steady(l1, l2)
        setpoints.append(NonlinearSetpoint(float(t), s.state, s.input))
    levels = (np.full(2, min_level), np.full(2, max_level))
    agents = (NonlinearSubsystem("left", ("h1", "h3"), ("v1",), left, *levels, [0.0], [max_voltage],
                                 state_units=("m", "m"), input_units=("V",)),
              NonlinearSubsystem("right", ("h2", "h4"), ("v2",), right, *levels, [0.0], [max_voltage],
                                 state_units=("m", "m"), input_units=("V",)))
    Q = np.diag([lower_weight, upper_weight])
    R = np.array([[input_weight]])
    return NonlinearNetwork(agents, (NeighbourCoupling(0, 1, dynamics=pump2_fills_tank3),
                                     NeighbourCoupling(1, 0, dynamics=pump1_fills_tank4)),
                            sample_time, (Q, Q), (R, R), tuple(setpoints), substeps=substeps,
                            terminal_weight=terminal_weight)


def water_tanks(tanks: int = 4, sample_time: float = 2.0, area: float = 0.02, orifice: float = 5e-5,
                pipe: float = 3e-5, levels: tuple | None = None, max_level: float = 0.6, max_inflow: float = 4e-4,
                level_weight: float = 1e4, inflow_weight: float = 1e6, substeps: int = 4,
                terminal_weight: float = 1.0) -> NonlinearNetwork:
    """M tanks in a row: A ḣ_i = q_i − a √(2 g h_i) + Σ_j c s(h_j − h_i),
    s(Δ) = Δ √(2 g) / (Δ² + ε²)^¼ (a smooth signed √: ε = 1 mm), inflow q_i ∈ [0, max_inflow] [m³/s].
    Setpoint levels default to 0.2 … 0.4 m."""
    if tanks < 2:
        raise ValueError(f"water_tanks: tanks must be ≥ 2, got {tanks}")
    targets = np.linspace(0.2, 0.4, tanks) if levels is None else np.asarray(levels, float)
    if targets.size != tanks:
        raise ValueError(f"water_tanks: levels has {targets.size} entries, expected {tanks}")
    epsilon = 1e-3

    def signed_root(delta):
        return delta * np.sqrt(2 * GRAVITY) / (delta ** 2 + epsilon ** 2) ** 0.25

    def own(x, u):
        return ca.vertcat((u[0] - torricelli(orifice, x[0])) / area)

    def exchange(x, u, x_j, u_j):
        return ca.vertcat(pipe * signed_root(x_j[0] - x[0]) / area)

    couplings = tuple(NeighbourCoupling(i, j, dynamics=exchange) for i in range(tanks) for j in (i - 1, i + 1)
                      if 0 <= j < tanks)
    inflow = [orifice * np.sqrt(2 * GRAVITY * targets[i])
              - sum(pipe * float(signed_root(targets[j] - targets[i])) for j in (i - 1, i + 1) if 0 <= j < tanks)
              for i in range(tanks)]
    if min(inflow) < 0 or max(inflow) > max_inflow:
        raise ValueError(f"water_tanks: the levels {targets.tolist()} need inflows {np.round(inflow, 6).tolist()} "
                         f"outside [0, {max_inflow}] m³/s")
    agents = tuple(NonlinearSubsystem(f"tank_{i}", (f"h_{i}",), (f"q_{i}",), own, [0.01], [max_level], [0.0],
                                      [max_inflow], state_units=("m",), input_units=("m³/s",)) for i in range(tanks))
    return uniform(agents, couplings, sample_time, np.array([[level_weight]]), np.array([[inflow_weight]]),
                   substeps, terminal_weight, setpoints=(NonlinearSetpoint(0.0, targets, np.array(inflow)),))


def spring_chain(masses: int = 5, sample_time: float = 0.2, mass: float = 1.0, stiffness: float = 1.0,
                 cubic_stiffness: float = 2.0, damping: float = 0.2, force_limit: float = 1.0,
                 position_limit: float = 2.0, velocity_limit: float = 2.0, position_weight: float = 10.0,
                 velocity_weight: float = 1.0, force_weight: float = 1.0, substeps: int = 2,
                 terminal_weight: float = 1.0) -> NonlinearNetwork:
    """M masses in a row between two walls, each joined to the next by a hardening spring F = k Δ + k₃ Δ³
    (Δ the stretch), with viscous damping and a force input per mass; setpoint: every mass at rest at 0."""
    if masses < 1:
        raise ValueError(f"spring_chain: masses must be ≥ 1, got {masses}")

    def spring(delta):
        return stiffness * delta + cubic_stiffness * delta ** 3

    def own(x, u, walls=1):
        return ca.vertcat(x[1], (-walls * spring(x[0]) - damping * x[1] + u[0]) / mass)

    def to_neighbour(x, u, x_j, u_j):
        return ca.vertcat(0, spring(x_j[0] - x[0]) / mass)

    def dynamics_of(i: int) -> Callable:
        walls = int(i == 0) + int(i == masses - 1)
        return lambda x, u: own(x, u, walls)

    return mass_line(masses, dynamics_of, lambda i: to_neighbour, sample_time, (position_limit, velocity_limit,
                     force_limit), (position_weight, velocity_weight, force_weight), substeps, terminal_weight)


def three_masses(sample_time: float = 0.1, mass: tuple = (1.0, 1.5, 2.0), stiffness: float = 0.33,
                 coupling_stiffness: float = 0.5, damping: float = 1.1, force_limit: float = 1.0,
                 position_limit: float = 1.5, velocity_limit: float = 1.5, position_weight: float = 1.0,
                 velocity_weight: float = 1.0, force_weight: float = 0.1, substeps: int = 2,
                 terminal_weight: float = 1.0) -> NonlinearNetwork:
    """Three masses on a line (the benchmark of Chanfreut, Maestre, Zhu & Heemels, whose numbers the text lost):
    each hangs on a nonlinear spring F = k·p·e^(−p) (the single-mass example of Li & Shi 2013 and Liu, Shi &
    Constantinescu 2014, as we read them: k = 0.33 N/m, damping 1.1 N s/m) and is joined to the next by a linear
    spring k_c (N/m); a force input per mass; setpoint: all at rest at 0. Masses, k_c, limits and weights are our
    choices (scenario three_mass_horizons)."""
    masses = len(mass)
    if masses < 1:
        raise ValueError(f"three_masses: mass must list at least one mass, got {mass!r}")

    def dynamics_of(i: int) -> Callable:
        return lambda x, u: ca.vertcat(x[1], (-stiffness * x[0] * ca.exp(-x[0]) - damping * x[1] + u[0]) / mass[i])

    def coupling_of(i: int) -> Callable:
        return lambda x, u, x_j, u_j: ca.vertcat(0, coupling_stiffness * (x_j[0] - x[0]) / mass[i])

    return mass_line(masses, dynamics_of, coupling_of, sample_time, (position_limit, velocity_limit, force_limit),
                     (position_weight, velocity_weight, force_weight), substeps, terminal_weight)


def mass_line(masses: int, dynamics_of: Callable, coupling_of: Callable, sample_time: float,
              limits: tuple[float, float, float], weights: tuple[float, float, float], substeps: int,
              terminal_weight: float) -> NonlinearNetwork:
    """`masses` masses in a row (states p, v; a force each), agent i's dynamics `dynamics_of(i)` and its terms from
    each neighbour `coupling_of(i)`; box limits and diagonal weights (position, velocity, force); rest at 0."""
    position_limit, velocity_limit, force_limit = limits
    position_weight, velocity_weight, force_weight = weights
    couplings = tuple(NeighbourCoupling(i, j, dynamics=coupling_of(i)) for i in range(masses) for j in (i - 1, i + 1)
                      if 0 <= j < masses)
    agents = tuple(NonlinearSubsystem(f"mass_{i}", (f"p_{i}", f"v_{i}"), (f"F_{i}",), dynamics_of(i),
                                      [-position_limit, -velocity_limit], [position_limit, velocity_limit],
                                      [-force_limit], [force_limit], state_units=("m", "m/s"), input_units=("N",))
                   for i in range(masses))
    return uniform(agents, couplings, sample_time, np.diag([position_weight, velocity_weight]),
                   np.array([[force_weight]]), substeps, terminal_weight,
                   setpoints=(NonlinearSetpoint(0.0, np.zeros(2 * masses), np.zeros(masses)),))


def unicycle_formation(robots: int = 4, sample_time: float = 0.2, speed: float = 0.3, spacing: float = 1.0,
                       min_distance: float = 0.6, max_speed: float = 0.8, max_turn_rate: float = 1.5,
                       position_weight: float = 1.0, heading_weight: float = 0.1, speed_weight: float = 0.5,
                       turn_weight: float = 0.1, formation_weight: float = 2.0, substeps: int = 2,
                       terminal_weight: float = 1.0, distance_margin: float = 0.01) -> NonlinearNetwork:
    """Robots with the true unicycle kinematics (inputs v [m/s] and ω [rad/s]) in a square (or line) formation
    whose centre drives along the x axis at `speed`; neighbours in the ring keep their offsets (a formation cost
    w ‖p_i − p_j − (δ_i − δ_j)‖²) and at least `min_distance` apart (‖p_i − p_j‖² ≥ d², a pair
    constraint). The
    predictions keep `distance_margin` [m] more, a back-off for the RK4 model's error against the true kinematics."""
    if robots < 2:
        raise ValueError(f"unicycle_formation: robots must be ≥ 2, got {robots}")
    angles = 2 * np.pi * np.arange(robots) / robots + np.pi / 4
    radius = spacing / (2 * np.sin(np.pi / robots))
    offsets = radius * np.column_stack([np.cos(angles), np.sin(angles)])

    def kinematics(x, u):
        return ca.vertcat(u[0] * ca.cos(x[2]), u[0] * ca.sin(x[2]), u[1])

    def formation_cost(i: int, j: int) -> Callable:
        delta = offsets[i] - offsets[j]
        return lambda x, x_j: formation_weight * ca.sumsqr(x[:2] - x_j[:2] - delta)

    def apart(x, x_j):
        return (min_distance + distance_margin) ** 2 - ca.sumsqr(x[:2] - x_j[:2])

    ring = [(i, (i + 1) % robots) for i in range(robots)] if robots > 2 else [(0, 1)]
    couplings = []
    for i, j in ring:
        couplings.append(NeighbourCoupling(i, j, cost=formation_cost(i, j), constraint=apart))
        couplings.append(NeighbourCoupling(j, i, cost=formation_cost(j, i)))
    big = 1e3
    agents = tuple(NonlinearSubsystem(f"robot_{i}", (f"x_{i}", f"y_{i}", f"theta_{i}"), (f"v_{i}", f"omega_{i}"),
                                      kinematics, [-big, -big, -np.pi], [big, big, np.pi],
                                      [0.0, -max_turn_rate], [max_speed, max_turn_rate],
                                      state_units=("m", "m", "rad"), input_units=("m/s", "rad/s"))
                   for i in range(robots))

    def reference(t: float):
        centre = np.array([speed * t, 0.0])
        states = np.concatenate([[*(centre + offsets[i]), 0.0] for i in range(robots)])
        return states, np.tile([speed, 0.0], robots)

    def metrics(network, x: np.ndarray, u: np.ndarray) -> dict:
        """Smallest distance between ring neighbours (and its shortfall, a violation) and the formation error."""
        positions = x.reshape(x.shape[0], robots, 3)[:, :, :2]
        gaps = np.array([np.linalg.norm(positions[:, i] - positions[:, j], axis=1) for i, j in ring])
        centre = positions.mean(axis=1, keepdims=True)
        error = np.linalg.norm(positions - centre - offsets[None], axis=2)
        return {"min_neighbour_distance": float(gaps.min()), "required_min_distance": min_distance,
                "constraint_violation": max(0.0, float(min_distance - gaps.min())),
                "final_formation_error": float(error[-1].max()),
                "rms_formation_error": float(np.sqrt(np.mean(error ** 2)))}

    Q = np.diag([position_weight, position_weight, heading_weight])
    network = uniform(agents, tuple(couplings), sample_time, Q, np.diag([speed_weight, turn_weight]), substeps,
                      terminal_weight, reference=reference)
    return dataclasses.replace(network, metrics=metrics, positions=tuple((0, 1) for _ in range(robots)),
                               safety_radius=min_distance / 2, robot_base=UnicycleBase())


def uniform(agents: tuple, couplings: tuple, sample_time: float, Q: np.ndarray, R: np.ndarray, substeps: int,
            terminal_weight: float, **references) -> NonlinearNetwork:
    """A network whose agents all have the weights Q and R (setpoints= or reference= as NonlinearNetwork's)."""
    return NonlinearNetwork(agents, couplings, sample_time, (Q,) * len(agents), (R,) * len(agents),
                            substeps=substeps, terminal_weight=terminal_weight, **references)


EXAMPLES: dict[str, Callable[..., NonlinearNetwork]] = {
    "four_tank": four_tank, "water_tanks": water_tanks, "spring_chain": spring_chain,
    "unicycle_formation": unicycle_formation, "three_masses": three_masses,
}


def example_parameters(name: str) -> dict[str, object]:
    """The example's parameters and their defaults."""
    return {p.name: p.default for p in inspect.signature(EXAMPLES[name]).parameters.values()}
