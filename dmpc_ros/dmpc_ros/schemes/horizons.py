"""`horizons`: cooperative DMPC with dissimilar and time-varying control horizons (Chanfreut, Maestre, Zhu & Heemels,
after Stewart, Wright & Rawlings 2011): coordination/horizons.py (the agent, the supervisor's place and message
cost), mpc/control_horizon.py (problems (8) and (9) rebuilt from the paper's prose as QPs of a linear model, with
every choice the lost formulas left open) and coordination/nonlinear_horizons.py (the same as IPOPT NLPs on a
nonlinear model, and what changes there: the terminal set is a verified level set, the supervisor's combination is
checked by simulation).

Section `controller.horizons`:
- `control_horizon`: N_c,i, one number for every agent or a list of one per agent, 1 ≤ N_c,i ≤ controller.horizon
  (default: controller.horizon, every input a decision variable). Beyond N_c,i an agent's inputs are the convex
  combination α_i·(previous iterate) + (1 − α_i)·κ_i, κ_i(x) = ū_i + K_i (x − x̄) the LQR terminal law;
- `supervisor`: `weights` (problem (9): the best convex combination of the previous iterate and the proposals) or
  `dominant` (Remark 2: the best single proposal, or the previous iterate);
- `dynamic`: shorten N_c,i by one when the candidate that starts κ_i one step earlier costs ≤ (1 + ε) of the
  solution (Section III-C); `reduction_tolerance` ε ≥ 0; `minimum`: the shortest horizon it may reach.

The guarantees (every iterate feasible, plant-wide cost non-increasing over iterations and over time, recursive
feasibility) need the terminal set: `controller.terminal_set: true` (linear: maximal admissible set of the LQR law
around the setpoint, terminal cost the DARE solution; nonlinear: the largest level set x̃'Px̃ ≤ c of the LQR law of
the prediction map's linearization that keeps the limits and the decrease V_f(Φ) − V_f ≤ −ℓ, verified by the
linearization margin and by sampling, mpc/terminal_region.py, terminal cost x̃'Px̃; the scheme declares
`nonlinear_terminal_set`, the only one that does, so the centralized NMPC reference of `dmpc sim` is refused there:
run it with `--no-reference`). Without it the iterations keep their guarantees within a step,
but the shifted candidate of the next step may violate a row and is then projected (counter `repairs`).
Each agent holds the plant-wide condensed problem (the paper's Assumption 1), so the plant must be small enough
for cooperative Jacobi's set-up; collision planes and tube mode are refused (their per-step rows would break the
shared iterate every agent keeps).

The generic `controller.control_horizon` (every scheme: mpc/input_parametrization.py) gives this scheme its N_c,i
when this section does not; its tail is this scheme's own (α_i between the previous tail and κ_i), so it declares
the `terminal` tail only and refuses `hold`.
"""
from __future__ import annotations

from dataclasses import replace

from ..coordination.base import Agent
from ..coordination.horizons import COUNTERS, SUPERVISORS, HorizonSettings, HorizonsAgent
from ..coordination.nonlinear_horizons import NonlinearHorizons
from ..coordination.scheme import AgentRequest, Problem, Scheme
from ..mpc.control_horizon import CondensedHorizons
from ..scenarios.validation import ScenarioError, check_number, choice, flag, number, reject_unknown
from .block_update import set_up_refusal

PATH = "controller.horizons."


def parse_control_horizon(value: object) -> tuple[int, ...] | int | None:
    """One positive integer or a non-empty list of them (the count and the bound N come with the problem)."""
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            raise ScenarioError(f"{PATH}control_horizon: [] is not allowed: one number or one per agent")
        return tuple(int(check_number(v, f"{PATH}control_horizon[{i}]", minimum=1, integer=True))
                     for i, v in enumerate(value))
    return int(check_number(value, f"{PATH}control_horizon", minimum=1, integer=True))


def parse_settings(section: dict) -> HorizonSettings:
    """controller.horizons: control_horizon, supervisor, dynamic, reduction_tolerance, minimum."""
    reject_unknown(section, PATH, {"control_horizon", "supervisor", "dynamic", "reduction_tolerance", "minimum"})
    defaults = HorizonSettings()
    return HorizonSettings(
        control_horizon=parse_control_horizon(section.get("control_horizon")),
        supervisor=choice(section, PATH, "supervisor", SUPERVISORS, default=defaults.supervisor),
        dynamic=flag(section, PATH, "dynamic", defaults.dynamic),
        reduction_tolerance=number(section, PATH, "reduction_tolerance", default=defaults.reduction_tolerance,
                                   minimum=0.0, maximum=10.0),
        minimum=number(section, PATH, "minimum", default=defaults.minimum, minimum=1, maximum=10000, integer=True),
    )


def check_settings(section: dict, problem: Problem) -> str | None:
    """Horizons that do not fit the problem (count, 1 … N), in one line."""
    try:
        parse_settings(section).horizons(problem.system.num_agents, problem.horizon)
    except (ValueError, ScenarioError) as error:
        return str(error)
    return None


def check(problem: Problem) -> str | None:
    if problem.collision:
        return "its agents share one plant-wide iterate, which the per-step collision half-planes would break"
    if problem.tube_mode:
        return "tube mode's compatibility rows are not part of its problems (8) and (9)"
    return set_up_refusal(problem)


def agent(request: AgentRequest, build_model) -> Agent:
    design = request.design
    settings = request.settings if request.settings is not None else HorizonSettings()
    generic = design.control_horizons   # controller.control_horizon: its N_c,i unless controller.horizons gives them
    if settings.control_horizon is None and generic is not None:
        settings = replace(settings, control_horizon=generic.values)
    return HorizonsAgent(request.agent_id, horizons_model(design, build_model), request.stopping, settings,
                         design.input_guard(request.agent_id), request.backend)


def linear_model(design) -> CondensedHorizons:
    return CondensedHorizons(design.condensed(), design.terminal_gain())


_MODELS: dict[int, tuple[object, object]] = {}


def horizons_model(design, build_model):
    """The design's plant-wide model, built once per design object in a process (the agents of one `dmpc sim`
    share it: the dense condensed set-up, or the compiled NLPs)."""
    known = _MODELS.get(id(design))
    if known is None or known[0] is not design:
        _MODELS.clear()
        known = _MODELS[id(design)] = (design, build_model(design))
    return known[1]


SCHEMES = (Scheme("horizons", "cooperative, dissimilar control horizons with a supervisor (Chanfreut et al.)",
                  build_linear=lambda r: agent(r, linear_model),
                  build_nonlinear=lambda r: agent(r, NonlinearHorizons), settings_section="horizons",
                  parse_settings=parse_settings, check=check, check_settings=check_settings, counters=COUNTERS,
                  coupled_limits="every_iterate", control_tails=("terminal",), nonlinear_control_tails=("terminal",),
                  nonlinear_terminal_set=True),)
