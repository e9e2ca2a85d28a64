"""Every QP and LP goes through one back-end registry (mpc/qp_backends): the built-ins serve the forms they declare,
a back end asked for a form it cannot serve is refused naming those that can, and a back end from another package
(entry point group dmpc_ros.qp_backends) serves agents, the centralized MPC, projections and the mpQP exploration."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import PACKAGE_DIR
from dmpc_ros.coordination.centralized import CentralizedMPC
from dmpc_ros.mpc.nonlinear_ocp import OptimalControlProblem, SolverSettings
from dmpc_ros.mpc.projection import Projection
from dmpc_ros.mpc.qp import BACKENDS, DenseQP
from dmpc_ros.mpc.qp_backends import FORMS, QPBackend, backend_names, qp_backend, register_backend
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario
from dmpc_ros.scenarios.yaml_file import read_yaml

HERE = Path(__file__).resolve().parent


def test_the_builtin_back_ends_serve_the_forms_they_declare() -> None:
    assert {"daqp", "osqp"} <= set(BACKENDS) and "clarabel" not in BACKENDS
    assert "clarabel" in backend_names("sparse") and "daqp" in backend_names("lp")
    for form in FORMS:
        assert backend_names(form), form   # every form has a built-in back end


def test_a_back_end_that_cannot_serve_a_form_is_refused_naming_those_that_can() -> None:
    with pytest.raises(ValueError, match=r"^QP back end 'osqp' cannot solve sparse problems \(sparse QPs with "
                                         r"equality rows and vector updates\): back ends that can: clarabel"):
        CentralizedMPC(*centralized_parts(), backend="osqp")
    with pytest.raises(ValueError, match=r"^QP back end 'clarabel' cannot solve dense problems .*: back ends that "
                                         r"can: daqp, osqp"):
        DenseQP(np.eye(2), np.eye(2), "clarabel")
    with pytest.raises(ValueError, match=r"QP back end 'cplex' is not allowed: must be one of daqp, osqp"):
        DenseQP(np.eye(2), np.eye(2), "cplex")
    with pytest.raises(ValueError, match=r"QP back end 'daqp' cannot solve sparse problems"):
        Projection(sp.eye(3), dense_limit=0, sparse_backend="daqp")
    with pytest.raises(ValueError, match=r"QP back end 'osqp' cannot solve lp problems"):
        qp_backend("osqp", "lp")
    with pytest.raises(ValueError, match=r"QP back end 'osqp' cannot solve dense_once problems"):
        OptimalControlProblem(None, (0,), 3, {}, SolverSettings(qp_backend="osqp"))
    with pytest.raises(ScenarioError, match=r"controller\.solver: 'clarabel' is not allowed: must be one of daqp"):
        load_scenario("mass_spring").with_overrides(solver="clarabel")
    data = read_yaml(Path(load_scenario("spring_chain").source))
    data["controller"]["nonlinear"]["qp_backend"] = "osqp"
    with pytest.raises(ScenarioError, match=r"controller\.nonlinear\.qp_backend: 'osqp' is not allowed: must be "
                                            r"one of daqp"):
        parse_scenario(data, source="spring_chain")


def test_registration_refuses_a_form_without_its_method_and_unknown_forms() -> None:
    class Incomplete(QPBackend):
        name, forms = "incomplete", frozenset({"dense", "lp"})

        def dense(self, H, A, equalities, tolerance):
            raise AssertionError("not called")

    with pytest.raises(ValueError, match=r"QP back end 'incomplete' declares lp but does not define solve_lp"):
        register_backend(Incomplete())
    Incomplete.forms = frozenset({"conic"})
    with pytest.raises(ValueError, match=r"forms \['conic'\] are not allowed"):
        register_backend(Incomplete())
    assert "incomplete" not in backend_names()


def centralized_parts():
    design = load_scenario("mass_spring").design()
    return design.system, design.shared_cost, design.horizon


PLUGIN_RUN = """
import json
from pathlib import Path
import numpy as np
import scipy.sparse as sp
from dmpc_example_qp_backend import CALLS
from dmpc_ros.api import simulation_settings
from dmpc_ros.coordination.centralized import CentralizedMPC
from dmpc_ros.mpc.multiparametric import ParametricQP, explore
from dmpc_ros.mpc.projection import Projection
from dmpc_ros.mpc.qp import BACKENDS
from dmpc_ros.scenarios import load_scenario, parse_scenario
from dmpc_ros.scenarios.yaml_file import read_yaml
from dmpc_ros.sim import simulate

out = {"allowed": list(BACKENDS)}
base = load_scenario("mass_spring").with_overrides(algorithm="jacobi", steps=3)
for name in ("daqp", "tally"):
    scenario = base.with_overrides(solver=name)
    result = simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                      simulation_settings(scenario, "jacobi", False))
    out[f"agents_{name}"] = result.u.tolist()
out["after_agents"] = dict(CALLS)
data = read_yaml(Path(load_scenario("spring_chain").source))   # sensitivity-based DMPC, local SQP: 3 masses, 2 steps
data["model"]["parameters"]["masses"] = 3
data["simulation"].update(steps=2, initial_state=data["simulation"]["initial_state"][:3])
data["controller"]["horizon"] = 8
for name in ("daqp", "tally"):
    data["controller"]["nonlinear"]["qp_backend"] = name
    scenario = parse_scenario(data, source="spring_chain")
    result = simulate(scenario.design(), scenario.plant(), scenario.initial_state,
                      simulation_settings(scenario, "sensitivity", False))
    out[f"sqp_{name}"] = result.u.tolist()
out["after_sqp"] = dict(CALLS)
design = base.design()
for name in ("clarabel", "tally"):
    mpc = CentralizedMPC(design.system, design.shared_cost, design.horizon, design.terminal_set, backend=name)
    out[f"centralized_{name}"] = mpc.solve(base.initial_state)[1].tolist()
rng = np.random.default_rng(3)
C = sp.random(12, 8, density=0.4, random_state=4, format="csr")
d, point = rng.uniform(0.1, 1.0, 12), rng.normal(size=8) * 3
for name in ("clarabel", "tally"):
    out[f"projection_{name}"] = Projection(C, dense_limit=0, sparse_backend=name).solve(d, point)[0].tolist()
problem = ParametricQP(np.eye(2), np.zeros(2), np.array([[1.0], [0.5]]), np.vstack([np.eye(2), -np.eye(2)]),
                       np.ones(4), np.zeros((4, 1)), np.array([-3.0]), np.array([3.0]))
for name in ("daqp", "tally"):
    out[f"regions_{name}"] = [region.active for region in explore(problem, backend=name).regions]
out["calls"] = dict(CALLS)
print(json.dumps(out))
"""


def test_a_back_end_from_another_package_serves_every_qp_of_the_package() -> None:
    """test/plugins holds a package whose dist-info declares `tally` in group dmpc_ros.qp_backends (as `pip install`
    would put it): with it on the path it is an allowed controller.solver and controller.nonlinear.qp_backend, and
    the agents' QPs, the SQP subproblems, the centralized MPC, a sparse projection and the mpQP exploration all
    reach it; it hands the problems to the built-ins, so every answer equals theirs."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE / "plugins"), str(PACKAGE_DIR)]))
    run = subprocess.run([sys.executable, "-c", PLUGIN_RUN], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["allowed"] == ["daqp", "osqp", "tally"]
    assert out["after_agents"].get("dense", 0) > 0 and set(out["after_agents"]) == {"dense"}
    assert out["agents_tally"] == out["agents_daqp"]
    assert out["after_sqp"].get("dense_once", 0) > 0 and out["sqp_tally"] == out["sqp_daqp"]
    assert out["centralized_tally"] == out["centralized_clarabel"]
    assert out["projection_tally"] == out["projection_clarabel"]
    assert out["regions_tally"] == out["regions_daqp"] and len(out["regions_daqp"]) > 1
    calls = out["calls"]
    assert calls["sparse"] == 2 and calls["lp"] > 0 and calls["dense_once"] > 0, calls
