"""References from CSV files: a linear agent's `setpoints: {csv}` and the nonlinear family's `model.reference`
reproduce the same references written inline, and malformed files are refused naming the field."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO_DIR
from dmpc_ros.scenarios import ScenarioError, load_scenario


def four_tank(tmp_path: Path, setpoints: object, csv: str | None = None) -> Path:
    data = yaml.safe_load((REPO_DIR / "examples" / "four_tank.yaml").read_text())
    data["model"]["agents"][0]["setpoints"] = setpoints
    if csv is not None:
        (tmp_path / "tables").mkdir(exist_ok=True)
        (tmp_path / "tables" / "left.csv").write_text(csv)
    path = tmp_path / "four_tank.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def reference(scenario):
    trajectory = scenario.reference_trajectory(scenario.prediction_model())
    return trajectory.states, trajectory.inputs


@pytest.mark.parametrize("interpolation", ["step", "linear"])
def test_csv_setpoints_equal_the_listed_ones(tmp_path: Path, interpolation: str) -> None:
    """left.csv holds the rows of four_tank.yaml's left setpoints (h3 absent or blank: free), relative to the file."""
    listed = yaml.safe_load((REPO_DIR / "examples" / "four_tank.yaml").read_text())
    listed["model"]["setpoint_interpolation"] = interpolation
    (tmp_path / "listed.yaml").write_text(yaml.safe_dump(listed))
    csv = "time,h1,h3\n0,0.0,\n50,0.05,\n400,0.01,\n"
    path = four_tank(tmp_path, {"csv": "tables/left.csv"}, csv)
    data = yaml.safe_load(path.read_text())
    data["model"]["setpoint_interpolation"] = interpolation
    path.write_text(yaml.safe_dump(data))
    expected, actual = reference(load_scenario(str(tmp_path / "listed.yaml"))), reference(load_scenario(str(path)))
    np.testing.assert_array_equal(actual[0], expected[0])
    np.testing.assert_array_equal(actual[1], expected[1])


@pytest.mark.parametrize("csv,message", [
    ("time,h1\n5,0.0\n", r"left\.csv: the first time is 5, not allowed: the first setpoint holds from time 0"),
    ("time,h9\n0,0.0\n", r"left\.csv: column 'h9' is not allowed; allowed: time, h1, h3, v1"),
    ("time,h1\n0,x\n", r"left\.csv: row 2, column 'h1': 'x' is not allowed: must be a finite number \(or blank"),
    ("time,h1\n0,0\n0,1\n", r"left\.csv: row 3: time 0 is not allowed: times must increase strictly"),
])
def test_malformed_csv_setpoints_are_refused(tmp_path: Path, csv: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=r"model\.agents\[0\] \(left\)\.setpoints\.csv: " + message):
        load_scenario(str(four_tank(tmp_path, {"csv": "tables/left.csv"}, csv)))


def test_a_missing_csv_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"setpoints\.csv: 'tables/none\.csv': file .* does not exist"):
        load_scenario(str(four_tank(tmp_path, {"csv": "tables/none.csv"})))
    with pytest.raises(ScenarioError, match=r"setpoints\.file: unknown field; allowed: csv"):
        load_scenario(str(four_tank(tmp_path, {"file": "left.csv"})))


def nonlinear(tmp_path: Path, entries: object, csv: str = "") -> Path:
    data = yaml.safe_load((REPO_DIR / "dmpc_ros" / "config" / "four_tank_nonlinear.yaml").read_text())
    data["model"]["reference"] = entries
    (tmp_path / "left.csv").write_text(csv)
    path = tmp_path / "tank.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_nonlinear_csv_reference_overrides_only_its_columns(tmp_path: Path) -> None:
    """h1 of four_tank_nonlinear from a CSV with its own setpoint times and values: the same reference; a second
    file changing h1 at 100 s moves only h1 from then on (h3, v1 keep the example's steady values)."""
    shipped = load_scenario("four_tank_nonlinear")
    same = load_scenario(str(nonlinear(tmp_path, [{"agent": "left", "csv": "left.csv"}],
                                       "time,h1\n0,0.124\n50,0.174\n400,0.134\n")))
    for a, b in zip(reference(same), reference(shipped)):
        np.testing.assert_array_equal(a, b)
    changed = load_scenario(str(nonlinear(tmp_path, [{"agent": 0, "csv": "left.csv", "interpolation": "linear"}],
                                          "time,h1\n0,0.124\n100,0.144\n")))
    states, inputs = reference(changed)
    k = np.arange(states.shape[0]) * changed.sample_time
    np.testing.assert_allclose(states[:, 0], np.interp(k, [0, 100], [0.124, 0.144]), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(states[:, 1:], reference(shipped)[0][:, 1:])
    np.testing.assert_array_equal(inputs, reference(shipped)[1])


@pytest.mark.parametrize("entries,csv,message", [
    ({"agent": 0}, "", r"model\.reference: \{'agent': 0\} is not allowed: must be a list"),
    ([{"agent": "middle", "csv": "left.csv"}], "time,h1\n0,0.1\n", r"model\.reference\[0\]\.agent: 'middle' is not"),
    ([{"agent": 0}], "", r"model\.reference\[0\]\.csv: missing; give the path of a CSV file with columns time"),
    ([{"agent": 0, "csv": "left.csv"}], "time\n0\n", r"model\.reference\[0\]\.csv: left\.csv: no column besides"),
    ([{"agent": 0, "csv": "left.csv", "interpolation": "spline"}], "time,h1\n0,0.1\n",
     r"model\.reference\[0\]\.interpolation: 'spline' is not allowed"),
    ([{"agent": 0, "csv": "left.csv"}], "time,h2\n0,0.1\n", r"column 'h2' is not allowed; allowed: time, h1, h3, v1"),
])
def test_malformed_nonlinear_references_are_refused(tmp_path: Path, entries, csv: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario(str(nonlinear(tmp_path, entries, csv)))
