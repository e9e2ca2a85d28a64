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
tolerance is relative: an iterate worse by more than `slack` (50 %) of the warm start's merit is not applied. A
diverged negotiation's plan is worse by orders of magnitude; the unconverged iterates of a normal run are not
monotone in this merit (on the formation at 10 iterations up to 19 % above the warm start), and applying the warm
start there made the closed loop worse (+0.008 % instead of +0.0008 % at a 1 % slack), since the neighbours apply
their iterates.
"""
from __future__ import annotations

from typing import Any


class WarmStartSafeguard:
    """Remember the warm start and its merit; reject a final iterate of larger merit (then apply the warm start)."""

    def __init__(self, slack: float = 0.5) -> None:
        self.slack = slack          # relative tolerance on the warm start's merit (≥ 0)
        self.warm_start: Any = None
        self.merit = float("inf")
        self.applied = 0            # steps that applied the warm start, over the agent's life

    def start(self, warm_start: Any, merit: float) -> None:
        """The step's warm start and its merit (None: no warm start to fall back on this step)."""
        self.warm_start, self.merit = warm_start, float(merit)

    def rejects(self, merit: float) -> bool:
        """True (and counted) if `merit` of the final iterate exceeds the warm start's by more than the slack; NaN
        is rejected too."""
        if self.warm_start is None:
            return False
        worse = not merit <= (1.0 + self.slack) * self.merit
        self.applied += worse
        return worse
