"""`model.type: mass_spring_chain`: M masses on a line coupled by springs and dampers, regulated to position
setpoints (the steady force is computed); optional force budget shared by all masses."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import block_diag

from ..models import MassSpringChain
from ..models.layout import PlanarLayout
from ..models.linear import CoupledLinearSystem
from ..mpc.reference import ReferenceTrajectory
from ..scenarios.family import FamilyParts, ModelFamily
from ..scenarios.validation import ScenarioError, agent_values, check_number, number, parse_rows, per_agent, \
    reject_unknown, section, weight_matrix
from ..scenarios.parameters import MAX_AGENTS


@dataclass(frozen=True)
class ChainSettings:
    position_reference: tuple[float, ...]   # setpoint per mass [m] (velocity setpoint 0)


class MassSpringChainFamily(ModelFamily):
    name = "mass_spring_chain"
    model_fields = frozenset({"masses"})
    controller_fields = frozenset({"state_weight", "input_weight", "position_reference"})

    def parse(self, model: dict, controller: dict, sample_time: float) -> FamilyParts:
        chain = parse_chain(section(model, "model.", "masses", required=True))
        M = chain.num_masses
        Q = block_diag(*[weight_matrix(q, f"controller.state_weight{suffix}", 2)
                         for q, suffix in agent_values(controller.get("state_weight", [1.0, 0.1]), M)])
        R = block_diag(*[weight_matrix(r, f"controller.input_weight{suffix}", 1)
                         for r, suffix in agent_values(controller.get("input_weight", [0.1]), M)])
        targets = tuple(per_agent(controller, "controller.", "position_reference", M, 0.0))
        for i, (target, limit) in enumerate(zip(targets, chain.position_limit)):
            if abs(target) > limit:
                raise ScenarioError(f"controller.position_reference[{i}]: {target} is not allowed: outside the "
                                    f"position limit ±{limit} of mass {i}")
        return FamilyParts(chain, Q, R, (), ChainSettings(targets))

    def initial_state(self, value: object, parts: FamilyParts, sample_time: float) -> np.ndarray:
        return parse_rows(value, "simulation.initial_state", parts.model.num_agents, ("position", "velocity"),
                          noun="pairs (one per agent)")

    def reference(self, scenario, system: CoupledLinearSystem) -> ReferenceTrajectory:
        """Steady state (x̄, ū) for the position setpoints: x̄ = (p̄_i, 0), ū solves (I − A) x̄ = B ū."""
        x_ref = np.zeros(system.n_x)
        x_ref[0::2] = scenario.family_settings.position_reference or 0.0
        if not np.any(x_ref):
            return ReferenceTrajectory.constant(x_ref, np.zeros(system.n_u))
        A, B = system.full_matrices()
        u_ref, *_ = np.linalg.lstsq(B, x_ref - A @ x_ref, rcond=None)
        return ReferenceTrajectory.constant(x_ref, u_ref)

    def layout(self, scenario) -> PlanarLayout:
        """Mass i at x = i·s + p_i along a line (s: three position limits, at least 1 m), its position limits as
        boundaries."""
        chain = scenario.model
        limits = [limit for limit in chain.position_limit if np.isfinite(limit)]
        spacing = max([1.0] + [3.0 * limit for limit in limits])
        M = chain.num_masses
        walls = tuple(tuple(np.array([[i * spacing + side * limit, -0.3], [i * spacing + side * limit, 0.3]])
                            for side in (-1, 1)) if np.isfinite(limit) else ()
                      for i, limit in enumerate(chain.position_limit))
        return PlanarLayout(tuple(np.array([[1.0, 0.0], [0.0, 0.0]]) for _ in range(M)),
                            tuple(np.array([i * spacing, 0.0]) for i in range(M)), boundaries=walls)



def per_link(masses: dict, path: str, key: str, M: int, default: float) -> tuple[float, ...]:
    """One value per link between neighbouring masses (M − 1 of them) or one for all; the model's tuple has an
    unused last entry (mass M−1 has no next), 0. A list of M values is refused: its last entry would be ignored."""
    value = masses.get(key, default)
    if isinstance(value, list) and len(value) != M - 1:
        raise ScenarioError(f"{path}{key}: has {len(value)} entries, expected {M - 1} (one per link between "
                            f"neighbouring masses) or one number")
    values = [check_number(v, f"{path}{key}[{i}]", minimum=0.0) for i, v in enumerate(value)] \
        if isinstance(value, list) else [check_number(value, f"{path}{key}", minimum=0.0)] * (M - 1)
    return tuple(values) + (0.0,)


def parse_chain(masses: dict) -> MassSpringChain:
    path = "model.masses."
    reject_unknown(masses, path, {"count", "mass", "spring_to_next", "damper_to_next", "spring_to_wall",
                                  "damper_to_wall", "force_limit", "position_limit", "velocity_limit",
                                  "net_force_limit"})
    M = number(masses, path, "count", minimum=1, maximum=MAX_AGENTS, integer=True)
    positive = dict(minimum=0.0, strict_minimum=True)
    nonnegative = dict(minimum=0.0)
    ends = [1.0 if i in (0, M - 1) else 0.0 for i in range(M)]
    return MassSpringChain(
        mass=tuple(per_agent(masses, path, "mass", M, 1.0, **positive)),
        spring_to_next=per_link(masses, path, "spring_to_next", M, 1.0),
        damper_to_next=per_link(masses, path, "damper_to_next", M, 0.1),
        spring_to_wall=tuple(per_agent(masses, path, "spring_to_wall", M, ends, **nonnegative)
                             if "spring_to_wall" in masses else ends),
        damper_to_wall=tuple(per_agent(masses, path, "damper_to_wall", M, 0.0, **nonnegative)),
        force_limit=tuple(per_agent(masses, path, "force_limit", M, float("inf"), **positive)),
        position_limit=tuple(per_agent(masses, path, "position_limit", M, float("inf"), **positive)),
        velocity_limit=tuple(per_agent(masses, path, "velocity_limit", M, float("inf"), **positive)),
        net_force_limit=number(masses, path, "net_force_limit", default=float("inf"), **positive),
    )


FAMILY = MassSpringChainFamily()
