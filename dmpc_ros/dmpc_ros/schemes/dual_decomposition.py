"""`dual_decomposition`: prices on a constraint shared by all agents' inputs, each agent on its own subsystem
(coordination/dual_decomposition.py)."""
from __future__ import annotations

from ..coordination.base import Agent
from ..coordination.dual_decomposition import DualDecompositionAgent, check_decoupled, shared_constraint_maps
from ..coordination.scheme import AgentRequest, Scheme


def dual_decomposition_agent(request: AgentRequest) -> Agent:
    design = request.design
    maps, bound = shared_constraint_maps(design)
    check_decoupled(design)
    local = design.local_design(request.agent_id)
    block = local.block(0, "plant", "affected", request.backend)
    return DualDecompositionAgent(request.agent_id, block, local.terminal_gain(), request.stopping, maps, bound,
                                  design.dual_step_size)


SCHEMES = (Scheme("dual_decomposition", "prices on a shared input constraint, dynamically decoupled agents",
                  build_linear=dual_decomposition_agent, coupled_limits="at_convergence"),)
