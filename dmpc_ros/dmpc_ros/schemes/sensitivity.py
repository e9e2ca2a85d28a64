"""`sensitivity`: sensitivity-based DMPC of a nonlinear network (Pierer von Esch, Völz & Graichen;
coordination/sensitivity.py). Its section `controller.sensitivity` gives `limit_penalty`, the exact-penalty weight ρ
of the state limits the neighbours drive (mpc/nonlinear_ocp.SoftLimits; default: from the agent's weights)."""
from __future__ import annotations

from ..coordination.base import Agent
from ..coordination.scheme import AgentRequest, Scheme
from ..coordination.sensitivity import SensitivityAgent
from ..mpc.nonlinear_ocp import SoftLimits
from ..scenarios.validation import number, reject_unknown

PATH = "controller.sensitivity."


def parse_settings(section: dict) -> SoftLimits:
    """controller.sensitivity: limit_penalty (ρ > 0 per unit of violation and step; absent or null: automatic)."""
    reject_unknown(section, PATH, {"limit_penalty"})
    if section.get("limit_penalty") is None:
        return SoftLimits()
    return SoftLimits(number(section, PATH, "limit_penalty", minimum=0.0, strict_minimum=True, maximum=1e12))


def sensitivity_agent(request: AgentRequest) -> Agent:
    return SensitivityAgent(request.agent_id, request.design, request.stopping, request.settings or SoftLimits())


SCHEMES = (Scheme("sensitivity", "local NLPs with the neighbours' first-order sensitivities (nonlinear models)",
                  build_nonlinear=sensitivity_agent,
                  nonlinear_control_tails=("hold",), settings_section="sensitivity", parse_settings=parse_settings,
                  counters={"limit_violations": "iterations whose solution exceeds a neighbour-driven state limit "
                                                "(its exact penalty priced it)"},
                  coupled_limits="penalty"),)
