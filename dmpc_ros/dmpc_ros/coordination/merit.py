"""The warm-start safeguard of the ADMM agents: the plan a step applies is never worse, by the agent's merit, than
the step's warm start (the previous plan, shifted).

ADMM stopped at an iteration limit returns an iterate, not a solution: its consensus may be violated and, if the
negotiation went wrong (ill-conditioned local solves, a penalty adapted late), its cost can be far above what the
warm start already offered. The merit is the agent's local cost plus a quadratic penalty ρ_e/2 ‖value − the other
end's value‖² on each of its edges (the ADMM penalty itself), evaluated for the warm start against the neighbours'
warm starts at iteration 1 and for the final iterate against their newest values. The rule is per agent, from its
own values: each agent decides for its own plan. The first step has no plan to shift (its warm start is the
reference, no fallback): the rule starts at the second, and only for a warm start that meets the step's own
constraints (the merit has no term for them). Merits are ≥ 0 (costs and squared distances), so the
tolerance is a factor: an iterate whose merit exceeds `factor` (10) times the warm start's is not applied. A
diverged negotiation's plan is worse by orders of magnitude (the reported LFC case: cost ×200). A local merit is
not the plant-wide cost: the cooperative optimum moves cost between agents (an area taking over its neighbour's
load), and unconverged iterates are not monotone in it. Measured in normal runs: up to 2.3× the warm start's on
the LFC stress system at 10 iterations, 1.19× on the formation; rejecting at 1.01× or 1.5× there made the closed
loop worse (LFC at 10 iterations +3.7 % instead of +0.10 %), since the neighbours apply their iterates.
"""
from __future__ import annotations

from typing import Any


class WarmStartSafeguard:
    """Remember the warm start and its merit; reject a final iterate of larger merit (then apply the warm start)."""

    def __init__(self, factor: float = 10.0) -> None:
        self.factor = factor        # reject a merit above factor × the warm start's (≥ 0)
        self.warm_start: Any = None
        self.merit = float("inf")
        self.applied = 0            # steps that applied the warm start, over the agent's life

    def start(self, warm_start: Any, merit: float) -> None:
        """The step's warm start and its merit (None: no warm start to fall back on this step)."""
        self.warm_start, self.merit = warm_start, float(merit)

    def rejects(self, merit: float) -> bool:
        """True (and counted) if `merit` of the final iterate exceeds factor × the warm start's; NaN
        is rejected too."""
        if self.warm_start is None:
            return False
        worse = not merit <= self.factor * self.merit
        self.applied += worse
        return worse
