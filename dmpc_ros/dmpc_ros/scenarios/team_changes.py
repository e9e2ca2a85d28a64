"""The `team_changes:` section: members that join or leave a running team, validated at load.

    team_changes:
      - step: 10            # the step boundary (1 ≤ step < simulation.steps), in order
        join: {...}         # the family's joiner fields and its initial_state (platoon: at the tail)
      - step: 50
        leave: 3            # a member's persistent id (initial agents 0..M−1, joiners M, M+1, … in order)

Every entry is checked here, one line naming the field; whether a change is applied is decided at its step by
the rules of coordination/team_change.py (its shifted candidate must be feasible).
"""
from __future__ import annotations

import numpy as np

from ..coordination.team_change import JOIN, LEAVE, Roster, TeamChange
from .family import FamilyParts, ModelFamily
from .validation import ScenarioError, check_number, reject_unknown

MAX_CHANGES = 100


def parse_team_changes(value: object, family: ModelFamily, parts: FamilyParts, steps: int,
                       settings: dict) -> tuple[TeamChange, ...]:
    """The entries as TeamChanges with persistent ids; `settings` holds what rules them out (robust, disturbances)."""
    if value is None:
        return ()
    name = "team_changes"
    if not isinstance(value, list) or not value or len(value) > MAX_CHANGES:
        raise ScenarioError(f"{name}: {value!r} is not allowed: a list of 1 to {MAX_CHANGES} entries "
                            f"{{step, join: {{...}}}} or {{step, leave: id}}")
    for field, why in settings.items():
        if why:
            raise ScenarioError(f"{name}: not allowed with {field}: {why}")
    roster, next_id, last_step, changes = Roster.initial(parts.model.num_agents), parts.model.num_agents, 1, []
    for e, entry in enumerate(value):
        where = f"{name}[{e}]"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{where}: {entry!r} is not allowed: a mapping {{step, join}} or {{step, leave}}")
        reject_unknown(entry, f"{where}.", {"step", JOIN, LEAVE})
        step = check_number(entry.get("step"), f"{where}.step", minimum=last_step, maximum=steps - 1, integer=True)
        kinds = [k for k in (JOIN, LEAVE) if k in entry]
        if len(kinds) != 1:
            raise ScenarioError(f"{where}: {sorted(entry)} is not allowed: give exactly one of join, leave")
        if kinds[0] == JOIN:
            if not isinstance(entry[JOIN], dict):
                raise ScenarioError(f"{where}.join: {entry[JOIN]!r} is not allowed: a mapping of the joiner's fields")
            spec, state = family.parse_joiner(entry[JOIN], f"{where}.join", parts)
            change = TeamChange(step, JOIN, next_id, spec, np.asarray(state, float), e)
            next_id += 1
        else:
            member = entry[LEAVE]
            if isinstance(member, bool) or not isinstance(member, int) or member not in roster.members:
                raise ScenarioError(f"{where}.leave: {member!r} is not allowed: must be the id of a member then in "
                                    f"the team, one of {list(roster.members)}")
            if len(roster.members) <= 2:
                raise ScenarioError(f"{where}.leave: {member} is not allowed: a team keeps at least 2 members")
            why = family.leave_refusal(parts, roster.index(member))
            if why:
                raise ScenarioError(f"{where}.leave: {member} is not allowed: {why}")
            change = TeamChange(step, LEAVE, member, entry=e)
        roster, last_step = roster.after(change), step
        changes.append(change)
    return tuple(changes)
