"""Scripted disturbances (simulation.disturbances): every refusal of the schema, the sampled sequences exactly,
their superposition, and a load step that moves the simulated chain as the physics says."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO_DIR
from dmpc_ros.api import simulation_settings
from dmpc_ros.scenarios import ScenarioError, load_scenario
from dmpc_ros.sim import simulate
from dmpc_ros.sim.disturbances import PlantDisturbance, Pulse, Ramp, ScriptedDisturbance, Series, Step, \
    scripted_sequences

DT = 0.1


def chain(tmp_path: Path, disturbances: object, steps: int = 40, **simulation) -> Path:
    """A mass_spring copy with the given simulation.disturbances, written next to tmp_path's CSV files."""
    data = yaml.safe_load((REPO_DIR / "dmpc_ros" / "config" / "mass_spring.yaml").read_text())
    data["simulation"].update(steps=steps, disturbances=disturbances, **simulation)
    data["controller"]["algorithm"] = "centralized"
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return name


ERRORS = [
    ({"agent": 2}, r"simulation\.disturbances: \{'agent': 2\} is not allowed: must be a list of entries"),
    ([3], r"simulation\.disturbances\[0\]: 3 is not allowed: must be a mapping"),
    ([{"input": "F", "step": {"time": 1, "value": 1}}], r"\[0\]\.agent: missing; give an agent name \(mass_0"),
    ([{"agent": "mass_9", "input": "F", "step": {"time": 1, "value": 1}}],
     r"\[0\]\.agent: 'mass_9' is not allowed: it is no agent; give an agent name .* or index 0\.\.3"),
    ([{"agent": 4, "input": "F", "step": {"time": 1, "value": 1}}], r"\[0\]\.agent: 4 is not allowed: .*index 0\.\.3"),
    ([{"agent": 1.5, "input": "F", "step": {"time": 1, "value": 1}}],
     r"\[0\]\.agent: 1\.5 is not allowed: must be an "),
    ([{"agent": 1, "step": {"time": 1, "value": 1}}], r"\[0\]: give exactly one channel, state or input, got none"),
    ([{"agent": 1, "state": "v", "input": "F", "step": {"time": 1, "value": 1}}],
     r"\[0\]: give exactly one channel, state or input, got state and input"),
    ([{"agent": 1, "state": "q", "step": {"time": 1, "value": 1}}],
     r"\[0\]\.state: 'q' is not allowed: unknown state of mass_1; its states: p \(p_1\), v \(v_1\)"),
    ([{"agent": 1, "input": "v", "step": {"time": 1, "value": 1}}], r"\[0\]\.input: 'v' is not allowed: unknown input"),
    ([{"agent": 1, "input": "F"}], r"\[0\]: give exactly one shape of step, ramp, pulse, csv, got none"),
    ([{"agent": 1, "input": "F", "step": {"time": 1, "value": 1}, "pulse": {}}],
     r"\[0\]: give exactly one shape of .*, got step and pulse"),
    ([{"agent": 1, "input": "F", "jump": {}}], r"\[0\]\.jump: unknown field; allowed: agent, csv, input, pulse, ramp"),
    ([{"agent": 1, "input": "F", "step": 0.3}], r"\[0\]\.step: 0\.3 is not allowed: must be a mapping"),
    ([{"agent": 1, "input": "F", "step": {"value": 1}}], r"\[0\]\.step\.time: missing; a number is required"),
    ([{"agent": 1, "input": "F", "step": {"time": -1, "value": 1}}],
     r"\[0\]\.step\.time: -1 is not allowed: must be ≥ 0"),
    ([{"agent": 1, "input": "F", "step": {"time": 1, "value": "big"}}], r"\[0\]\.step\.value: 'big' is not allowed"),
    ([{"agent": 1, "input": "F", "step": {"time": 1, "value": 1, "until": 2}}], r"\[0\]\.step\.until: unknown field"),
    ([{"agent": 1, "input": "F", "ramp": {"start": 2, "end": 1, "final": 1}}],
     r"\[0\]\.ramp\.end: 1 is not allowed: must be > 2\.0"),
    ([{"agent": 1, "input": "F", "ramp": {"start": 0, "end": 1}}],
     r"\[0\]\.ramp: give exactly one of slope \[unit/s\] or final \[unit\], got neither"),
    ([{"agent": 1, "input": "F", "ramp": {"start": 0, "end": 1, "slope": 1, "final": 1}}],
     r"\[0\]\.ramp: give exactly one of .*, got both"),
    ([{"agent": 1, "input": "F", "pulse": {"start": 1, "duration": -0.5, "value": 1}}],
     r"\[0\]\.pulse\.duration: -0\.5 is not allowed: must be > 0"),
    ([{"agent": 1, "input": "F", "pulse": {"start": 1, "duration": 0, "value": 1}}],
     r"\[0\]\.pulse\.duration: 0 is not allowed: must be > 0"),
    ([{"agent": 1, "input": "F", "csv": {}}], r"\[0\]\.csv\.file: missing; give the path of a CSV file"),
    ([{"agent": 1, "input": "F", "csv": {"file": 3}}], r"\[0\]\.csv\.file: 3 is not allowed: must be the path"),
    ([{"agent": 1, "input": "F", "csv": {"file": "absent.csv"}}], r"\[0\]\.csv\.file: 'absent\.csv': file .* does not"),
    ([{"agent": 1, "input": "F", "csv": {"file": "ok.csv", "interpolation": "cubic"}}],
     r"\[0\]\.csv\.interpolation: 'cubic' is not allowed: must be one of zero_order_hold, linear"),
]
CSV_ERRORS = [
    ("", r"ok\.csv: the file is empty"),
    ("t,value\n0,1\n", r"ok\.csv: the header \['t', 'value'\] has no 'time' column"),
    ("time,force\n0,1\n", r"ok\.csv: column 'force' is not allowed; allowed: time, value"),
    ("time\n0\n", r"ok\.csv: column 'value' is missing; required: time, value"),
    ("time,value,value\n0,1,2\n", r"ok\.csv: column 'value' is given twice"),
    ("time,value\n", r"ok\.csv: no samples below the header"),
    ("time,value\n0,1\n1\n", r"ok\.csv: row 3 has 1 cells, the header 2"),
    ("time,value\n0,1\n1,heavy\n", r"ok\.csv: row 3, column 'value': 'heavy' is not allowed: must be a finite number"),
    ("time,value\n0,1\n1,nan\n", r"ok\.csv: row 3, column 'value': 'nan' is not allowed: must be a finite number"),
    ("time,value\n0,1\n1,\n", r"ok\.csv: row 3, column 'value': '' is not allowed"),
    ("time,value\n0,1\n2,1\n1,0\n",
     r"ok\.csv: row 4: time 1 is not allowed: times must increase strictly \(previous 2\)"),
    ("time,value\n0,1\n0,2\n", r"ok\.csv: row 3: time 0 is not allowed: times must increase strictly"),
]


@pytest.mark.parametrize("entries,message", ERRORS)
def test_every_malformed_entry_is_refused_naming_the_field(tmp_path: Path, entries, message: str) -> None:
    write(tmp_path, "ok.csv", "time,value\n0,1\n")
    with pytest.raises(ScenarioError, match=message) as error:
        load_scenario(str(chain(tmp_path, entries)))
    assert "\n" not in str(error.value) and "simulation.disturbances" in str(error.value)


@pytest.mark.parametrize("text,message", CSV_ERRORS)
def test_every_malformed_csv_is_refused_naming_the_file_and_the_cell(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "ok.csv", text)
    with pytest.raises(ScenarioError, match=r"simulation\.disturbances\[0\]\.csv\.file: " + message):
        load_scenario(str(chain(tmp_path, [{"agent": 1, "input": "F", "csv": {"file": "ok.csv"}}])))


def test_an_unreadable_csv_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ok.csv").mkdir()
    with pytest.raises(ScenarioError, match=r"csv\.file: 'ok\.csv': file .* cannot be read"):
        load_scenario(str(chain(tmp_path, [{"agent": 1, "input": "F", "csv": {"file": "ok.csv"}}])))


def test_entries_resolve_agents_by_name_or_index_and_channels_by_symbol_or_name(tmp_path: Path) -> None:
    write(tmp_path, "ok.csv", "time,value\n0.5,2\n")
    scenario = load_scenario(str(chain(tmp_path, [
        {"agent": "mass_2", "input": "F", "step": {"time": 2.0, "value": 0.3}},
        {"agent": 1, "state": "v_1", "pulse": {"start": 1.0, "duration": 0.3, "value": -0.1}},
        {"agent": 3, "input": "F_3", "csv": {"file": "ok.csv"}}])))
    first, second, third = scenario.scripted_disturbances
    assert (first.agent, first.channel, first.index, first.shape) == (2, "input", 2, Step(2.0, 0.3))
    assert (second.agent, second.channel, second.index, second.shape) == (1, "state", 3, Pulse(1.0, 0.3, -0.1))
    assert (third.index, third.shape) == (3, Series((0.5,), (2.0,), "zero_order_hold"))
    assert first.label == "F_2 of mass_2 (step)"


def test_no_entry_leaves_the_plant_undisturbed_bit_for_bit() -> None:
    """Without entries the random draws are the whole state disturbance, as before, and no input is added."""
    robust = load_scenario("mass_spring_robust")
    assert robust.scripted_disturbances == () and robust.input_disturbance() is None
    np.testing.assert_array_equal(robust.disturbance(), robust.random_disturbance())
    assert load_scenario("mass_spring").plant_disturbance().state is None


def test_random_draws_add_on_top_of_the_scripted_entries(tmp_path: Path) -> None:
    entries = [{"agent": 0, "state": "v", "step": {"time": 0.0, "value": 0.5}}]
    scenario = load_scenario(str(chain(tmp_path, entries, disturbance_bound=[0.0, 0.01], disturbance_seed=3)))
    random = scenario.random_disturbance()
    assert np.any(random)
    expected = random.copy()
    expected[:, 1] += 0.5
    np.testing.assert_array_equal(scenario.disturbance(), expected)


def sequence(shape, steps: int = 30, channel: str = "state") -> np.ndarray:
    state, applied = scripted_sequences([ScriptedDisturbance(0, channel, 0, shape)], steps, DT, 1, 1)
    return (state if channel == "state" else applied)[:, 0]


def test_the_shapes_sample_exactly() -> None:
    k = np.arange(30)
    np.testing.assert_array_equal(sequence(Step(0.7, 0.3)), np.where(k >= 7, 0.3, 0.0))   # 7·0.1 rounds up
    np.testing.assert_array_equal(sequence(Step(0.3, 1.0)), np.where(k >= 3, 1.0, 0.0))   # 3·0.1 > 0.3 in floats
    np.testing.assert_array_equal(sequence(Pulse(1.0, 0.5, -2.0)), np.where((k >= 10) & (k < 15), -2.0, 0.0))
    ramp = sequence(Ramp(1.0, 2.0, 0.4))
    np.testing.assert_allclose(ramp, np.clip((k - 10) / 10, 0, 1) * 0.4, rtol=0, atol=1e-15)
    assert ramp[10] == 0.0 and ramp[20] == 0.4 and ramp[29] == 0.4
    held = sequence(Series((0.5, 1.0, 2.05), (1.0, -1.0, 3.0)), channel="input")
    np.testing.assert_array_equal(held, np.select([k >= 21, k >= 10, k >= 5], [3.0, -1.0, 1.0], 0.0))
    linear = sequence(Series((0.5, 1.5), (0.0, 2.0), "linear"))
    np.testing.assert_allclose(linear, np.where(k < 5, 0.0, np.clip((k - 5) / 10, 0, 1) * 2.0), atol=1e-15)


def test_a_ramp_by_slope_ends_at_slope_times_duration(tmp_path: Path) -> None:
    scenario = load_scenario(str(chain(tmp_path, [
        {"agent": 0, "input": "F", "ramp": {"start": 1.0, "end": 1.5, "slope": 0.4}}])))
    assert scenario.scripted_disturbances[0].shape == Ramp(1.0, 1.5, 0.2)


values = st.floats(-10, 10, allow_nan=False)
times = st.integers(0, 40).map(lambda k: k * DT)
durations = st.integers(1, 10).map(lambda k: k * DT)
shapes = st.one_of(st.builds(Step, times, values), st.builds(Pulse, times, durations, values),
                   st.builds(lambda a, d, v: Ramp(a, a + d, v), times, durations, values))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(shapes, st.sampled_from(["state", "input"]), st.integers(0, 2)), min_size=1, max_size=5))
def test_entries_superpose(entries) -> None:
    """Several entries add up: the sequence of all equals the sum of the sequences of each alone."""
    scripted = [ScriptedDisturbance(0, channel, index, shape) for shape, channel, index in entries]
    state, applied = scripted_sequences(scripted, 50, DT, 3, 3)
    total_state, total_input = np.zeros((50, 3)), np.zeros((50, 3))
    for entry in scripted:
        alone = scripted_sequences([entry], 50, DT, 3, 3)
        total_state += alone[0] if alone[0] is not None else 0.0
        total_input += alone[1] if alone[1] is not None else 0.0
    np.testing.assert_allclose(state if state is not None else 0.0, total_state, atol=1e-12)
    np.testing.assert_allclose(applied if applied is not None else 0.0, total_input, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=12, unique=True).map(sorted), st.data())
def test_a_zero_order_hold_series_reproduces_its_samples(steps_at, data) -> None:
    """Sampled at its own times (multiples of Δt) a zero-order-hold series gives back its values, holds each until
    the next sample and is zero before the first."""
    sample_steps = np.cumsum(np.asarray(steps_at) + 1)
    samples = data.draw(st.lists(values, min_size=len(steps_at), max_size=len(steps_at)))
    shape = Series(tuple((sample_steps * DT).tolist()), tuple(samples))
    sequence_ = sequence(shape, steps=int(sample_steps[-1]) + 3)
    for i, k in enumerate(sample_steps):
        end = sample_steps[i + 1] if i + 1 < len(sample_steps) else sequence_.size
        assert np.all(sequence_[k:end] == samples[i])
    assert np.all(sequence_[:sample_steps[0]] == 0.0)


def test_the_plant_adds_input_and_state_disturbances() -> None:
    class Linear:
        def step(self, x, u, w=None):
            return 2.0 * x + 3.0 * u + (0.0 if w is None else w)

    disturbance = PlantDisturbance(np.array([[0.5]]), np.array([[0.25]]))
    assert disturbance.step(Linear(), np.array([1.0]), np.array([1.0]), 0) == pytest.approx(2.0 + 3.0 * 1.25 + 0.5)
    assert PlantDisturbance().step(Linear(), np.array([1.0]), np.array([1.0]), 0) == 5.0


def test_a_load_step_moves_the_chain_as_the_physics_says(tmp_path: Path) -> None:
    """A 0.3 N load on mass 2 (1 kg) from step 20: the run equals the undisturbed one bit for bit before; at step 21
    the state differs by exactly B[:, F_2]·0.3 of the plant (same x(20), same u(20)), whose velocity entry is
    ΔT·F/m to first order in the spring couplings; every step obeys x(k+1) = A x + B (u + d) with the applied u."""
    loaded = load_scenario(str(chain(tmp_path, [{"agent": "mass_2", "input": "F", "step": {"time": 2.0,
                                                                                            "value": 0.3}}], 30)))
    free = load_scenario(str(chain(tmp_path, None, 30)))
    runs = [simulate(s.design(), s.plant(), s.initial_state, simulation_settings(s, "centralized", False))
            for s in (loaded, free)]
    np.testing.assert_array_equal(runs[0].x[:21], runs[1].x[:21])
    np.testing.assert_array_equal(runs[0].u[:21], runs[1].u[:21])
    A, B = loaded.plant().full_matrices()
    jump = runs[0].x[21] - runs[1].x[21]
    np.testing.assert_allclose(jump, B[:, 2] * 0.3, atol=1e-15)
    assert jump[5] == pytest.approx(0.3 * DT / 1.0, rel=0.05)            # Δv_2 ≈ F Δt / m
    assert jump[4] == pytest.approx(0.3 * DT ** 2 / 2 / 1.0, rel=0.05)   # Δp_2 ≈ F Δt² / (2 m)
    d = np.zeros(4)
    for k in range(30):
        d[2] = 0.3 if k >= 20 else 0.0
        np.testing.assert_allclose(runs[0].x[k + 1], A @ runs[0].x[k] + B @ (runs[0].u[k] + d), atol=1e-13)


def test_the_shipped_load_example_runs_and_plots_its_disturbances(tmp_path: Path) -> None:
    out = tmp_path / "run"
    example = REPO_DIR / "examples" / "mass_spring_load.yaml"
    run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli", "sim", str(example), "--output", str(out),
                          "--no-reference"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_constraint_violation"] < 1e-9
    assert (out / "disturbances.png").stat().st_size > 1000
    x = np.load(out / "trajectory.npz")["x"]
    assert 0.02 < x[-1, 4] < 0.08   # mass 2 rests off zero under the 0.3 N load (no integral action)


@pytest.mark.ros
@pytest.mark.slow
def test_a_lock_step_ros_run_applies_the_same_disturbances_as_dmpc_sim(tmp_path: Path) -> None:
    """The shipped load example over ROS 2 (lock-step, 24 steps: the load step at 2 s is in) equals `dmpc sim` bit
    for bit: the plant node applies the sequences the scenario computes (sim/disturbances.py), not its own."""
    example, steps = str(REPO_DIR / "examples" / "mass_spring_load.yaml"), "24"
    dmpc = [sys.executable, "-m", "dmpc_ros.cli"]
    run = subprocess.run(dmpc + ["run", example, "--steps", steps, "--output", str(tmp_path / "ros"),
                                 "--iteration-timeout", "30"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    simulated = subprocess.run(dmpc + ["sim", example, "--steps", steps, "--output", str(tmp_path / "sim"),
                                       "--no-reference"], capture_output=True, text=True, timeout=300)
    assert simulated.returncode == 0, simulated.stderr
    ros, sim = np.load(tmp_path / "ros" / "trajectory.npz"), np.load(tmp_path / "sim" / "trajectory.npz")
    np.testing.assert_array_equal(ros["x"], sim["x"])
    np.testing.assert_array_equal(ros["u"], sim["u"])
    assert ros["x"][-1, 4] > sim["x"][20, 4] or ros["x"][21, 5] != ros["x"][20, 5]   # the load acted
