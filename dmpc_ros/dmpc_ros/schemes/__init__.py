"""The built-in coordination schemes, one module per scheme or scheme family, each defining `SCHEMES` (a tuple of
coordination.scheme.Scheme): its name(s), its settings section's parser, its applicability check, its builders and
its counters. The registry (coordination/scheme.py) finds them by module, plugins by entry point; nothing outside
these modules knows a scheme by name. This module holds what several schemes check alike."""
from __future__ import annotations

from ..coordination.scheme import Problem


def shared_constraint_refusal(problem: Problem, name: str) -> str | None:
    """A scheme whose agents ignore a constraint shared by all agents' inputs would break it."""
    shared = problem.system.shared_input_constraint
    if shared is None:
        return None
    return (f"the model has a constraint shared by all agents' inputs ({shared.h.size} rows on the stacked u), "
            f"which {name} ignores, so its agents would break it")


def weights_sum_refusal(problem: Problem, what: str) -> str | None:
    """Convex-combination weights must sum to 1."""
    if problem.weights is not None and abs(sum(problem.weights) - 1.0) > 1e-9:
        return f"{what} must sum to 1 (convex combination), got sum {sum(problem.weights):.6g}"
    return None
