"""Bookkeeping of received plans for agents driven by real messages (the ROS agent node).

Messages arrive in any order and neighbours run ahead or behind, so plans are kept per neighbour by
(step, iteration). For iteration p an agent needs, from each neighbour j it listens to, exactly j's plan of
iteration p − 1 (p for a Gauss-Seidel predecessor) — or j's final plan of this step if j stopped earlier.
Picking exactly that plan, not merely the newest, makes a message-driven run reproduce the in-process
simulation bit for bit. Sans-IO: the Negotiator (negotiator.py) decides when to wait and when a deadline
forces progress.

What cannot be part of this run is refused (`inadmissible`): iterations beyond the last one, steps more than one
ahead of the step in negotiation, and a second, different plan under a key already booked. A genuine agent sends each
(step, iteration) once (an overtaken step's last plan goes out again flagged final, unchanged), so two different
plans under one key mean one of them is not the sender's: both are dropped and the key stays closed, and the
negotiation treats the plan as missing (a substitute after the deadline). Only authenticated messages
(dmpc_ros/auth, `dmpc keys`) tell the genuine one apart; this rule only keeps a spoofer from choosing the plan used.
"""
from __future__ import annotations

import numpy as np

from .base import Agent
from .plan import Plan


STEPS_AHEAD = 1   # a neighbour's plan may be this many steps ahead of this agent's step (it measured first)


class PlanBook:
    def __init__(self, agent: Agent, max_iteration: int) -> None:
        """`max_iteration`: the largest iteration any plan of a step can carry (the book stays bounded: a flood of
        distinct (step, iteration) keys from a rogue publisher is refused, not stored)."""
        self.agent = agent
        self.max_iteration = max_iteration
        self.step = -1
        self.expected = -1   # the step measured and about to begin (its plans are admissible already)
        self._plans: dict[int, dict[tuple[int, int], Plan]] = {j: {} for j in agent.required_plans}
        self._closed: dict[int, set[tuple[int, int]]] = {j: set() for j in agent.required_plans}   # conflicting keys
        self._finals: dict[int, set[tuple[int, int]]] = {j: set() for j in agent.required_plans}   # keys of finals
        self._order = list(self._plans)
        self._neighbours = frozenset(self._plans)
        self._scan: tuple[tuple[int, int] | None, int] = (None, 0)   # inbox: (step, iteration), first index missing

    def begin(self, step: int) -> dict[int, Plan]:
        """Start step `step`; returns each neighbour's newest plan of an earlier step (for begin_step)."""
        self.step = step
        self._scan = (None, 0)
        previous = {}
        for j, plans in self._plans.items():
            newest = max(plans, default=None)   # kept whatever its age: a lost link's last word, used shifted
            for key in [key for key in plans if key[0] < step - 1 and key != newest]:
                del plans[key]
            self._closed[j] = {key for key in self._closed[j] if key[0] >= step - 1}
            self._finals[j] = {key for key in self._finals[j] if key in plans}
            older = [key for key in plans if key[0] < step]
            if older:
                previous[j] = plans[max(older)]
        return previous

    @property
    def neighbours(self) -> frozenset[int]:
        """The agents whose plans this agent listens to."""
        return self._neighbours

    def without_final(self, step: int) -> list[int]:
        """The neighbours whose final plan of `step` is not here."""
        return sorted(j for j, finals in self._finals.items() if not any(key[0] == step for key in finals))

    def previous_step_complete(self, step: int) -> bool:
        """True once every neighbour's final plan of step − 1 is here (their warm starts build on it)."""
        return step == 0 or not self.without_final(step - 1)

    def inadmissible(self, plan: Plan) -> str | None:
        """Why a neighbour's plan cannot be one of a run this agent is part of (None if it can)."""
        if plan.iteration > self.max_iteration:
            return f"plan of agent {plan.agent} has iteration {plan.iteration}; at most {self.max_iteration} exist"
        current = max(self.step, self.expected, 0)
        if plan.step > current + STEPS_AHEAD:
            return (f"plan of agent {plan.agent} is for step {plan.step}, more than {STEPS_AHEAD} step ahead of "
                    f"step {current}")
        return self._conflict(plan)

    def _conflict(self, plan: Plan) -> str | None:
        """Why `plan` conflicts with what is booked under its key (and close the key), or None."""
        if plan.agent not in self._plans:
            return None
        key = (plan.step, plan.iteration)
        if key in self._closed[plan.agent]:
            return (f"plan of agent {plan.agent} for step {plan.step} iteration {plan.iteration}: this key had two "
                    "different plans already; none is used")
        booked = self._plans[plan.agent].get(key)
        if booked is None or same_plan(booked, plan):
            return None
        del self._plans[plan.agent][key]
        self._finals[plan.agent].discard(key)
        self._scan = (None, 0)
        self._closed[plan.agent].add(key)
        return (f"two different plans of agent {plan.agent} for step {plan.step} iteration {plan.iteration}: one is "
                f"not from agent {plan.agent} (spoofed); both dropped (require authentication: dmpc keys)")

    def record(self, plan: Plan) -> bool:
        """Keep a neighbour's plan; False if it is not one this agent listens to or belongs to an old step."""
        if plan.agent not in self._plans or plan.step < self.step - 1 or plan.step < 0:
            return False
        key = (plan.step, plan.iteration)
        booked = self._plans[plan.agent].get(key)
        if key in self._closed[plan.agent] or (booked is not None and booked.final and not plan.final):
            return False   # closed; or a duplicate of a plan re-sent final (overtaken), which stays final
        self._plans[plan.agent][key] = plan
        if plan.final:
            self._finals[plan.agent].add(key)
        return True

    def missing(self, iteration: int) -> list[int]:
        """The neighbours whose plan iteration `iteration` needs is not here."""
        return [j for j in self._plans if self._exact(j, iteration) is None]

    def closed(self, iteration: int) -> set[int]:
        """The neighbours whose plan iteration `iteration` needs sits under a closed key (two different plans came):
        nothing is to be waited for there."""
        if not any(self._closed.values()):
            return set()
        return {j for j in self._plans if (self.step, self.needed_iteration(j, iteration)) in self._closed[j]}

    def needed_iteration(self, neighbour: int, iteration: int) -> int:
        return iteration if self.agent.needs_current_iteration(neighbour) else iteration - 1

    def inbox(self, iteration: int) -> dict[int, Plan] | None:
        """The plans iteration `iteration` needs, or None while one is still outstanding."""
        # A plan once booked stays until `begin` or a conflict drops it (both reset the scan), so the neighbours
        # before the one missing at the last look of this (step, iteration) are still there: the scan resumes
        # there, and a negotiation costs O(neighbours) per iteration instead of per received plan.
        key = (self.step, iteration)
        start = self._scan[1] if self._scan[0] == key else 0
        for index in range(start, len(self._order)):
            if self._exact(self._order[index], iteration) is None:
                self._scan = (key, index)
                return None
        self._scan = (key, len(self._order))
        return {j: self._exact(j, iteration) for j in self._order}

    def inbox_with_substitutes(self, iteration: int) -> tuple[dict[int, Plan], list[int]]:
        """After a deadline: the exact plans where present, else each neighbour's newest plan (the agent uses
        it shifted if it is from an earlier step); also the neighbours whose needed plan was missing."""
        inbox, missing = {}, []
        for j, plans in self._plans.items():
            plan = self._exact(j, iteration)
            if plan is None:
                missing.append(j)
                plan = plans[max(plans)] if plans else None
            if plan is not None:
                inbox[j] = plan
        return inbox, missing

    def _exact(self, j: int, iteration: int) -> Plan | None:
        need = self.needed_iteration(j, iteration)
        plans = self._plans[j]
        if (self.step, need) in plans:
            return plans[(self.step, need)]
        finals = [key for key in self._finals[j] if key[0] == self.step and key[1] <= need]
        return plans[max(finals)] if finals else None


def same_plan(a: Plan, b: Plan) -> bool:
    """Whether b is a copy of a, or a re-sent as final (an overtaken step's last plan): equal trajectories, cost and
    data (NaN-free plans only reach the book)."""
    return (a.states.shape == b.states.shape and a.inputs.shape == b.inputs.shape and np.array_equal(a.states, b.states)
            and np.array_equal(a.inputs, b.inputs) and a.cost == b.cost and a.data.keys() == b.data.keys()
            and all(np.array_equal(a.data[k], b.data[k]) for k in a.data))
