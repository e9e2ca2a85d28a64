"""Fuzzing the scenario boundary: mutated scenario data, scenario files as bytes and override sets give either a
valid scenario (which then runs) or one ScenarioError line naming the problem; never a traceback, never a hang.

The gate replays fixed examples (conftest's "gate" profile); `DMPC_FUZZ_EXAMPLES=2000 HYPOTHESIS_PROFILE=explore`
explores further.
"""
from __future__ import annotations

import copy
import os
import signal
from contextlib import contextmanager

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO_DIR
from dmpc_ros.api import simulate
from dmpc_ros.scenarios import ScenarioError, load_scenario, parse_scenario, scenario_path
from dmpc_ros.scenarios.schema import OVERRIDES

EXAMPLES = int(os.environ.get("DMPC_FUZZ_EXAMPLES", "40"))
CASE_SECONDS = 60   # a case that takes longer counts as a hang
BASES = {name: yaml.safe_load(scenario_path(name).read_text())
         for name in ("mass_spring", "mass_budget", "platoon", "formation", "mass_spring_robust")}
BASES["four_tank"] = yaml.safe_load((REPO_DIR / "examples" / "four_tank.yaml").read_text())

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.sampled_from([0, 1, 2, 1000, 10**6, -1]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "nan", "inf", "∞", "jacobi", "osqp", "1e309", "\u202e", "ü"]),
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)), max_size=6),
    st.lists(st.lists(st.floats(-2, 2), min_size=1, max_size=3), max_size=5),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3), max_size=3))


def paths(data, prefix=()) -> list[tuple]:
    """Every key or index path in a scenario's data tree."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data[:4]):
            found += paths(value, prefix + (index,))
    return found


@st.composite
def mutated_scenarios(draw):
    """A shipped scenario with 1–3 random edits: a value replaced by junk, a key removed, an unknown key added."""
    name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(data)))
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            parent.pop(where[-1], None)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(junk)
        else:
            parent[where[-1]] = draw(junk)
    if draw(st.integers(0, 20)) == 0:   # now and then the whole document is junk
        data = draw(junk)
    return data


@contextmanager
def time_bound(seconds: int):
    def hang(signum, frame):
        raise AssertionError(f"no answer within {seconds} s: a hang")
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line(error: ScenarioError) -> None:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text, text


def runs_briefly(scenario) -> None:
    """A valid scenario small enough to try runs two steps (its own algorithm)."""
    if scenario.num_agents <= 12 and scenario.controller.horizon <= 40:
        try:
            result = simulate(scenario.with_overrides(steps=2))
        except ScenarioError as error:   # e.g. steps=2 shorter than a profile the scenario needs
            one_line(error)
            return
        assert result.steps >= 1


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_scenarios())
def test_mutated_scenario_data_gives_a_scenario_or_one_clear_line(data) -> None:
    with time_bound(CASE_SECONDS):
        try:
            scenario = parse_scenario(data)
        except ScenarioError as error:
            one_line(error)
            return
        runs_briefly(scenario)


@settings(max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(BASES)), edit=st.sampled_from(["bytes", "latin-1", "duplicate", "truncate",
                                                                  "unicode", "tabs"]),
       blob=st.binary(max_size=64), where=st.floats(0, 1), text=st.text(max_size=30))
def test_scenario_files_as_bytes_give_a_scenario_or_one_clear_line(tmp_path, name, edit, blob, where, text) -> None:
    """Bytes spliced in, a Latin-1 file, sections given twice, a cut file, stray unicode (lone surrogates too), tabs
    for indentation: one line naming the problem (PyYAML's several-line reports were passed on as they were)."""
    source = yaml.safe_dump(BASES[name], allow_unicode=True, sort_keys=False)
    cut = int(where * len(source))
    content = {"bytes": source.encode()[:cut] + blob + source.encode()[cut:],
               "latin-1": (source + f"\ndescription: caf\u00e9 {text}\n").encode("latin-1", "replace"),
               "duplicate": (source + "\n" + source.split("\n", 3)[-1]).encode(),
               "truncate": source.encode()[:cut],
               "unicode": (source[:cut] + text + source[cut:]).encode("utf-8", "surrogatepass"),
               "tabs": source.replace("  ", "\t", 1 + cut % 5).encode()}[edit]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    with time_bound(CASE_SECONDS):
        try:
            load_scenario(str(path))
        except ScenarioError as error:
            one_line(error)


@pytest.mark.parametrize("name", ["mass_spring", "platoon"])
def test_override_sets_give_a_scenario_or_one_clear_line(name) -> None:
    scenario = load_scenario(name)

    @settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.dictionaries(st.sampled_from(sorted(OVERRIDES)), junk, min_size=1, max_size=3))
    def check(overrides) -> None:
        with time_bound(CASE_SECONDS):
            try:
                scenario.with_overrides(**overrides)
            except ScenarioError as error:
                one_line(error)

    check()


# -- hostile files (issue 27): sizes bounded, one capped line each, merge keys read ------------------------------------
def bomb(levels: int, width: int) -> str:
    lines = ["  a0: &a0 [lol]"] + [f"  a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * width)}]" for k in range(1, levels)]
    return "description:\n" + "\n".join(lines) + "\n"


MASS_SPRING = yaml.safe_dump({k: v for k, v in BASES["mass_spring"].items() if k not in ("description", "name")},
                             sort_keys=False)


@pytest.mark.parametrize("tail,expected", [
    (bomb(6, 10), "description: a mapping is not allowed: must be text"),   # a 312 MB message before
    (bomb(9, 9), "more than 1000000 values with its aliases expanded"),   # MemoryError before
    ("junk: [" + ", ".join(["&a 1"] + ["*a"] * 1500) + "]\n", "more than 1000 aliases"),
    ("description: &r [*r]\n", "a recursive alias"),                 # RecursionError before
    ("junk: &j [1, {a: *j}]\n", "a recursive alias"),
    ("description: " + "[" * 100 + "]" * 100 + "\n", "nested more than 32 levels deep"),
    ("description: " + "[" * 50000 + "]" * 50000 + "\n", "nested more than 32 levels deep"),
    ("steps_again: " + "9" * 400 + "\n", "has 400 characters; at most 30"),   # OverflowError before
    ("steps_again: " + "9" * 5000 + "\n", "has 5000 characters"),             # int()'s 4300-digit ValueError
    ("description: \"a\\ud800b\"\n", "a lone surrogate"),
    ("description: " + "x" * 20_000 + "\n", "a value of 20000 characters is not allowed: at most 10000"),
    ("description: [1, 2]\n", "description: a list is not allowed: must be text"),
    ("name: \"n\\0x\"\n", "name: 'n\\x00x' is not allowed: must be text without control characters"),
    ("name: 12\n", "name: an integer is not allowed: must be text"),
])
def test_hostile_yaml_gives_one_short_line(tmp_path, tail, expected) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(MASS_SPRING + tail, encoding="utf-8")
    with time_bound(20):
        with pytest.raises(ScenarioError) as error:
            load_scenario(str(path))
    one_line(error.value)
    assert len(str(error.value)) <= 400 and expected in str(error.value), str(error.value)[:500]


def test_a_file_larger_than_the_bound_is_refused_unread(tmp_path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 900_000 + MASS_SPRING)
    with pytest.raises(ScenarioError, match="larger than 8 MiB"):
        load_scenario(str(path))


def test_merge_keys_are_read_and_explicit_keys_win(tmp_path) -> None:
    """`<<:` was refused ("could not determine a constructor"); explicit keys override merged ones, and a key given
    twice explicitly is still refused."""
    controller = BASES["mass_spring"]["controller"]
    rest = yaml.safe_dump({k: v for k, v in BASES["mass_spring"].items() if k != "controller"}, sort_keys=False)
    body = yaml.safe_dump({k: v for k, v in controller.items() if k != "algorithm"}, sort_keys=False)
    merged = rest
    path = tmp_path / "merge.yaml"
    path.write_text(merged + "controller:\n  <<: {algorithm: gauss_seidel, horizon: 3}\n"
                    + "".join(f"  {line}\n" for line in body.splitlines()))
    scenario = load_scenario(str(path))
    assert scenario.controller.algorithm == "gauss_seidel"
    assert scenario.controller.horizon == controller["horizon"]   # the explicit key beats the merged 3
    path.write_text(merged + "controller:\n  <<: {algorithm: jacobi}\n  horizon: 5\n  horizon: 6\n")
    with pytest.raises(ScenarioError, match="key 'horizon' is given twice"):
        load_scenario(str(path))


def test_error_messages_are_capped_keeping_field_and_rule() -> None:
    data = copy.deepcopy(BASES["mass_spring"])
    data["controller"]["horizon"] = list(range(5000))
    with pytest.raises(ScenarioError) as error:
        parse_scenario(data)
    text = str(error.value)
    assert len(text) <= 400 and text.startswith("controller.horizon: [0, 1, 2") and text.endswith("must be an integer")
