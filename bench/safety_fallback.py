"""Issue 26's report in small: four_tank_nonlinear (sensitivity DMPC) whose local NLPs all fail from step `--from`
on, each agent holding its last solved pump voltage (its announced plan holds it too), with and without the guard's
one-step safety rule (coordination/safety_filter.py). Prints the highest levels, the largest limit violation, the
closed-loop cost and the safety counters.

    PYTHONPATH=dmpc_ros python bench/safety_fallback.py --steps 60 --from 10
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from dmpc_ros.api import simulate
from dmpc_ros.coordination import sensitivity
from dmpc_ros.scenarios import load_scenario


def failing_agents(start: int, safety: bool) -> None:
    """From step `start` on every solve fails and the plan holds the last solved input (a failed solve keeps U)."""
    agent = sensitivity.SensitivityAgent
    iterate, held = agent.iterate, {}

    def failed(self, inbox):
        if self.step < start:
            plan = iterate(self, inbox)
            held[self.agent_id] = self.U[0].copy()
            return plan
        self.U[:] = held[self.agent_id]
        solve = self.ocp.solve
        self.ocp.solve = lambda *args, **kwargs: dataclasses.replace(solve(*args, **kwargs), ok=False,
                                                                     status="injected")
        try:
            return iterate(self, inbox)
        finally:
            self.ocp.solve = solve

    agent.iterate = failed
    if not safety:
        agent.one_step_model = lambda self, own_state=None: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--from", dest="start", type=int, default=10)
    parser.add_argument("--no-safety", action="store_true", help="the guard without the state set (before issue 26)")
    args = parser.parse_args()
    failing_agents(args.start, not args.no_safety)
    scenario = load_scenario("four_tank_nonlinear").with_overrides(steps=args.steps, max_iterations=5)
    result = simulate(scenario, compare_centralized=False)
    failures = result.failures()
    print(f"safety {'off' if args.no_safety else 'on'}: highest levels [m] {np.round(result.x.max(axis=0), 4)} "
          f"(limit 0.20), largest violation {result.violation.max():.3g} m, cost {result.closed_loop_cost:.6g}, "
          f"steps on fallback {failures['steps_on_fallback_input']}, safety inputs {failures['safety_inputs']}, "
          f"worst predicted margin {failures['worst_fallback_state_margin']}")


if __name__ == "__main__":
    main()
