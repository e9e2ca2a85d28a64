"""`dual_decomposition`: prices on a constraint shared by all agents' inputs, each agent on its own subsystem
(coordination/dual_decomposition.py)."""
from __future__ import annotations

from ..coordination.base import Agent
from ..coordination.dual_decomposition import DualDecompositionAgent, check_decoupled, shared_constraint_maps
from ..coordination.scheme import AgentRequest, Problem, Scheme
from ..mpc.input_parametrization import TAILS


def dual_decomposition_agent(request: AgentRequest) -> Agent:
    design = request.design
    maps, bound = shared_constraint_maps(design)
    check_decoupled(design)
    local = design.local_design(request.agent_id)
    block = local.block(0, "plant", "affected", request.backend)
    return DualDecompositionAgent(request.agent_id, block, local.terminal_gain(), request.stopping, maps, bound,
                                  design.dual_step_size)


def dual_decomposition_refusal(problem: Problem) -> str | None:
    """At load, what the builder would refuse: no shared constraint to price, or agents coupled in their dynamics."""
    system = problem.system
    if system.shared_input_constraint is None:
        return ("it prices a constraint shared by all agents' inputs and the model has none (e.g. "
                "model.masses.net_force_limit)")
    coupled = next((i for i in range(system.num_agents) if system.dynamic_neighbours(i)), None)
    if coupled is not None:
        return (f"it needs dynamically decoupled agents and agent {coupled} is coupled to "
                f"{sorted(system.dynamic_neighbours(coupled))}")
    return None


SCHEMES = (Scheme("dual_decomposition", "prices on a shared input constraint, dynamically decoupled agents",
                  build_linear=dual_decomposition_agent, check=dual_decomposition_refusal,
                  coupled_limits="at_convergence", control_tails=TAILS),)
