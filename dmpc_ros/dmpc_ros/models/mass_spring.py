"""Mass-spring-damper chain: M masses on a line, each pushed by its own force, coupled by springs and dampers.

State of mass i: (position p_i [m] from its rest position, velocity v_i [m/s]); input: force u_i [N].
    m_i p̈_i = -k_w,i p_i - c_w,i v_i + Σ_{j=i±1} (k_ij (p_j - p_i) + c_ij (v_j - v_i)) + u_i
Discretized exactly (zero-order hold) as one coupled system, then split into per-mass blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linear import CoupledLinearSystem, PolytopicConstraint, Subsystem, discretize_zoh


@dataclass(frozen=True)
class MassSpringChain:
    """Per-mass parameters (sequences of length M; the *_to_next entries of the last mass are ignored)."""

    mass: tuple[float, ...]                 # [kg]
    spring_to_next: tuple[float, ...]       # [N/m] between mass i and i+1
    damper_to_next: tuple[float, ...]       # [N s/m]
    spring_to_wall: tuple[float, ...]       # [N/m] from mass i to the wall
    damper_to_wall: tuple[float, ...]       # [N s/m]
    force_limit: tuple[float, ...]          # |u_i| ≤ limit [N] (inf: unconstrained)
    position_limit: tuple[float, ...]       # |p_i| ≤ limit [m]
    velocity_limit: tuple[float, ...]       # |v_i| ≤ limit [m/s]
    net_force_limit: float = np.inf         # |Σ_i u_i| ≤ limit [N]: a budget all agents share (the mount's load)

    @property
    def num_masses(self) -> int:
        return len(self.mass)

    @property
    def num_agents(self) -> int:
        """One agent per mass."""
        return len(self.mass)

    def continuous(self) -> tuple[np.ndarray, np.ndarray]:
        """Continuous-time (Ac, Bc) of the whole chain, states ordered (p_0, v_0, p_1, v_1, ...)."""
        M = self.num_masses
        stiffness, damping = np.zeros((M, M)), np.zeros((M, M))
        for i in range(M):
            stiffness[i, i] += self.spring_to_wall[i]
            damping[i, i] += self.damper_to_wall[i]
            if i + 1 < M:
                k, c = self.spring_to_next[i], self.damper_to_next[i]
                stiffness[np.ix_([i, i + 1], [i, i + 1])] += k * np.array([[1, -1], [-1, 1]])
                damping[np.ix_([i, i + 1], [i, i + 1])] += c * np.array([[1, -1], [-1, 1]])
        inv_mass = 1.0 / np.asarray(self.mass, float)
        Ac, Bc = np.zeros((2 * M, 2 * M)), np.zeros((2 * M, M))
        for i in range(M):
            Ac[2 * i, 2 * i + 1] = 1.0
            Ac[2 * i + 1, 0::2] = -inv_mass[i] * stiffness[i]
            Ac[2 * i + 1, 1::2] = -inv_mass[i] * damping[i]
            Bc[2 * i + 1, i] = inv_mass[i]
        return Ac, Bc

    def subsystems(self) -> list[Subsystem]:
        result = []
        for i in range(self.num_masses):
            x_limit = np.array([self.position_limit[i], self.velocity_limit[i]], float)
            u_limit = np.array([self.force_limit[i]], float)
            result.append(Subsystem(
                name=f"mass_{i}", n_x=2, n_u=1,
                state_constraint=PolytopicConstraint.box(-x_limit, x_limit),
                input_constraint=PolytopicConstraint.box(-u_limit, u_limit),
                state_names=(f"p_{i}", f"v_{i}"), input_names=(f"F_{i}",),
                state_units=("m", "m/s"), input_units=("N",),
            ))
        return result

    def discrete(self, sample_time: float, coupling_tolerance: float = 1e-9) -> CoupledLinearSystem:
        """Exact ZOH of the chain; couplings below tolerance (relative) are dropped to keep the graph sparse."""
        A, B = discretize_zoh(*self.continuous(), sample_time)
        shared = None
        if np.isfinite(self.net_force_limit):
            ones = np.ones((1, self.num_masses))
            shared = PolytopicConstraint(np.vstack([ones, -ones]), np.full(2, float(self.net_force_limit)))
        return CoupledLinearSystem.from_full(self.subsystems(), A, B, sample_time, coupling_tolerance, shared)


def mass_spring_chain(num_masses: int, mass: float = 1.0, spring: float = 1.0, damper: float = 0.1,
                      wall_spring: float = 0.0, force_limit: float = 1.0, position_limit: float = np.inf,
                      velocity_limit: float = np.inf, wall_at_both_ends: bool = True) -> MassSpringChain:
    """A uniform chain; with wall_at_both_ends the first and last masses also hang on springs to the walls."""
    if num_masses < 1:
        raise ValueError(f"num_masses must be ≥ 1, got {num_masses}")
    to_wall = [wall_spring] * num_masses
    if wall_at_both_ends:
        to_wall[0] += spring
        to_wall[-1] += spring
    damper_wall = [damper if w > 0 else 0.0 for w in to_wall]
    repeat = lambda v: (float(v),) * num_masses  # noqa: E731
    return MassSpringChain(
        mass=repeat(mass), spring_to_next=repeat(spring), damper_to_next=repeat(damper),
        spring_to_wall=tuple(to_wall), damper_to_wall=tuple(damper_wall), force_limit=repeat(force_limit),
        position_limit=repeat(position_limit), velocity_limit=repeat(velocity_limit),
    )
