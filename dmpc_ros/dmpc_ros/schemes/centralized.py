"""`centralized`: one MPC of the whole plant (a sparse QP, or IPOPT on the whole NLP of a nonlinear network) under
the agents' input rules; the reference every distributed run is measured against."""
from __future__ import annotations

from ..coordination.scheme import AgentRequest, Scheme
from ..mpc.input_parametrization import TAILS


def centralized_controller(request: AgentRequest):
    """The design's centralized controller (CentralizedController, or CentralizedNMPC of a nonlinear design)."""
    return request.design.centralized()


SCHEMES = (Scheme("centralized", "one MPC of the whole plant (the reference)", build_linear=centralized_controller,
                  build_nonlinear=centralized_controller, runs_as_agents=False,
                  coupled_limits="every_iterate", control_tails=TAILS,
                  nonlinear_control_tails=("hold",)),)
