"""`model.type: linear`: a user's system as matrices. The restated chain equals the built-in family to the last
bit, the four-tank process matches Johansson's published steady-state gains and runs under every scheme, and
every malformed block is named with its shapes."""
from __future__ import annotations


import numpy as np
import pytest
import yaml
from scipy.signal import cont2discrete

from conftest import REPO_DIR
from scenario_edit import replaced
from dmpc_ros.api import reference, simulate
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario

EXAMPLES = REPO_DIR / "examples"
FOUR_TANK = yaml.safe_load((EXAMPLES / "four_tank.yaml").read_text())
CHAIN = yaml.safe_load((EXAMPLES / "mass_spring_linear.yaml").read_text())


def edited(data: dict, *path_and_value) -> dict:
    """A deep copy with data[p0][p1]... = value (list indices allowed)."""
    *path, value = path_and_value
    if len(path) == 1 and isinstance(path[0], list):   # (path list, value) as the parametrized cases give it
        path = path[0]
    return replaced(data, path, value)


@pytest.mark.parametrize("algorithm", ["jacobi", "admm", "centralized"])
def test_linear_chain_equals_the_mass_spring_family(algorithm: str) -> None:
    family = load_scenario("mass_spring").with_overrides(algorithm=algorithm, steps=30)
    generic = load_scenario(str(EXAMPLES / "mass_spring_linear.yaml")).with_overrides(algorithm=algorithm, steps=30)
    for a, b in zip(family.prediction_model().full_matrices(), generic.prediction_model().full_matrices()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(family.controller.Q, generic.controller.Q)
    a, b = simulate(family), simulate(generic)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.u, b.u)
    assert a.closed_loop_cost == b.closed_loop_cost


def test_continuous_matrices_are_discretized_exactly_on_the_whole_plant() -> None:
    scenario = load_scenario(str(EXAMPLES / "four_tank.yaml"))
    Ac, Bc = scenario.model.full_matrices()
    A, B = scenario.plant().full_matrices()
    Ad, Bd, *_ = cont2discrete((Ac, Bc, np.eye(4), np.zeros((4, 2))), 5.0, method="zoh")
    np.testing.assert_allclose(A, Ad, atol=1e-12)
    np.testing.assert_allclose(B, Bd, atol=1e-12)
    assert np.any(B[0:2, 1]) and np.any(B[2:4, 0])   # the other pump reaches each agent's tanks


def test_four_tank_setpoints_match_johansson_steady_state_gains() -> None:
    """Johansson (2000), eq. (3): h1 = T1/A1 (γ1 k1 v1 + (1 − γ2) k2 v2),
    h2 = T2/A2 ((1 − γ1) k1 v1 + γ2 k2 v2), h3 = T3/A3 (1 − γ2) k2 v2, h4 = T4/A4 (1 − γ1) k1 v1 (cm, V);
    free levels and pump inputs are solved."""
    scenario = load_scenario(str(EXAMPLES / "four_tank.yaml"))
    ref = scenario.design().reference
    T, area, k, g = (62, 90, 23, 30), (28, 32, 28, 32), (3.33, 3.35), (0.70, 0.60)
    for step in (0, 20, 100):
        (h1, h3, h2, h4), (v1, v2) = ref.at(step)[0] * 100, ref.at(step)[1]   # cm
        assert h1 == pytest.approx(T[0] / area[0] * (g[0] * k[0] * v1 + (1 - g[1]) * k[1] * v2), abs=1e-9)
        assert h2 == pytest.approx(T[1] / area[1] * ((1 - g[0]) * k[0] * v1 + g[1] * k[1] * v2), abs=1e-9)
        assert h3 == pytest.approx(T[2] / area[2] * (1 - g[1]) * k[1] * v2, abs=1e-9)
        assert h4 == pytest.approx(T[3] / area[3] * (1 - g[0]) * k[0] * v1, abs=1e-9)
    assert (ref.at(20)[0][[0, 2]] == pytest.approx([0.05, 0.04])
            and ref.at(100)[0][[0, 2]] == pytest.approx([0.01, 0.06]))


def test_four_tank_every_scheme_against_centralized() -> None:
    """Pump limits bind in both setpoint changes; the cooperative schemes and ADMM stay within 0.01 % of
    centralized MPC, the non-cooperative ones cost more, nothing violates a limit, every level settles."""
    scenario = load_scenario(str(EXAMPLES / "four_tank.yaml"))
    costs = {}
    for algorithm in ("centralized", "jacobi", "gauss_seidel", "admm", "noncooperative", "decentralized"):
        result = simulate(scenario, algorithm)
        costs[algorithm] = result.closed_loop_cost
        assert np.max(result.violation) < 1e-9, algorithm
        assert np.max(np.abs(result.u)) == pytest.approx(3.0, abs=1e-6), algorithm   # a pump at its limit
        assert scenario.metrics(result.x, result.u)["final_setpoint_error"] < 1e-4, algorithm
    centralized = reference(scenario, "admm").closed_loop_cost   # ADMM's problem: separable terminal cost
    assert costs["admm"] <= centralized * (1 + 1e-4)
    for algorithm in ("jacobi", "gauss_seidel"):   # closed-loop costs: a receding horizon is not ordered exactly
        assert abs(costs[algorithm] / costs["centralized"] - 1) <= 1e-4, algorithm
    assert costs["gauss_seidel"] < costs["noncooperative"] < costs["decentralized"]


@pytest.mark.parametrize("path_and_value,expected", [
    ((["model", "agents", 0, "B"], [[0.1, 0.2], [0.0, 0.0], [1.0, 1.0]]),
     r"model\.agents\[0\] \(left\)\.B: is 3×2, expected 2 rows"),
    ((["model", "agents", 1, "couplings", "left", "B"], [[0.0, 1.0], [0.0, 0.0]]),
     r"agent 'right': couplings\.left\.B \(n_x of right × n_u of left\) is 2×2, expected 2×1"),
    ((["model", "agents", 1, "couplings", "left"], {"A": [[1.0, 0.0, 0.0]]}),
     r"agent 'right': couplings\.left\.A \(n_x of right × n_x of left\) is 1×3, expected 2×2"),
    ((["model", "agents", 0, "couplings", "middle"], {"B": [[0.0], [1.0]]}),
     r"unknown agent 'middle'; agents: left, right"),
    ((["model", "agents", 0, "A"], [[1.0, 0.0]]),
     r"model\.agents\[0\] \(left\)\.A: 1×2 is not allowed: must be a square"),
    ((["model", "agents", 0, "Q"], [1.0, 2.0, 3.0]), r"model\.agents\[0\] \(left\)\.Q: has 3 entries, expected 2"),
    ((["model", "agents", 0, "R"], [0.0]), r"agent 'left': R must be symmetric positive definite"),
    ((["model", "agents", 0, "state_limits"], {"lower": [0.1, 0.0], "upper": [0.0, 0.1]}),
     r"state_limits: lower\[0\] = 0\.1 is above upper\[0\] = 0\.0: the set is empty"),
    ((["model", "agents", 0, "input_limits"], {"lower": [float("inf")], "upper": [float("inf")]}),
     r"input_limits: lower\[0\] = inf and upper\[0\] = inf leave no value: the set is empty"),   # was: unbounded
    ((["model", "agents", 0, "input_limits"], {"upper": [float("-inf")]}),
     r"input_limits: lower\[0\] = -inf and upper\[0\] = -inf leave no value"),
    ((["model", "agents", 0, "states"], ["h", "h"]), r"\(left\)\.states: 'h' is given twice"),
    ((["model", "agents", 0, "states"], ["h\ud800", "g"]), r"\.states: 'h\\ud800' is not allowed: must be valid"),
    ((["model", "graph"], [["left", "left"]]), r"graph: agents 'left' and 'right' are coupled .* no edge"),
    ((["model", "agents", 0, "couplings"], {}), None),   # uncoupled left: the declared edge is then checked
    ((["model", "time"], "sampled"), r"model\.time: 'sampled' is not allowed: must be one of discrete, continuous"),
    ((["model", "agents", 0, "colour"], "red"), r"model\.agents\[0\]\.colour: unknown field"),
    ((["model", "agents", 0, "A"], [[1.0, 2.0], [3.0]]),
     r"model\.agents\[0\] \(left\)\.A: rows of different lengths \(2, 1\) are not allowed"),
    ((["model", "agents"], {"left": {}}), r"model\.agents: \{'left': \{\}\} is not allowed: a list"),
])
def test_malformed_linear_models_name_agent_block_and_shapes(path_and_value, expected) -> None:
    data = edited(FOUR_TANK, *path_and_value)
    if expected is None:   # left no longer depends on right, but right still depends on left: edge still needed
        parse_scenario(data)
        data = edited(data, "model", "agents", 1, "couplings", {})
        expected = r"graph: the declared edge left–right couples nothing"
    with pytest.raises(ScenarioError, match=expected):
        parse_scenario(data)


@pytest.mark.parametrize("path_and_value,expected", [
    # the pumps cannot hold h1 7.5 cm above and h2 10 cm below P−: the steady inputs need about ±3.5 V
    ((["model", "agents", 1, "setpoints", 1, "x"], [-0.10, None]),
     r"the steady input agent 1 \(right\) needs to hold its setpoint at step 10 violates its input limits: "
     r"−v2 = 3\.\d+ > 3"),
    ((["model", "agents", 1, "setpoints", 1, "x"], [-0.06, None]),   # inputs fine, but tank 3 would run dry
     r"the setpoint of agent 0 \(left\) at step 10 is outside its state constraint set: −h3 = 0\.0\d+ > 0\.018"),
    # all four levels fixed: (h1, h3) and (h2, h4) cannot all be held by two pumps
    ((["model", "agents", 0, "setpoints", 1, "x"], [0.05, 0.05]),
     r"the setpoint at t = 50 s is not a steady state: no input holds the plant there .* leave states free"),
    ((["simulation", "initial_state"], [[0.1, 0.0], [0.0, 0.0]]),
     r"simulation\.initial_state: agent 0 \(left\) starts outside its state constraint set: h1 = 0\.1 > 0\.076"),
    ((["model", "agents", 1, "input_constraint"], {"H": [[1.0], [-1.0]], "h": [-1.0, -1.0]}),
     r"the input constraint set of agent 1 \(right\) is empty"),
])
def test_load_time_checks_name_the_cause(path_and_value, expected) -> None:
    with pytest.raises(ScenarioError, match=expected):
        parse_scenario(edited(FOUR_TANK, *path_and_value))


def test_unstabilizable_model_is_refused_naming_the_mode_and_unstable_models_are_fine() -> None:
    """A tank whose level rises on its own and that no pump reaches: refused before any DARE (it came out near
    2e16 before, and the centralized solver applied zero input); the same tank with a pump is accepted."""
    data = edited(FOUR_TANK, "model", "agents", 1, "A", [[0.01, 0.0333], [0.0, -0.0333]])   # h2 unstable
    parse_scenario(data)   # open-loop unstable, pump 2 reaches h2: fine
    data = edited(data, "model", "agents", 1, "B", [[0.0], [0.0]])
    data = edited(data, "model", "agents", 1, "setpoints", None)   # regulate it to P− (no pump could hold more)
    data = edited(data, "model", "agents", 1, "couplings", {})   # and pump 1 no longer reaches tank 4
    data = edited(data, "model", "graph", None)
    with pytest.raises(ScenarioError, match=r"model: \(A, B\) is not stabilizable: the mode λ = 1\.05\d* "
                                            r"\(\|λ\| = 1\.05\d*; states h2 0\.\d+, h4 0\.\d+\) "
                                            r"cannot be influenced by any input"):
        parse_scenario(data)
    undetected = edited(FOUR_TANK, "model", "agents", 1, "A", [[0.01, 0.0333], [0.0, -0.0333]])
    undetected = edited(undetected, "model", "agents", 1, "Q", [0.0, 1.0])
    with pytest.raises(ScenarioError, match=r"\(Q, A\) is not detectable: the mode .* states h2 .* no weight"):
        parse_scenario(undetected)


def test_discrete_matrices_and_polytopic_rows_with_a_shared_budget() -> None:
    """Discrete-time blocks are used as given; polytopic and shared rows reach the controller, and the shared
    row is refused for a scheme that ignores it."""
    data = {"model": {"type": "linear", "time": "discrete", "sample_time": 0.5, "agents": [
                {"name": "a", "A": [[0.9]], "B": [[0.5]], "couplings": {"b": {"A": [[0.05]]}},
                 "input_constraint": {"H": [[1.0], [-1.0]], "h": [1.0, 1.0]}, "setpoint": [1.0]},
                {"name": "b", "A": [[1.1]], "B": [[0.5]], "couplings": {"a": {"A": [[0.05]]}},
                 "input_limits": {"lower": [-1.0], "upper": [1.0]}, "setpoint": [1.0]}],
                      "shared_input_constraint": {"H": [[1.0, 1.0]], "h": [0.4]}},
            "controller": {"algorithm": "jacobi", "horizon": 10},
            "simulation": {"steps": 40, "initial_state": {"a": [0.0], "b": [0.0]}}}
    scenario = parse_scenario(data)
    A, B = scenario.plant().full_matrices()
    np.testing.assert_array_equal(A, [[0.9, 0.05], [0.05, 1.1]])
    x_ref, u_ref = scenario.design().reference.at(0)
    np.testing.assert_allclose(x_ref, [1.0, 1.0])
    np.testing.assert_allclose(A @ x_ref + B @ u_ref, x_ref)   # ū computed for the setpoints
    result = simulate(scenario)
    assert np.max(result.u.sum(axis=1)) <= 0.4 + 1e-9 and np.max(result.violation) < 1e-9
    with pytest.raises(ScenarioError, match="controller.algorithm: admm is not allowed here"):
        scenario.with_overrides(algorithm="admm")


def test_the_readme_linear_format_block_is_a_valid_scenario() -> None:
    text = (REPO_DIR / "README.md").read_text()
    block = text.split("```yaml\nname: two_tanks_readme\n", 1)[1].split("```", 1)[0]
    scenario = parse_scenario(yaml.safe_load("name: two_tanks_readme\n" + block))
    assert scenario.num_agents == 2 and scenario.model.shared_input_constraint is not None
    x_ref, u_ref = scenario.design().reference.at(20)
    assert x_ref[0] == pytest.approx(0.05) and u_ref[0] == pytest.approx(0.8)
    result = simulate(scenario.with_overrides(steps=30))
    assert np.max(result.violation) < 1e-6


def test_tube_mode_on_a_user_system_and_the_hint_when_plan_changes_dominate() -> None:
    """Each pump reaches the other agent's tank directly (B_ij), so unbounded plan changes between iterates make
    the tubes too wide and the refusal says which inputs to bound; bounded, the robust four-tank runs with
    vertex disturbances and never violates a limit."""
    data = edited(FOUR_TANK, "controller", "robust", "tube")
    data = edited(data, "simulation", {"steps": 60, "initial_state": "setpoint", "disturbance_kind": "vertices",
                                       "disturbance_bound": {"h1": 2e-5, "h2": 2e-5}})
    with pytest.raises(ScenarioError, match=r"tube is not possible here: .* bound them with "
                                            r"controller\.tube\.plan_change for v1, v2"):
        parse_scenario(data)
    scenario = parse_scenario(edited(data, "controller", "tube", {"plan_change": {"v1": 0.02, "v2": 0.02}}))
    result = simulate(scenario)
    assert np.max(result.violation) < 1e-9
    radii = np.concatenate([z.radii() for z in scenario.tubes.tubes])
    assert np.max(np.abs(result.x[:-1] - result.nominal_x) / radii) <= 1 + 1e-9   # inside the tubes throughout
