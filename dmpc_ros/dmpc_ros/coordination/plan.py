"""The plan an agent announces each negotiation iteration (the sans-IO form of PredictedTrajectory)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

HEADER_BYTES = 96  # header, ids, dimensions, flags and CDR alignment of a PredictedTrajectory, roughly


@dataclass(frozen=True)
class Plan:
    agent: int
    step: int
    iteration: int
    states: np.ndarray          # (N+1) × n_x,i; row 0 is the agent's measured state x_i(k)
    inputs: np.ndarray          # N × n_u,i
    cost: float                 # the agent's local cost: its own states' and inputs' terms of the plant-wide cost
    feasible: bool
    converged: bool             # own change below tolerance at this iteration
    final: bool                 # the agent stops negotiating this step after this plan
    data: dict[str, np.ndarray] = field(default_factory=dict)  # algorithm-specific vectors

    @property
    def horizon(self) -> int:
        return self.inputs.shape[0]

    @cached_property
    def finite(self) -> bool:
        """States, inputs and algorithm data free of NaN and inf (computed once per plan, however many read it;
        a non-finite entry makes a sum non-finite, and so does overflow of absurd values)."""
        return all(math.isfinite(a.sum()) for a in (self.states, self.inputs, *self.data.values()))

    def nbytes(self) -> int:
        """Approximate serialized size [bytes] (float64 arrays + fixed header)."""
        values = self.states.size + self.inputs.size + sum(v.size for v in self.data.values())
        return HEADER_BYTES + 8 * values
