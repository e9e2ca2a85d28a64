"""A third-party model family, as a user's own package would ship it: rooms in a row exchanging heat through
their walls, each heated by its own radiator, registered through the `dmpc_ros.models` entry point (see the
dist-info beside it). Nothing in dmpc_ros names it.

Room i: C_i dT_i/dt = −T_i/R_out + Σ_j (T_j − T_i)/R_wall + P_i; state T_i [K] above outside, input P_i [kW].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmpc_ros.models import CoupledLinearSystem, PolytopicConstraint, Subsystem, discretize_zoh
from dmpc_ros.mpc.reference import ReferenceTrajectory
from dmpc_ros.scenarios import FamilyParts, ModelFamily
from dmpc_ros.scenarios.validation import number, parse_rows, per_agent, section


@dataclass(frozen=True)
class ThermalRooms:
    capacity: tuple[float, ...]   # C_i [kWh/K]
    outside: float                # R_out [K/kW]
    wall: float                   # R_wall [K/kW]
    power_limit: float            # 0 ≤ P_i ≤ limit [kW]

    @property
    def num_agents(self) -> int:
        return len(self.capacity)

    def subsystems(self) -> list[Subsystem]:
        return [Subsystem(f"room_{i}", 1, 1, PolytopicConstraint.box(np.array([-5.0]), np.array([15.0])),
                          PolytopicConstraint.box(np.array([0.0]), np.array([self.power_limit])),
                          (f"T_{i}",), (f"P_{i}",), ("K",), ("kW",)) for i in range(self.num_agents)]

    def discrete(self, sample_time: float, coupling_tolerance: float = 0.0) -> CoupledLinearSystem:
        M = self.num_agents
        Ac, Bc = np.zeros((M, M)), np.diag(1.0 / np.asarray(self.capacity))
        for i in range(M):
            Ac[i, i] -= 1.0 / self.outside
            for j in (i - 1, i + 1):
                if 0 <= j < M:
                    Ac[i, i] -= 1.0 / self.wall
                    Ac[i, j] += 1.0 / self.wall
        Ac = Bc @ Ac
        A, B = discretize_zoh(Ac, Bc, sample_time / 3600.0)   # capacities in kWh/K: time in hours
        return CoupledLinearSystem.from_full(self.subsystems(), A, B, sample_time, coupling_tolerance)


class ThermalRoomsFamily(ModelFamily):
    name = "thermal_rooms"
    model_fields = frozenset({"rooms"})
    controller_fields = frozenset({"comfort_weight", "energy_weight", "temperature_setpoint"})

    def parse(self, model: dict, controller: dict, sample_time: float) -> FamilyParts:
        rooms = section(model, "model.", "rooms", required=True)
        count = number(rooms, "model.rooms.", "count", minimum=1, maximum=100, integer=True)
        plant = ThermalRooms(tuple(per_agent(rooms, "model.rooms.", "capacity", count, 0.5, minimum=0.0,
                                             strict_minimum=True)),
                             number(rooms, "model.rooms.", "outside_resistance", default=10.0, minimum=0.1),
                             number(rooms, "model.rooms.", "wall_resistance", default=4.0, minimum=0.1),
                             number(rooms, "model.rooms.", "power_limit", default=2.0, minimum=0.0,
                                    strict_minimum=True))
        comfort = number(controller, "controller.", "comfort_weight", default=1.0, minimum=0.0, strict_minimum=True)
        energy = number(controller, "controller.", "energy_weight", default=0.1, minimum=0.0, strict_minimum=True)
        setpoint = number(controller, "controller.", "temperature_setpoint", default=5.0, minimum=-5.0, maximum=15.0)
        return FamilyParts(plant, comfort * np.eye(count), energy * np.eye(count), (), setpoint)

    def initial_state(self, value, parts: FamilyParts, sample_time: float) -> np.ndarray:
        return parse_rows(value, "simulation.initial_state", parts.model.num_agents, ("T",))

    def reference(self, scenario, system: CoupledLinearSystem) -> ReferenceTrajectory:
        x_ref = np.full(system.n_x, scenario.family_settings)
        A, B = system.full_matrices()
        return ReferenceTrajectory.constant(x_ref, np.linalg.solve(B, x_ref - A @ x_ref))

    def metrics(self, scenario, x, u) -> dict:
        return {"energy_kwh": float(np.sum(u) * scenario.sample_time / 3600.0)}


def three_rooms():
    """A scenario factory registered under the entry point group dmpc_ros.scenarios (`dmpc sim three_rooms`)."""
    from pathlib import Path

    from dmpc_ros.scenarios import load_scenario

    return load_scenario(str(Path(__file__).resolve().parents[1] / "rooms.yaml"))
