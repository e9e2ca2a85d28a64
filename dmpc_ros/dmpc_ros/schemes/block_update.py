"""The block-update schemes: each agent solves its block QP on its neighbourhood with the others' last plans.

- `jacobi`: cooperative Jacobi (Stewart, Venkat, Rawlings, Wright & Pannocchia 2010): plant-wide cost, the affected
  agents' constraints, convex combination with the structural step (mpc/parallel_step.py) or the given weights;
- `gauss_seidel`: the same, agents updating one after another within an iteration (weight 1);
- `noncooperative`: own cost, own constraints, plans exchanged;
- `decentralized`: own cost, own constraints, no messages (the others on their reference).
"""
from __future__ import annotations

from ..coordination.base import Agent, StoppingRule
from ..coordination.block_agent import BlockUpdateAgent
from ..coordination.decentralized import DecentralizedAgent
from ..coordination.scheme import AgentRequest, Problem, Scheme
from ..mpc.input_parametrization import TAILS
from ..mpc.parallel_step_sparse import dense_step_bound
from ..scenarios import checks
from . import shared_constraint_refusal, weights_sum_refusal

WHOLE_MODEL = ("cooperative Jacobi's descent and feasibility argument (Stewart, Wright & Rawlings 2011) needs each "
               "agent to predict the whole plant's cost of its own inputs through the whole nonlinear model; "
               "sensitivity reaches the same optimum with neighbour-to-neighbour data")


def jacobi_weight(request: AgentRequest) -> float:
    """The agent's convex-combination weight: the given one, else the structural step (mpc/parallel_step.py)."""
    if request.weights is not None:
        return request.weights[request.agent_id]
    tubes = request.tubes
    per_step_rows = request.design.collision is not None or (tubes is not None and tubes.compatibility is not None)
    return request.design.parallel_step.weight(per_step_rows)


def block_update_agent(request: AgentRequest, objective: str, constraints: str, weight: float,
                       sequential: bool) -> BlockUpdateAgent:
    """A block-update agent (Jacobi, Gauss-Seidel, non-cooperative) on its neighbourhood's block problem."""
    design, agent_id, tubes = request.design, request.agent_id, request.tubes
    order = list(range(design.system.num_agents)) if sequential else None
    block = design.block(agent_id, objective, constraints, request.backend)
    required = None if design.collision is None else \
        block.interacting_agents() | design.collision.partners(agent_id)
    return BlockUpdateAgent(agent_id, block, design.terminal_gain(), weight, request.stopping, order=order,
                            required_plans=required, collision=design.collision,
                            compatibility=None if tubes is None else tubes.compatibility)


def set_up_refusal(problem: Problem) -> str | None:
    """Cooperative Jacobi's step bound needs the plant-wide dense condensed problem (Γ, H and a generalized
    eigenvalue solve on N·n_u inputs): refuse, with the estimate, a plant for which that exceeds the memory
    available or checks.SET_UP_LIMIT, before the work starts. The other schemes stay local (mpc/neighbourhood.py)."""
    system, horizon = problem.system, problem.horizon
    inputs, states = horizon * system.n_u, (horizon + 1) * system.n_x
    memory = 8.0 * (inputs * states + 3 * inputs * inputs)   # Γ, H, the scaled H and the eigen solver's copy
    seconds = 3.0 * inputs ** 3 / checks.DENSE_RATE          # Cholesky, reduction, one extreme eigenvalue
    available = checks.MEMORY_SHARE * checks.available_memory()
    if memory <= available and seconds <= checks.SET_UP_LIMIT:
        return None
    # short: the scheme registry appends the schemes allowed, and messages are capped (scenarios/validation.one_line)
    return (f"use gauss_seidel or admm (local agents): the step bound for {system.num_agents} agents, horizon "
            f"{horizon} ({inputs} inputs) needs about {memory / 1e9:.1f} GB, {seconds / 60:.0f} min of set-up "
            f"(limits: {available / 1e9:.1f} GB, {checks.SET_UP_LIMIT / 60:.0f} min)")


def jacobi_check(problem: Problem) -> str | None:
    """Weights that do not sum to one; a dense step bound beyond the machine (above DENSE_STEP_INPUTS the bound is
    matrix-free: no plant-wide dense data, nothing to refuse)."""
    dense = dense_step_bound(problem.system, problem.horizon)
    return weights_sum_refusal(problem, "cooperative Jacobi weights") or (set_up_refusal(problem) if dense else None)


def decentralized_agent(request: AgentRequest) -> Agent:
    block = request.design.block(request.agent_id, "own", "own", request.backend)
    return DecentralizedAgent(request.agent_id, block, request.design.terminal_gain(), 1.0,
                              StoppingRule(1, request.stopping.tolerance), required_plans=set())


def decentralized_check(problem: Problem) -> str | None:
    if problem.collision:
        return ("it cannot keep robots apart: the separating half-planes need the neighbours' plans (use "
                "noncooperative: own cost, plans exchanged, or a cooperative scheme)")
    return shared_constraint_refusal(problem, "decentralized")


SCHEMES = (
    Scheme("decentralized", "own cost and constraints, no messages",
           build_linear=decentralized_agent, check=decentralized_check, control_tails=TAILS),
    Scheme("noncooperative", "own cost and constraints, plans exchanged",
           build_linear=lambda r: block_update_agent(r, "own", "own", 1.0, False),
           check=lambda problem: shared_constraint_refusal(problem, "noncooperative"), control_tails=TAILS),
    Scheme("jacobi", "cooperative Jacobi: plant-wide cost, convex combination of the agents' updates",
           build_linear=lambda r: block_update_agent(r, "plant", "affected", jacobi_weight(r), False),
           check=jacobi_check, nonlinear_refusal=WHOLE_MODEL, coupled_limits="every_iterate", control_tails=TAILS),
    Scheme("gauss_seidel", "cooperative Gauss-Seidel: plant-wide cost, agents update one after another",
           build_linear=lambda r: block_update_agent(r, "plant", "affected", 1.0, True),
           nonlinear_refusal="as for jacobi, each agent would need the whole nonlinear model; use sensitivity",
           coupled_limits="every_iterate", control_tails=TAILS),
)
