"""A third-party coordination scheme, as a user's own package would ship it, registered through the
`dmpc_ros.schemes` entry point (see the dist-info beside it). Nothing in dmpc_ros names it.

`damped_noncooperative`: each agent minimizes its own cost under its own constraints with the neighbours' last
plans (non-cooperative), and moves only part of the way: U_i ← w U_i* + (1 − w) U_i, w = damping. Its section
`controller.damped_noncooperative` sets the damping w and the threshold of its counter `large_moves`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dmpc_ros.coordination import Scheme
from dmpc_ros.coordination.block_agent import BlockUpdateAgent
from dmpc_ros.coordination.plan import Plan
from dmpc_ros.coordination.scheme import AgentRequest, Problem
from dmpc_ros.scenarios.validation import number, reject_unknown

PATH = "controller.damped_noncooperative."


@dataclass(frozen=True)
class DampingSettings:
    damping: float = 0.7          # w ∈ (0, 1]
    move_threshold: float = 0.01  # a move of the first input above this [input units] is a large move


def parse_settings(section: dict) -> DampingSettings:
    reject_unknown(section, PATH, {"damping", "move_threshold"})
    defaults = DampingSettings()
    return DampingSettings(
        damping=number(section, PATH, "damping", default=defaults.damping, minimum=0.0, strict_minimum=True,
                       maximum=1.0),
        move_threshold=number(section, PATH, "move_threshold", default=defaults.move_threshold, minimum=0.0))


class DampedAgent(BlockUpdateAgent):
    """A non-cooperative block-update agent that counts its large moves."""

    def __init__(self, *args, move_threshold: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.move_threshold = move_threshold

    def iterate(self, inbox: Mapping[int, Plan]) -> Plan:
        before = self.last_plan.inputs[0].copy()
        plan = super().iterate(inbox)
        if np.max(np.abs(plan.inputs[0] - before)) > self.move_threshold:
            self.statistics.count("large_moves")
        return plan


def damped_agent(request: AgentRequest) -> DampedAgent:
    design, settings = request.design, request.settings
    block = design.block(request.agent_id, "own", "own", request.backend)
    return DampedAgent(request.agent_id, block, design.terminal_gain(), settings.damping, request.stopping,
                       move_threshold=settings.move_threshold)


def check(problem: Problem) -> str | None:
    if problem.system.shared_input_constraint is not None:
        return "its agents ignore a constraint shared by all agents' inputs"
    if problem.collision:
        return "it draws no separating half-planes"
    return None


SCHEME = Scheme("damped_noncooperative", "non-cooperative block updates, damped", build_linear=damped_agent,
                settings_section="damped_noncooperative", parse_settings=parse_settings, check=check,
                counters={"large_moves": "iterates whose first input moved more than move_threshold"})
