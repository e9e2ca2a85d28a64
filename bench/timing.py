"""Honest timing of a distributed run from its whole agent calls (the simulator times every begin_step and iterate).

one_core        Σ over all agents and calls per step: what the step costs when the agents share one core;
critical_path   parallel schemes: Σ over iterations of the slowest call (begin_step counts as iteration 0);
                sequential schemes (Gauss-Seidel): the sum along the sequence, i.e. one_core;
calls / solves  per-agent whole iterate calls and QP solves (begin_step calls are not in the call samples).
Values are per-step medians unless named otherwise.
"""
from __future__ import annotations

import numpy as np


def per_step_one_core(result) -> np.ndarray:
    return np.array([sum(sum(calls) for calls in step) for step in result.agent_call_times])


def per_step_critical_path(result, sequential: bool) -> np.ndarray:
    if sequential:
        return per_step_one_core(result)
    paths = []
    for step in result.agent_call_times:
        longest = max(len(calls) for calls in step)
        padded = np.array([calls + [0.0] * (longest - len(calls)) for calls in step])
        paths.append(float(np.sum(np.max(padded, axis=0))))
    return np.array(paths)


def call_samples(result) -> np.ndarray:
    """Whole iterate calls of every agent and step (the first call of a step is begin_step, left out)."""
    return np.array([c for step in result.agent_call_times for calls in step for c in calls[1:]])


def quantiles(samples: np.ndarray) -> tuple[float, float]:
    """(median, p95), NaN for no samples."""
    if samples.size == 0:
        return float("nan"), float("nan")
    return float(np.median(samples)), float(np.percentile(samples, 95))
