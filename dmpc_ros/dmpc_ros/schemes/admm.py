"""`admm`: edge-based consensus ADMM (coordination/admm.py; on a nonlinear network coordination/nonlinear_admm.py,
the copies as NLP variables). Its section `controller.admm` gives the penalty ρ and, for the linear agents,
over-relaxation, residual balancing and acceleration; the nonlinear agents take plain steps with a fixed ρ, so
those settings are refused there rather than ignored."""
from __future__ import annotations

import numpy as np

from ..coordination.admm import WARM_START_APPLIED, AdmmAgent, AdmmSettings
from ..coordination.base import Agent
from ..coordination.nonlinear_admm import NonlinearAdmmAgent
from ..coordination.scheme import AgentRequest, Problem, Scheme
from ..mpc.condensed import objective_couplings
from ..scenarios.validation import flag, number, reject_unknown
from . import shared_constraint_refusal

PATH = "controller.admm."
# what the nonlinear agents do not do, and the value that says so (a given other value is refused)
LINEAR_ONLY = {"over_relaxation": 1.0, "residual_balancing": False, "acceleration": False, "balancing_interval": None,
               "balancing_limit": None}


def parse_settings(section: dict) -> AdmmSettings:
    """controller.admm: penalty, over_relaxation, residual_balancing, balancing_interval, balancing_limit,
    acceleration."""
    reject_unknown(section, PATH, {"penalty", "over_relaxation", "residual_balancing", "balancing_interval",
                                   "balancing_limit", "acceleration"})
    defaults = AdmmSettings()
    flags = {name: flag(section, PATH, name, getattr(defaults, name))
             for name in ("residual_balancing", "acceleration")}
    return AdmmSettings(
        penalty=number(section, PATH, "penalty", default=defaults.penalty, minimum=0.0, strict_minimum=True),
        over_relaxation=number(section, PATH, "over_relaxation", default=defaults.over_relaxation,
                               minimum=1.0, maximum=1.99),
        balancing_interval=number(section, PATH, "balancing_interval", default=defaults.balancing_interval,
                                  minimum=1, maximum=1000, integer=True),
        balancing_limit=number(section, PATH, "balancing_limit", default=defaults.balancing_limit,
                               minimum=0, maximum=1000, integer=True),
        **flags,
    )


def check_settings(section: dict, problem: Problem) -> str | None:
    """On a nonlinear network the agents keep ρ fixed and take plain ADMM steps: a given setting they would ignore
    is refused with the reason."""
    if not problem.nonlinear:
        return None
    for key, honoured in LINEAR_ONLY.items():
        if key in section and section[key] != honoured:
            return (f"{PATH}{key}: {section[key]!r} is not allowed for admm on a nonlinear model: its agents take "
                    f"plain ADMM steps with a fixed penalty ρ (controller.admm.penalty); over-relaxation, residual "
                    f"balancing and acceleration are the linear agents' (remove {key})")
    return None


def check(problem: Problem) -> str | None:
    """A shared input constraint is ignored; in tube mode, fault settings would promise a bound ADMM does not
    enforce: its copies of a neighbour are not shifted plans and it adds no compatibility rows."""
    compatibility = problem.compatibility
    if compatibility is not None and (compatibility.missed_steps or any(
            np.any(np.isfinite(c)) for c in compatibility.state_change + compatibility.input_change)):
        return (f"with controller.tube.missed_steps {compatibility.missed_steps} / plan_change its copies of a "
                f"neighbour are not shifted plans and it adds no compatibility rows (use missed_steps 0 and no "
                f"plan_change)")
    return shared_constraint_refusal(problem, "admm")


def linear_agent(request: AgentRequest) -> Agent:
    design = request.design
    uncovered = objective_couplings(design.system, design.separable_remainder())
    if uncovered:
        raise ValueError(f"algorithm 'admm' needs every objective coupling given as a positive semidefinite pair "
                         f"term (ControllerDesign.coupling_terms); the cost couples agents "
                         f"{', '.join(f'{i}–{j}' for i, j in uncovered[:4])} without one")
    return AdmmAgent(request.agent_id, design, request.stopping, request.settings, request.backend)


def nonlinear_agent(request: AgentRequest) -> Agent:
    return NonlinearAdmmAgent(request.agent_id, request.design, request.stopping, request.settings)


SCHEMES = (Scheme("admm", "edge-based consensus ADMM, neighbour to neighbour", build_linear=linear_agent,
                  build_nonlinear=nonlinear_agent, settings_section="admm", parse_settings=parse_settings,
                  check=check, check_settings=check_settings, separable_terminal_cost=True, control_tails=("hold",),
                  nonlinear_control_tails=("hold",),
                  counters={WARM_START_APPLIED: "steps whose final iterate was worse than the warm start by the "
                                                "agent's merit (the warm start was applied)"},
                  coupled_limits="at_convergence"),)
