"""The explicit schemes (Brahmbhatt, Ganesh & Avraamidou 2026; coordination/explicit.py): every agent's block QP
solved offline (`dmpc explicit build`, scenarios/explicit_cache.py), affine laws online.

- `explicit_iterative` (I-mpDiMPC): cooperative Jacobi on the laws;
- `explicit_iteration_free` (IF-mpDiMPC) and `explicit_facet` (FACET-DiMPC): one exchange per step, the fixed point
  by region-combination search over hyperplane or facet neighbours.
Their shared section `controller.explicit` sets the online point location, the search budget and Wegstein's
adaptive weights."""
from __future__ import annotations

from dataclasses import replace

from ..coordination.base import Agent
from ..coordination.explicit import ExplicitBlock, ExplicitIterativeAgent, IterationFreeAgent
from ..coordination.scheme import AgentRequest, OfflinePart, Problem, Scheme
from ..mpc.explicit_law import POINT_LOCATIONS, ExplicitSettings
from ..scenarios import explicit_cache
from ..scenarios.validation import choice, flag, number, reject_unknown
from . import weights_sum_refusal
from .block_update import jacobi_weight

PATH = "controller.explicit."
QP_FALLBACKS = {"qp_fallbacks": "laws replaced by the online QP (the parameter lay outside the explored set)"}
SEARCH_COUNTERS = {
    **QP_FALLBACKS,
    "full_searches": "searches over every region combination (the current regions' neighbours held no fixed point)",
    "iterative_fallbacks": "steps where no combination was accepted and the iterative scheme ran",
    "combinations": "region combinations whose stacked affine equations were solved",
}


def parse_settings(section: dict) -> ExplicitSettings:
    """controller.explicit: point_location, max_combinations, wegstein."""
    reject_unknown(section, PATH, {"point_location", "max_combinations", "wegstein"})
    defaults = ExplicitSettings()
    return ExplicitSettings(
        point_location=choice(section, PATH, "point_location", POINT_LOCATIONS, default=defaults.point_location),
        max_combinations=number(section, PATH, "max_combinations", default=defaults.max_combinations, minimum=1,
                                maximum=10_000_000, integer=True),
        wegstein=flag(section, PATH, "wegstein", defaults.wegstein))


def check(problem: Problem) -> str | None:
    """Why laws solved offline cannot serve this problem (None if they can)."""
    if problem.collision:
        return "its laws are computed offline, and the separating half-planes change every step"
    if problem.tube_mode:
        return "tube mode adds rows that change every step (plan compatibility) and a nominal state; use jacobi"
    if not problem.constant_reference:
        return "its laws are computed offline for one setpoint, and this design's reference changes over time"
    return weights_sum_refusal(problem, "its weights form the convex combination (7) and")


def loaded_laws(design) -> None:
    """ValueError if the design carries no laws, or laws for another agent count."""
    if design.explicit is None:
        raise ValueError("the explicit schemes need their laws: no explicit solution is loaded (build it with `dmpc "
                         "explicit build <scenario>`)")
    if len(design.explicit.laws) != design.system.num_agents:
        raise ValueError(f"{len(design.explicit.laws)} explicit laws were loaded for {design.system.num_agents} "
                         f"agents")


def explicit_block(request: AgentRequest, agent: int) -> ExplicitBlock:
    design = request.design
    block = design.block(agent, "plant", "affected", request.backend)
    return ExplicitBlock(block, design.explicit.laws[agent], design.explicit.settings.point_location)


def explicit_iterative_agent(request: AgentRequest) -> Agent:
    loaded_laws(request.design)
    i = request.agent_id
    return ExplicitIterativeAgent(i, explicit_block(request, i), request.design.terminal_gain(),
                                  jacobi_weight(request), request.stopping,
                                  wegstein=request.design.explicit.settings.wegstein)


def iteration_free_agent(request: AgentRequest, neighbours: str) -> Agent:
    """IF-mpDiMPC (neighbours = "hyperplane") or FACET-DiMPC (neighbours = "facet")."""
    design, M = request.design, request.design.system.num_agents
    loaded_laws(design)
    blocks = [explicit_block(request, j) for j in range(M)]
    adjacency = [getattr(law.solution, f"{neighbours}_neighbours") for law in design.explicit.laws]
    return IterationFreeAgent(request.agent_id, blocks, adjacency, design.system, design.terminal_gain(),
                              jacobi_weight(request), request.stopping, design.explicit.settings,
                              design.input_guard(request.agent_id))


def load_laws(design, settings: ExplicitSettings, source: str):
    """The design with every agent's law from the cache (ScenarioError with the command when one is missing)."""
    return replace(design, explicit=explicit_cache.load(design, settings, source))


OFFLINE = OfflinePart(build=explicit_cache.build, load=load_laws)
COMMON = dict(settings_section="explicit", parse_settings=parse_settings, check=check, offline=OFFLINE,
              coupled_limits="at_convergence", control_tails=("hold",))
SCHEMES = (
    Scheme("explicit_iterative", "I-mpDiMPC: cooperative Jacobi on explicit laws",
           build_linear=explicit_iterative_agent, counters=QP_FALLBACKS, **COMMON),
    Scheme("explicit_iteration_free", "IF-mpDiMPC: one exchange, fixed point over hyperplane-neighbour regions",
           build_linear=lambda r: iteration_free_agent(r, "hyperplane"), counters=SEARCH_COUNTERS, **COMMON),
    Scheme("explicit_facet", "FACET-DiMPC: one exchange, fixed point over facet-neighbour regions",
           build_linear=lambda r: iteration_free_agent(r, "facet"), counters=SEARCH_COUNTERS, **COMMON),
)
