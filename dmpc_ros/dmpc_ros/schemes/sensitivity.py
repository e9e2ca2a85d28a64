"""`sensitivity`: sensitivity-based DMPC of a nonlinear network (Pierer von Esch, Völz & Graichen;
coordination/sensitivity.py)."""
from __future__ import annotations

from ..coordination.base import Agent
from ..coordination.scheme import AgentRequest, Scheme
from ..coordination.sensitivity import SensitivityAgent


def sensitivity_agent(request: AgentRequest) -> Agent:
    return SensitivityAgent(request.agent_id, request.design, request.stopping)


SCHEMES = (Scheme("sensitivity", "local NLPs with the neighbours' first-order sensitivities (nonlinear models)",
                  build_nonlinear=sensitivity_agent),)
