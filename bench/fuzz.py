"""Hostile input against every boundary of the stack (issue 27, point 4): scenario files of every family, Python
scenario factories, `dmpc` command lines and plan / input messages, each case classified.

Cases (seeded, ≥ 2000 by default):
  scenario   the shipped scenarios (config/*.yaml, examples/*.yaml: every registered model family) mutated — values
             replaced by wrong types, NaN/inf, huge or negative numbers, 400-digit integers, lone surrogates, long
             strings, deep nesting; keys removed or added; empty or unbounded limit sets, duplicate state names — and
             YAML-level attacks: alias bombs, recursive aliases, deep nesting, huge files, tags, merge keys (`<<:`,
             which must be accepted), several documents. Loaded in-process by `load_source`, as the CLI does.
  factory    Python factories that exit, raise, hang, recurse, return garbage (or a valid scenario), loaded
             in-process by `load_source` (DMPC_FACTORY_TIMEOUT=3 s).
  flags      every subcommand's flags with bad values, found by walking the parser (numeric flags get NaN, inf,
             1e400, 400 digits, text …), bad scenario / output / namespace / target arguments, every algorithm on
             every shipped scenario: `cli.main(argv)` in-process, with the run itself stubbed out (a flag set that
             reaches it is accepted); a few end-to-end through a `dmpc` subprocess.
  plan/input dmpc_ros_msgs PredictedTrajectory / ControlInput with bad shapes, NaN, huge values, bad layouts, steps
             and iterations, through the path the nodes use: ros/conversions.message_to_plan and
             PlanBook.inadmissible (agent node), sim/plant_inputs.PlantInputs.offer (plant node).
Outcomes: clear one-line error (≤ 400 characters, one line, naming a field of the mutated path where there is one) /
accepted (valid) / traceback / hang (no answer within --case-timeout; the worker is killed) / silent acceptance
(accepted although the case is invalid) / misleading message (several lines, too long, empty, or naming none of
the fields mutated) / refused valid input. Each case declares whether it is invalid, valid or either.
Workers: at most 2 processes (`--workers`), each with a 4 GB address-space limit, under `nice`.

Usage: nice -n 5 python bench/fuzz.py [--cases 2000] [--seed 27] [--workers 2] [--only scenario,flags] [--list]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MAX_MESSAGE = 400
OUTCOMES = ("clear error", "accepted (valid)", "traceback", "hang", "silent acceptance", "misleading message",
            "refused valid input")
CLEAN = ("clear error", "accepted (valid)")
KINDS = ("scenario", "factory", "flags", "cli", "plan", "input")
MEMORY_LIMIT = 4 << 30
FACTORY_TIMEOUT = 3.0
CLI_TIMEOUT = 90.0   # a whole `dmpc` subprocess (a valid one simulates a step)


@dataclass
class Case:
    kind: str
    label: str
    expect: str                      # invalid | valid | either
    payload: dict = field(default_factory=dict)
    names: tuple[str, ...] = ()      # fields one of which a clear message must name (empty: no such check)


# ---------------------------------------------------------------------------------------------------------------
# generation (parent process: only yaml and the files)
# ---------------------------------------------------------------------------------------------------------------
def base_files() -> dict[str, Path]:
    config = REPO / "dmpc_ros" / "config"
    files = {p.stem: p for p in sorted(config.glob("*.yaml"))}
    files |= {f"examples/{p.stem}": p for p in sorted((REPO / "examples").glob("*.yaml"))}
    return files


def leaf_paths(data, prefix=()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += leaf_paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data[:3]):
            found += leaf_paths(value, prefix + (index,))
    return found


def at(data, path):
    for key in path:
        data = data[key]
    return data


def nested(depth: int) -> list:
    value: list = [1.0]
    for _ in range(depth - 1):
        value = [value]
    return value


NUMBER_EDITS = [("nan", float("nan"), "invalid"), ("400 digits", int("9" * 400), "invalid"),
                ("text", "abc", "invalid"), ("mapping", {"a": 1}, "invalid"), ("bool", True, "invalid"),
                ("inf", float("inf"), "either"), ("-inf", float("-inf"), "either"), ("-1e9", -1e9, "either"),
                ("zero", 0, "either"), ("-1", -1, "either"), ("1e308", 1e308, "either"), ("null", None, "either"),
                ("list", [1.0, float("nan")], "invalid")]
TEXT_EDITS = [("surrogate", "a\ud800b", "invalid"), ("100k chars", "x" * 100_000, "invalid"),
              ("empty", "", "either"), ("unknown word", "telepathy", "either"), ("number", 5, "either"),
              ("RTL override", "\u202eevil", "either"), ("nan", float("nan"), "invalid")]
ANY_EDITS = [("deleted", "delete", "either"), ("deep nesting 40", nested(40), "invalid"),
             ("deep nesting 8", nested(8), "invalid"), ("empty mapping", {}, "either"), ("empty list", [], "either")]


def mutated_case(rng: random.Random, name: str, data: dict) -> Case:
    data = copy.deepcopy(data)
    path = rng.choice(leaf_paths(data))
    parent, key = at(data, path[:-1]), path[-1]
    value = parent[key]
    names = tuple(str(k) for k in path if isinstance(k, str))
    if isinstance(parent, dict) and rng.random() < 0.12:   # an unknown key beside it
        extra = rng.choice(["extra", "Horizon", "ü", "k\ud800", "x" * 500, "model", "__class__"])
        if extra in parent:
            extra += "_"
        parent[extra] = 1
        label, expect = f"unknown key {extra[:20]!r} in {'.'.join(map(str, path[:-1])) or 'top level'}", "invalid"
        names = names[:-1] + ((extra,) if len(extra) < 100 else ())
        return Case("scenario", f"{name}: {label}", expect, {"data": data}, names)
    if isinstance(value, bool):
        edits = NUMBER_EDITS[2:5] + ANY_EDITS[:2]
    elif isinstance(value, (int, float)):
        edits = NUMBER_EDITS + ANY_EDITS[:3]
    elif isinstance(value, str):
        edits = TEXT_EDITS + ANY_EDITS[:3]
    else:   # a section or list: a number may be a valid shorthand (a scalar weight times the identity)
        edits = ANY_EDITS + [("text", "abc", "invalid"), ("number", 3.5, "either")]
    label, new, expect = rng.choice(edits)
    if isinstance(value, (dict, list)) and label in ("empty mapping", "empty list"):
        expect = "either"
    if new == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            del parent[key]
    else:
        parent[key] = copy.deepcopy(new)
    where = ".".join(map(str, path))
    return Case("scenario", f"{name}: {where} = {label}", expect, {"data": data}, names if expect == "invalid" else ())


def linear_cases(name: str, data: dict) -> list[Case]:
    """Limits that leave no set or no bound, duplicate names: the linear family's silent acceptances."""
    cases = []
    agents = data.get("model", {}).get("agents")
    if not isinstance(agents, list):
        return cases
    agent = agents[0]
    m = len(agent["B"][0]) if isinstance(agent.get("B"), list) and isinstance(agent["B"][0], list) else 1
    n = len(agent["A"])
    inf = float("inf")
    for key, size in (("input_limits", m), ("state_limits", n)):
        for label, limits in (("lower = upper = +inf", {"lower": [inf] * size, "upper": [inf] * size}),
                              ("lower = +inf", {"lower": [inf] * size}),
                              ("upper = -inf", {"upper": [-inf] * size}),
                              ("lower > upper", {"lower": [2.0] * size, "upper": [1.0] * size}),
                              ("lower = upper = -inf", {"lower": [-inf] * size, "upper": [-inf] * size}),
                              ("nan bound", {"lower": [float("nan")] * size, "upper": [1.0] * size})):
            edited = copy.deepcopy(data)
            edited["model"]["agents"][0][key] = limits
            cases.append(Case("scenario", f"{name}: agents[0].{key} {label}", "invalid", {"data": edited}, (key,)))
    edited = copy.deepcopy(data)
    edited["model"]["agents"][0]["states"] = ["x"] * n
    if n > 1:
        cases.append(Case("scenario", f"{name}: duplicate state names", "invalid", {"data": edited}, ("states",)))
    edited = copy.deepcopy(data)
    edited["model"]["agents"][0]["inputs"] = ["u"] * m
    if m > 1:
        cases.append(Case("scenario", f"{name}: duplicate input names", "invalid", {"data": edited}, ("inputs",)))
    if len(agents) > 1:
        edited = copy.deepcopy(data)
        edited["model"]["agents"][1]["name"] = agents[0]["name"]
        cases.append(Case("scenario", f"{name}: duplicate agent names", "invalid", {"data": edited}, ("name",)))
    return cases


def dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=False, sort_keys=False, width=10_000)


def bomb(levels: int, width: int, at_key: str) -> str:
    lines = ["a0: &a0 [lol]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    body = "\n".join(f"  {line}" for line in lines)
    return f"{at_key}:\n{body}\n"


def text_cases(name: str, data: dict, rng: random.Random) -> list[Case]:
    """YAML-level attacks on the base's text."""
    text = dump(data)
    without_description = dump({k: v for k, v in data.items() if k != "description"})
    controller = data.get("controller", {})
    keys = list(controller)
    half = len(keys) // 2
    merged = {k: v for k, v in data.items() if k != "controller"}
    merge_text = dump(merged) + "controller:\n  <<: " + yaml.safe_dump(
        {k: controller[k] for k in keys[:half]}, default_flow_style=True, width=10_000).strip() + "\n" + "".join(
        f"  {line}\n" for line in yaml.safe_dump({k: controller[k] for k in keys[half:]}, sort_keys=False,
                                                 width=10_000).splitlines())
    override = dict(controller)
    horizon = controller.get("horizon", 10)
    override_text = dump(merged) + "controller:\n  <<: {horizon: -7}\n" + "".join(
        f"  {line}\n" for line in yaml.safe_dump(override | {"horizon": horizon}, sort_keys=False,
                                                 width=10_000).splitlines())
    anchored = text.replace("controller:\n", "controller: &ctrl\n", 1)
    cases = [
        Case("scenario", f"{name}: unchanged", "valid", {"text": text}),
        Case("scenario", f"{name}: merge key <<: for half of controller", "valid", {"text": merge_text}),
        Case("scenario", f"{name}: merge key overridden by an explicit key", "valid", {"text": override_text}),
        Case("scenario", f"{name}: an anchor on controller", "valid", {"text": anchored}),
        Case("scenario", f"{name}: comments and a unicode description", "valid",
             {"text": "# ünïcödé comment\n" + without_description + "description: \"réglage — Δt ≤ 0.1 s\"\n"}),
        Case("scenario", f"{name}: 2 KB alias bomb in description", "invalid",
             {"text": without_description + bomb(6, 10, "description")}, ("description",)),
        Case("scenario", f"{name}: 9-level alias bomb in description", "invalid",
             {"text": without_description + bomb(9, 9, "description")}, ("description",)),
        Case("scenario", f"{name}: alias bomb under an unknown key", "invalid", {"text": text + bomb(8, 10, "junk")}),
        Case("scenario", f"{name}: recursive alias", "invalid", {"text": text + "A: &r [*r]\n"}),
        Case("scenario", f"{name}: recursive alias in description", "invalid",
             {"text": without_description + "description: &r [*r]\n"}, ("description",)),
        Case("scenario", f"{name}: 400-digit number as horizon", "invalid",
             {"text": text.replace("horizon:", "horizon: " + "9" * 400 + "\n  old_horizon:", 1)
              if "horizon:" in text else text + "x: " + "9" * 400 + "\n"}),
        Case("scenario", f"{name}: 5000-digit number", "invalid",
             {"text": without_description + "description: " + "7" * 5000 + "\n"}, ("description",)),
        Case("scenario", f"{name}: 1e400 as a float", "either", {"text": text.replace("horizon:", "horizon: 1e400\n"
                                                                                        "  old_horizon:", 1)}),
        Case("scenario", f"{name}: description nested 100 deep", "invalid",
             {"text": without_description + "description: " + "[" * 100 + "]" * 100 + "\n"}, ("description",)),
        Case("scenario", f"{name}: description nested 20000 deep", "invalid",
             {"text": without_description + "description: " + "[" * 20000 + "]" * 20000 + "\n"}),
        Case("scenario", f"{name}: 20000 aliases", "invalid",
             {"text": text + "junk: &j 1\nmore: [" + ", ".join(["*j"] * 20000) + "]\n"}),
        Case("scenario", f"{name}: python tag", "invalid",
             {"text": text + "name: !!python/object/apply:os.system [\"true\"]\n"}),
        Case("scenario", f"{name}: binary tag in name", "invalid",
             {"text": dump({k: v for k, v in data.items() if k != "name"}) + "name: !!binary aGVsbG8=\n"}, ("name",)),
        Case("scenario", f"{name}: lone surrogate escape in name", "invalid",
             {"text": dump({k: v for k, v in data.items() if k != "name"}) + "name: \"a\\ud800\"\n"}, ("name",)),
        Case("scenario", f"{name}: two documents", "invalid", {"text": text + "---\n" + text}),
        Case("scenario", f"{name}: empty file", "invalid", {"text": ""}),
        Case("scenario", f"{name}: only a comment", "invalid", {"text": "# nothing\n"}),
        Case("scenario", f"{name}: a list", "invalid", {"text": "- 1\n- 2\n"}),
        Case("scenario", f"{name}: truncated", "either", {"text": text[:rng.randrange(1, max(2, len(text)))]}),
        Case("scenario", f"{name}: not UTF-8", "invalid", {"bytes": text.encode() + b"description: caf\xe9\n"}),
        Case("scenario", f"{name}: tolerance inf", "invalid",
             {"data": data | {"controller": controller | {"tolerance": float("inf")}}}, ("tolerance",)),
        Case("scenario", f"{name}: description a mapping", "invalid",
             {"data": data | {"description": {"a": [1, 2]}}}, ("description",)),
        Case("scenario", f"{name}: name 10k characters", "invalid", {"data": data | {"name": "n" * 10_000}},
             ("name",)),
    ]
    return cases


def big_file_cases() -> list[Case]:
    return [Case("scenario", "12 MB of comments", "invalid", {"generate": "comments"}),
            Case("scenario", "a 12 MB string", "invalid", {"generate": "string"})]


FACTORIES = [   # (label, body, expectation, repeats)
    ("valid: load('mass_spring')", "from dmpc_ros.api import load\ndef scenario():\n    return load('mass_spring')\n",
     "valid", 4),
    ("valid: prints a lot", "import sys\nfrom dmpc_ros.api import load\ndef scenario():\n    print('x' * 10000)\n"
     "    return load('platoon')\n", "valid", 2),
    ("sys.exit(0)", "import sys\ndef scenario():\n    sys.exit(0)\n", "invalid", 6),
    ("sys.exit(3)", "import sys\ndef scenario():\n    sys.exit(3)\n", "invalid", 4),
    ("sys.exit('text')", "import sys\ndef scenario():\n    sys.exit('bye')\n", "invalid", 4),
    ("exit at import", "import sys\nsys.exit(0)\ndef scenario():\n    pass\n", "invalid", 4),
    ("raise at import", "raise RuntimeError('no')\n", "invalid", 4),
    ("syntax error", "def scenario(:\n", "invalid", 4),
    ("raises ValueError", "def scenario():\n    raise ValueError('bad value')\n", "invalid", 4),
    ("raises a multi-line message", "def scenario():\n    raise ValueError('one\\ntwo\\nthree')\n", "invalid", 4),
    ("raises a 100k message", "def scenario():\n    raise RuntimeError('x' * 100000)\n", "invalid", 4),
    ("raises KeyError", "def scenario():\n    return {}['missing']\n", "invalid", 4),
    ("infinite recursion", "def scenario():\n    return scenario()\n", "invalid", 4),
    ("MemoryError", "def scenario():\n    return [0] * (10 ** 12)\n", "invalid", 4),
    ("returns None", "def scenario():\n    return None\n", "invalid", 4),
    ("returns a dict", "def scenario():\n    return {'model': {}}\n", "invalid", 4),
    ("returns a string", "def scenario():\n    return 'mass_spring'\n", "invalid", 4),
    ("returns a generator", "def scenario():\n    yield 1\n", "invalid", 4),
    ("needs an argument", "def scenario(size):\n    return size\n", "invalid", 4),
    ("not callable", "scenario = 5\n", "invalid", 4),
    ("no such function", "def other():\n    pass\n", "invalid", 4),
    ("invalid override inside", "from dmpc_ros.api import load\ndef scenario():\n"
     "    return load('mass_spring').with_overrides(steps=-1)\n", "invalid", 4),
    ("hangs in sleep", "import time\ndef scenario():\n    time.sleep(3600)\n", "invalid", 2),
    ("hangs busy", "def scenario():\n    while True:\n        pass\n", "invalid", 2),
    ("hangs at import", "import time\ntime.sleep(3600)\ndef scenario():\n    pass\n", "invalid", 2),
]


def factory_cases() -> list[Case]:
    cases = []
    for label, body, expect, repeats in FACTORIES:
        for k in range(repeats):
            function = "scenario" if label != "no such function" else "scenario"
            cases.append(Case("factory", f"factory {label} #{k}", expect, {"body": body, "function": function}))
    cases.append(Case("factory", "factory: module:function that does not exist", "invalid",
                      {"reference": "no_such_module_xyz:scenario"}))
    cases.append(Case("factory", "factory: empty function name", "invalid", {"reference": "os:"}))
    cases.append(Case("factory", "factory: os:getcwd (returns a str)", "invalid", {"reference": "os:getcwd"}))
    return cases


BAD_NUMBERS = [("nan", "invalid"), ("inf", "invalid"), ("-inf", "invalid"), ("1e400", "invalid"),
               ("9" * 400, "invalid"), ("abc", "invalid"), ("", "invalid"), ("-1", "either"), ("0", "either"),
               ("1e-320", "either"), ("0x10", "invalid"), ("1_000", "either"), ("-0", "either")]
BAD_TEXT = {"namespace": ["/a//b", "", "a", "/1a", "/a/\ud800", "/" + "a" * 5000, "/a b", "/a/"],
            "mode": ["fast", ""], "solver": ["gurobi", ""], "algorithm": ["telepathy", "", "\ud800"]}
BAD_OUTPUTS = ["/proc/dmpc_fuzz/out", "/dev/null/x", "", "bad\x00path", "/tmp/\ud800x", "/sys/kernel/x"]
BAD_SOURCES = ["nope", "missing.yaml", "/", "/tmp", ":", "a:b:c", "x.py:f", "bad\x00.yaml", "\ud800.yaml",
               "s" * 5000, "os:", "/dev/null", "dmpc_ros.api:load"]


def flag_cases(parser_flags: dict[str, list[tuple[str, str]]], scenarios: list[str],
               algorithms: list[str]) -> list[Case]:
    """parser_flags: command → [(flag, 'int'|'float'|'text')] from the parser (found in a worker)."""
    cases = []
    prefix = {"sim": ["sim", "mass_spring"], "run": ["run", "mass_spring"], "explicit": ["explicit", "build",
                                                                                         "facet_two_plants"],
              "viz-config": ["viz-config", "formation"], "smoke": ["smoke"], "plot": ["plot", "{empty_dir}"],
              "bag": ["bag", "repair", "{garbage}"], "keys": ["keys", "create", "{empty_dir}"]}
    for command, flags in parser_flags.items():
        for flag, kind in flags:
            if kind in ("int", "float"):
                for value, expect in BAD_NUMBERS:
                    cases.append(Case("flags", f"{command} {flag} {value[:12]!r}", expect,
                                      {"argv": prefix[command] + [flag, value]}, (flag,)))
            for value in BAD_TEXT.get(flag.lstrip("-"), []):
                cases.append(Case("flags", f"{command} {flag} {value[:12]!r}", "invalid",
                                  {"argv": prefix[command] + [flag, value]}, (flag,)))
            if flag == "--output" and command in ("sim", "run", "explicit", "viz-config"):
                for value in BAD_OUTPUTS:
                    cases.append(Case("flags", f"{command} --output {value[:14]!r}", "invalid",
                                      {"argv": prefix[command] + ["--output", value]}, ("--output",)))
    for command in ("sim", "run", "viz-config", "explicit"):
        for source in BAD_SOURCES:
            argv = [command] + (["build"] if command == "explicit" else []) + [source]
            cases.append(Case("flags", f"{command} source {source[:14]!r}", "invalid", {"argv": argv}))
    for scenario in scenarios:   # every scheme on every shipped scenario: accepted or one line, never a traceback
        for algorithm in algorithms:
            for command in ("sim", "run"):
                cases.append(Case("flags", f"{command} {scenario} --algorithm {algorithm}", "either",
                                  {"argv": [command, scenario, "--algorithm", algorithm]}))
    for target, expect in (("{not_mcap}", "invalid"), ("{empty_mcap}", "invalid"), ("{garbage}", "invalid"),
                           ("{empty_dir}", "invalid"), ("{bad_summary}", "invalid"), ("{truncated_mcap}", "either"),
                           ("/nonexistent/x.mcap", "invalid")):
        cases.append(Case("flags", f"plot {target}", expect, {"argv": ["plot", target]}))
        cases.append(Case("flags", f"bag repair {target}", expect if target != "{truncated_mcap}" else "either",
                          {"argv": ["bag", "repair", target]}))
    return cases


def combined_flag_cases(rng: random.Random, cases: list[Case], count: int) -> list[Case]:
    """Two or three bad flags of one command at once (sim and run)."""
    singles = [c for c in cases if c.kind == "flags" and c.payload["argv"][:2] in (["sim", "mass_spring"],
                                                                                  ["run", "mass_spring"])
               and len(c.payload["argv"]) == 4]
    out = []
    for _ in range(count):
        command = rng.choice(["sim", "run"])
        pool = [c for c in singles if c.payload["argv"][0] == command]
        picked = rng.sample(pool, rng.randint(2, 3))
        argv = [command, "mass_spring"]
        for c in picked:
            argv += c.payload["argv"][2:]
        expect = "invalid" if any(c.expect == "invalid" for c in picked) else "either"
        out.append(Case("flags", f"{' '.join(a[:10] for a in argv)}", expect, {"argv": argv}))
    return out


CLI_CASES = [   # end to end through a `dmpc` subprocess: (label, argv, expect); {tmp} is a scratch folder
    ("sim: factory sys.exit(0)", ["sim", "{tmp}/exit0.py:scenario", "--steps", "1", "--no-reference", "--output",
                                  "{tmp}/o1"], "invalid"),
    ("sim: --tolerance inf", ["sim", "mass_spring", "--tolerance", "inf", "--steps", "1", "--no-reference",
                              "--output", "{tmp}/o2"], "invalid"),
    ("sim: dual_decomposition on the chain", ["sim", "mass_spring", "--algorithm", "dual_decomposition",
                                              "--steps", "1", "--no-reference", "--output", "{tmp}/o3"], "invalid"),
    ("sim: --output under /proc", ["sim", "mass_spring", "--steps", "1", "--no-reference", "--output",
                                   "/proc/dmpc_fuzz/o"], "invalid"),
    ("sim: --output under /dev/null", ["sim", "mass_spring", "--steps", "1", "--no-reference", "--output",
                                       "/dev/null/o"], "invalid"),
    ("run: --namespace /a//b", ["run", "mass_spring", "--namespace", "/a//b", "--steps", "1", "--timeout", "30",
                                "--no-reference", "--output", "{tmp}/o4"], "invalid"),
    ("plot: a non-MCAP file", ["plot", "{tmp}/not.mcap"], "invalid"),
    ("plot: an empty folder", ["plot", "{tmp}"], "invalid"),
    ("bag repair: a non-MCAP file", ["bag", "repair", "{tmp}/not.mcap"], "invalid"),
    ("sim: lone surrogate in the scenario name", ["sim", "{tmp}/surrogate.yaml", "--steps", "1", "--no-reference",
                                                  "--output", "{tmp}/o5"], "invalid"),
    ("sim: alias bomb", ["sim", "{tmp}/bomb.yaml"], "invalid"),
    ("sim: recursive alias", ["sim", "{tmp}/recursive.yaml"], "invalid"),
    ("sim: 400-digit number", ["sim", "{tmp}/digits.yaml"], "invalid"),
    ("sim: input limits lower = upper = +inf", ["sim", "{tmp}/inf_limits.yaml", "--steps", "1", "--no-reference",
                                                "--output", "{tmp}/o6"], "invalid"),
    ("smoke: --timeout nan", ["smoke", "--timeout", "nan"], "invalid"),
    ("sim: valid merge key", ["sim", "{tmp}/merge.yaml", "--steps", "1", "--no-reference", "--output", "{tmp}/o7"],
     "valid"),
]

PLAN_EDITS = [   # (label, field, value, expectation)
    ("valid", None, None, "valid"), ("valid final", "final", True, "valid"),
    ("NaN state", "states", "nan", "invalid"), ("inf input", "inputs", "inf", "invalid"),
    ("NaN cost", "local_cost", float("nan"), "invalid"), ("inf cost", "local_cost", float("inf"), "invalid"),
    ("short states", "states", "short", "invalid"), ("long inputs", "inputs", "long", "invalid"),
    ("empty states", "states", [], "invalid"), ("horizon 0", "horizon", 0, "invalid"),
    ("horizon 2^32-1", "horizon", 2**32 - 1, "invalid"), ("state_dim 2^32-1", "state_dim", 2**32 - 1, "invalid"),
    ("input_dim 0", "input_dim", 0, "invalid"), ("step 2^32-1", "step", 2**32 - 1, "invalid"),
    ("iteration 2^32-1", "iteration", 2**32 - 1, "invalid"), ("agent_id of another", "agent_id", 7, "invalid"),
    ("sample_time NaN", "sample_time", float("nan"), "invalid"), ("sample_time -1", "sample_time", -1.0, "invalid"),
    ("sample_time inf", "sample_time", float("inf"), "invalid"),
    ("huge values", "states", "huge", "either"), ("1e308 cost", "local_cost", 1e308, "either"),
    ("layout garbage", "algorithm_data_layout", "a=1x2;b", "invalid"),
    ("layout absurd shape", "algorithm_data_layout", "a=99999999999999999999x99999999999999999999", "invalid"),
    ("layout negative", "algorithm_data_layout", "a=-1x-1", "invalid"),
    ("layout no name", "algorithm_data_layout", "=1", "invalid"),
    ("layout float", "algorithm_data_layout", "a=1.5", "invalid"),
    ("layout 100k", "algorithm_data_layout", "a=1x1;" * 20000, "invalid"),
    ("layout unicode", "algorithm_data_layout", "ü=1x1\ud800", "invalid"),
    ("layout duplicate", "algorithm_data_layout", "a=1x1;a=1x1", "invalid"),
    ("data without layout", "algorithm_data", [1.0, 2.0], "invalid"),
    ("data NaN", "algorithm_data+layout", ([float("nan")], "a=1x1"), "invalid"),
    ("data valid", "algorithm_data+layout", ([1.0, 2.0], "a=1x2"), "valid"),
    ("data huge layout zero", "algorithm_data+layout", ([], "a=0x99999999999999999999"), "either"),
]
INPUT_EDITS = [("valid", [0.5], "valid"), ("zero", [0.0], "valid"), ("50 N", [50.0], "invalid"),
               ("NaN", [float("nan")], "invalid"), ("inf", [float("inf")], "invalid"), ("-inf", [float("-inf")],
                                                                                       "invalid"),
               ("empty", [], "invalid"), ("two values", [0.1, 0.1], "invalid"), ("1e308", [1e308], "invalid"),
               ("5e-324", [5e-324], "valid"), ("just above", [1.0 + 1e-3], "invalid"),
               ("agent 99", "agent", "invalid"), ("agent 2^32-1", "agent_max", "invalid")]


def message_cases(rng: random.Random, count_plans: int, count_inputs: int) -> list[Case]:
    cases = []
    for k in range(count_plans):
        label, name, value, expect = PLAN_EDITS[k % len(PLAN_EDITS)]
        cases.append(Case("plan", f"plan: {label} #{k // len(PLAN_EDITS)}", expect,
                          {"field": name, "value": value, "seed": rng.randrange(10**6)}))
    for k in range(count_inputs):
        label, value, expect = INPUT_EDITS[k % len(INPUT_EDITS)]
        cases.append(Case("input", f"input: {label} #{k // len(INPUT_EDITS)}", expect,
                          {"value": value, "agent": rng.randrange(4)}))
    return cases


def generate(seed: int, total: int, parser_flags, scenarios, algorithms, kinds: set[str]) -> list[Case]:
    rng = random.Random(seed)
    bases = {name: yaml.safe_load(path.read_text()) for name, path in base_files().items()}
    fixed: list[Case] = []
    if "scenario" in kinds:
        for name, data in bases.items():
            fixed += text_cases(name, data, rng) + linear_cases(name, data)
        fixed += big_file_cases()
    if "factory" in kinds:
        fixed += factory_cases()
    if "flags" in kinds:
        flags = flag_cases(parser_flags, scenarios, algorithms)
        fixed += flags + combined_flag_cases(rng, flags, 60)
    if "cli" in kinds:
        fixed += [Case("cli", label, expect, {"argv": argv}) for label, argv, expect in CLI_CASES]
    if "plan" in kinds or "input" in kinds:
        fixed += [c for c in message_cases(rng, 4 * len(PLAN_EDITS), 5 * len(INPUT_EDITS)) if c.kind in kinds]
    mutated = []
    if "scenario" in kinds:
        names = sorted(bases)
        while len(fixed) + len(mutated) < total:
            name = names[len(mutated) % len(names)]
            mutated.append(mutated_case(rng, name, bases[name]))
    return fixed + mutated


# ---------------------------------------------------------------------------------------------------------------
# the worker (one process; at most --workers of them)
# ---------------------------------------------------------------------------------------------------------------
class Accepted(Exception):
    """Raised by the stubbed run: the command line got through every check."""


def prepare_scratch(scratch: Path) -> None:
    (scratch / "data").symlink_to(REPO / "examples" / "data")
    (scratch / "not.mcap").write_text("this is not a bag\n")
    (scratch / "empty.mcap").write_bytes(b"")
    (scratch / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (scratch / "empty_dir").mkdir()
    (scratch / "bad_summary").mkdir()
    (scratch / "bad_summary" / "summary.json").write_text("{not json")
    (scratch / "truncated.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(40))


def substitute(argv: list[str], scratch: Path) -> list[str]:
    names = {"{not_mcap}": "not.mcap", "{empty_mcap}": "empty.mcap", "{garbage}": "garbage.bin",
             "{empty_dir}": "empty_dir", "{bad_summary}": "bad_summary", "{truncated_mcap}": "truncated.mcap"}
    return [str(scratch / names[a]) if a in names else a.replace("{tmp}", str(scratch)) for a in argv]


def judge_error(message: str, case: Case) -> str:
    if not message.strip() or "\n" in message.strip() or len(message) > MAX_MESSAGE or "Traceback" in message:
        return "misleading message"
    if case.expect == "valid":
        return "refused valid input"
    if case.names and not any(name.lower() in message.lower() or ascii(name)[1:-1] in message
                              for name in case.names if name):
        return "misleading message"
    return "clear error"


def judge_accepted(case: Case) -> str:
    return "silent acceptance" if case.expect == "invalid" else "accepted (valid)"


def run_scenario_case(case: Case, scratch: Path) -> tuple[str, str]:
    from dmpc_ros.scenarios import ScenarioError
    from dmpc_ros.scenarios.source import load_source

    payload = case.payload
    path = scratch / "case.yaml"
    if "data" in payload:
        path.write_text(dump(payload["data"]), encoding="utf-8", errors="surrogatepass")
    elif "text" in payload:
        path.write_bytes(payload["text"].encode("utf-8", "surrogatepass"))
    elif "bytes" in payload:
        path.write_bytes(payload["bytes"])
    elif payload["generate"] == "comments":
        path.write_text("# padding\n" * 1_200_000 + Path(base_files()["mass_spring"]).read_text())
    else:
        path.write_text(Path(base_files()["mass_spring"]).read_text() + "description: " + "d" * 12_000_000 + "\n")
    try:
        load_source(str(path))
    except ScenarioError as error:
        return judge_error(str(error), case), str(error)[:400]
    return judge_accepted(case), ""


def run_factory_case(case: Case, scratch: Path, counter: list[int]) -> tuple[str, str]:
    from dmpc_ros.scenarios import ScenarioError
    from dmpc_ros.scenarios.source import load_source

    if "reference" in case.payload:
        reference = case.payload["reference"]
    else:
        counter[0] += 1
        module = scratch / f"factory_{os.getpid()}_{counter[0]}.py"
        module.write_text(case.payload["body"])
        reference = f"{module}:{case.payload['function']}"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            load_source(reference)
    except ScenarioError as error:
        return judge_error(str(error), case), str(error)[:400]
    except SystemExit as exit_:
        if exit_.code in (0, None):
            return "silent acceptance", f"SystemExit({exit_.code!r}) escaped: the command would exit 0, silent"
        return "misleading message", f"SystemExit({exit_.code!r}) escaped: no line says what happened"
    return judge_accepted(case), ""


def stub_runs() -> None:
    """Stop `dmpc sim/run/smoke` where they would start work: a flag set that gets there is accepted."""
    from dmpc_ros import cli
    from dmpc_ros.ros import runner

    def accepted(*args, **kwargs):
        raise Accepted()

    cli.simulate_with_progress = accepted
    cli.smoke_demo = accepted
    runner.run_scenario = accepted


def run_flags_case(case: Case, scratch: Path) -> tuple[str, str]:
    from dmpc_ros import cli

    argv = substitute(case.payload["argv"], scratch)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    except Accepted:
        return judge_accepted(case), ""
    except SystemExit as exit_:
        code = exit_.code
    text = error_lines(err.getvalue())
    if code in (0, None):
        return (judge_accepted(case), "") if not text or case.expect != "invalid" else ("silent acceptance", text)
    return judge_error(text, case), text[:400]


def error_lines(stderr: str) -> str:
    """stderr without set-up progress ('set-up (3 s): …', shown when set-up is slow) and load-time advice ('note: …'),
    which are not the error."""
    return "\n".join(line for line in stderr.strip().splitlines()
                     if line.strip() and not line.startswith(("set-up (", "note: "))).strip()


def run_cli_case(case: Case, scratch: Path) -> tuple[str, str]:
    argv = substitute(case.payload["argv"], scratch)
    (scratch / "exit0.py").write_text("import sys\ndef scenario():\n    sys.exit(0)\n")
    base = yaml.safe_load(base_files()["mass_spring"].read_text())
    (scratch / "surrogate.yaml").write_text(dump(base | {"name": "run\ud800"}), errors="surrogatepass")
    (scratch / "bomb.yaml").write_text(dump(base) + bomb(9, 9, "description"))
    (scratch / "recursive.yaml").write_text(dump(base) + "A: &r [*r]\n")
    (scratch / "digits.yaml").write_text(dump(base).replace("horizon:", "horizon: " + "9" * 400 + "\n  x:", 1))
    four_tank = yaml.safe_load((REPO / "examples" / "four_tank.yaml").read_text())
    four_tank["model"]["agents"][0]["input_limits"] = {"lower": [float("inf")], "upper": [float("inf")]}
    (scratch / "inf_limits.yaml").write_text(dump(four_tank))
    controller = base["controller"]
    (scratch / "merge.yaml").write_text(dump({k: v for k, v in base.items() if k != "controller"}) +
                                        "controller:\n  <<: {algorithm: " + controller["algorithm"] + "}\n" +
                                        "".join(f"  {line}\n" for line in yaml.safe_dump(
                                            {k: v for k, v in controller.items() if k != "algorithm"}).splitlines()))
    env = os.environ | {"DMPC_FACTORY_TIMEOUT": str(FACTORY_TIMEOUT)}
    try:
        run = subprocess.run([sys.executable, "-m", "dmpc_ros.cli"] + argv, capture_output=True, text=True,
                             timeout=CLI_TIMEOUT, env=env, cwd=scratch, errors="replace")
    except subprocess.TimeoutExpired:
        return "hang", f"no exit within {CLI_TIMEOUT:.0f} s"
    text = error_lines(run.stderr)
    if "Traceback" in run.stderr:
        return "traceback", text.splitlines()[-1][:400]
    if run.returncode == 0:
        return judge_accepted(case), text[:400]
    if run.returncode < 0:
        return "traceback", f"killed by signal {-run.returncode}"
    return judge_error(text, case), text[:400]


def plan_message(case: Case):
    import numpy as np
    from dmpc_ros_msgs.msg import PredictedTrajectory

    rng = np.random.default_rng(case.payload["seed"])
    N, n, m = 5, 2, 1
    message = PredictedTrajectory(agent_id=1, step=3, iteration=2, sample_time=0.1, horizon=N, state_dim=n,
                                  input_dim=m, states=rng.uniform(-1, 1, (N + 1) * n).tolist(),
                                  inputs=rng.uniform(-1, 1, N * m).tolist(), local_cost=float(rng.uniform(0, 5)))
    name, value = case.payload["field"], case.payload["value"]
    if name == "algorithm_data+layout":
        message.algorithm_data, message.algorithm_data_layout = value
    elif name in ("states", "inputs") and isinstance(value, str):
        current = list(getattr(message, name))
        edited = {"nan": current[:-1] + [float("nan")], "inf": [float("inf")] + current[1:], "short": current[:-1],
                  "long": current + [0.0], "huge": [v * 1e300 for v in current]}[value]
        setattr(message, name, edited)
    elif name is not None:
        setattr(message, name, value)
    return message, (N, n, m)


class StubAgent:
    required_plans = (1, 2)


def run_plan_case(case: Case) -> tuple[str, str]:
    from dmpc_ros.coordination.plan_book import PlanBook
    from dmpc_ros.ros.conversions import MalformedPlan, message_to_plan

    message, (N, n, m) = plan_message(case)
    book = PlanBook(StubAgent(), max_iteration=30)
    book.begin(3)
    try:
        if message.agent_id != 1:   # agent_node._on_plan: the id against the topic's agent
            raise MalformedPlan(f"plan on the topic of agent 1 claims agent_id {message.agent_id}")
        plan = message_to_plan(message, N, n, m)
        reason = book.inadmissible(plan)
    except MalformedPlan as error:
        return judge_error(str(error), case), str(error)[:400]
    if reason:
        return judge_error(reason, case), reason[:400]
    return judge_accepted(case), ""


_PLANT = []


def run_input_case(case: Case) -> tuple[str, str]:
    import numpy as np
    from dmpc_ros_msgs.msg import ControlInput

    from dmpc_ros.scenarios import load_scenario
    from dmpc_ros.sim.plant_inputs import PlantInputs

    if not _PLANT:
        _PLANT.append(load_scenario("mass_spring").plant())
    plant = _PLANT[0]
    inputs = PlantInputs(plant.subsystems)
    value = case.payload["value"]
    agent = {"agent": 99, "agent_max": 2**32 - 1}.get(value, case.payload["agent"]) if isinstance(value, str) \
        else case.payload["agent"]
    message = ControlInput(agent_id=agent, step=0, input=[0.1] if isinstance(value, str) else value)
    if not 0 <= message.agent_id < plant.num_agents:   # plant_node._on_input drops these first
        return judge_error(f"input of unknown agent {message.agent_id} dropped", case), ""
    reason = inputs.offer(message.agent_id, message.input, np.zeros(plant.subsystems[agent].n_x))
    if reason is not None:
        return judge_error(reason, case), reason[:400]
    return judge_accepted(case), ""


def worker(conn, scratch: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.environ["DMPC_FACTORY_TIMEOUT"] = str(FACTORY_TIMEOUT)
    os.environ["DMPC_EXPLICIT_CACHE"] = str(Path(scratch) / "explicit_cache")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ["MPLBACKEND"] = "Agg"
    os.chdir(scratch)
    stub_runs()
    counter = [0]
    runners = {"scenario": lambda c: run_scenario_case(c, Path(scratch)),
               "factory": lambda c: run_factory_case(c, Path(scratch), counter),
               "flags": lambda c: run_flags_case(c, Path(scratch)), "cli": lambda c: run_cli_case(c, Path(scratch)),
               "plan": run_plan_case, "input": run_input_case}
    while True:
        case = conn.recv()
        if case is None:
            return
        try:
            outcome, detail = runners[case.kind](case)
        except BaseException as error:   # noqa: BLE001 — every escape is the finding
            last = error
            import traceback

            frames = traceback.extract_tb(error.__traceback__)
            where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            outcome, detail = "traceback", f"{type(last).__name__}: {str(last)[:300]}{where}"
        left = any(t.name.startswith("scenario factory") and t.is_alive() for t in threading.enumerate())
        conn.send((outcome, detail[:400], left))


def parser_facts(queue) -> None:
    """The subcommands' flags with their types, every algorithm and shipped scenario (in a child: imports)."""
    from dmpc_ros.cli import build_parser
    from dmpc_ros.coordination.scheme import scheme_names
    from dmpc_ros.scenarios.schema import config_directories

    parser = build_parser()
    commands = {}
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        flags = []
        for action in command._actions:
            if not action.option_strings or action.option_strings[0] in ("-h",):
                continue
            kind = {int: "int", float: "float"}.get(action.type, "text")
            if action.nargs == 0:
                continue
            flags.append((action.option_strings[0], kind))
        commands[name] = flags
    scenarios = sorted({p.stem for d in config_directories() for p in d.glob("*.yaml")})
    queue.put((commands, scenarios, list(scheme_names())))


# ---------------------------------------------------------------------------------------------------------------
# the parent: dispatch, time out, count
# ---------------------------------------------------------------------------------------------------------------
class Slot:
    def __init__(self, context, scratch: Path) -> None:
        self.context, self.scratch = context, scratch
        self.start()

    def start(self) -> None:
        self.conn, child = self.context.Pipe()
        self.process = self.context.Process(target=worker, args=(child, str(self.scratch)), daemon=True)
        self.process.start()
        self.case: Case | None = None
        self.sent = 0.0

    def restart(self) -> None:
        self.process.kill()
        self.process.join()
        self.start()


def run_cases(cases: list[Case], workers: int, case_timeout: float, scratch: Path, progress: bool):
    context = multiprocessing.get_context("fork")
    slots = []
    for k in range(workers):
        directory = scratch / f"worker{k}"
        directory.mkdir()
        prepare_scratch(directory)
        slots.append(Slot(context, directory))
    pending = list(enumerate(cases))
    results: list[tuple[str, str] | None] = [None] * len(cases)
    seconds = [0.0] * len(cases)
    index_of: dict[int, int] = {}
    done, started, reported = 0, time.monotonic(), 0
    while done < len(cases):
        for slot in slots:
            if slot.case is None and pending:
                index, case = pending.pop(0)
                index_of[id(slot)] = index
                slot.case, slot.sent = case, time.monotonic()
                slot.conn.send(case)
        busy = [s for s in slots if s.case is not None]
        ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=0.5)
        now = time.monotonic()
        for slot in busy:
            index = index_of[id(slot)]
            seconds[index] = now - slot.sent
            if slot.conn in ready:
                try:
                    outcome, detail, dirty = slot.conn.recv()
                except EOFError:
                    outcome, detail, dirty = "traceback", f"the worker died (exit {slot.process.exitcode})", True
                results[index] = (outcome, detail)
                slot.case = None
                done += 1
                if dirty:   # a factory's guard thread left running: a fresh worker for the next case
                    slot.restart()
            elif slot.process.sentinel in ready or not slot.process.is_alive():
                results[index] = ("traceback", f"the worker died (exit {slot.process.exitcode})")
                slot.case = None
                done += 1
                slot.restart()
            elif now - slot.sent > (case_timeout if slot.case.kind != "cli" else CLI_TIMEOUT + 10):
                results[index] = ("hang", f"no answer within {case_timeout:.0f} s")
                slot.case = None
                done += 1
                slot.restart()
        if progress and done // 200 > reported:
            reported = done // 200
            print(f"  {done}/{len(cases)} cases, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    for slot in slots:
        slot.conn.send(None)
        slot.process.join(timeout=5)
        if slot.process.is_alive():
            slot.process.kill()
    run_cases.seconds = seconds   # per case, for the slowest-cases line
    return results


def table(cases: list[Case], results) -> str:
    columns = [k for k in KINDS if any(c.kind == k for c in cases)]
    counts = Counter((c.kind, r[0]) for c, r in zip(cases, results))
    header = "| outcome | " + " | ".join(columns) + " | all |"
    lines = [header, "|---|" + "---|" * (len(columns) + 1)]
    for outcome in OUTCOMES:
        row = [counts[(k, outcome)] for k in columns]
        lines.append(f"| {outcome} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = [sum(counts[(k, o)] for o in OUTCOMES) for k in columns]
    lines.append("| cases | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(lines)


def sample(cases: list[Case], count: int, seed: int) -> list[Case]:
    """`count` of the cases, drawn per kind in proportion (at least 5 of each), in a seeded order."""
    rng = random.Random(seed)
    kinds = sorted({c.kind for c in cases})
    picked = []
    for kind in kinds:
        pool = [c for c in cases if c.kind == kind]
        share = max(5, round(count * len(pool) / len(cases)))
        picked += rng.sample(pool, min(share, len(pool)))
    return picked


def fuzz(seed: int, total: int, kinds: set[str], count: int | None = None, workers: int = 2,
         case_timeout: float = 20.0, progress: bool = False) -> tuple[list[Case], list[tuple[str, str]]]:
    """Generate the cases (a seeded sample of `count` of them if given), run them, return cases and outcomes."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    facts = context.Process(target=parser_facts, args=(queue,))
    facts.start()
    parser_flags, scenarios, algorithms = queue.get(timeout=120)
    facts.join()
    cases = generate(seed, total, parser_flags, scenarios, algorithms, kinds)
    if count is not None:
        cases = sample(cases, count, seed)
    scratch = Path(tempfile.mkdtemp(prefix="dmpc_fuzz_"))
    try:
        return cases, run_cases(cases, workers, case_timeout, scratch, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="at least this many cases (default 2000)")
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument("--workers", type=int, default=2, choices=(1, 2))
    parser.add_argument("--case-timeout", type=float, default=15.0, help="seconds before a case counts as a hang")
    parser.add_argument("--only", default=",".join(KINDS), help=f"kinds to run, of {','.join(KINDS)}")
    parser.add_argument("--list", action="store_true", help="list every case with its outcome, not only unclean")
    parser.add_argument("--json", help="write every case and outcome here")
    parser.add_argument("--sample", type=int, help="run a seeded sample of this many cases (as the test does)")
    args = parser.parse_args()
    if os.nice(0) < 5:
        os.nice(5 - os.nice(0))
    started = time.monotonic()
    cases, results = fuzz(args.seed, args.cases, set(args.only.split(",")), args.sample, args.workers,
                          args.case_timeout, progress=True)
    elapsed = time.monotonic() - started
    print(f"bench/fuzz.py: {len(cases)} cases (seed {args.seed}) in {elapsed:.0f} s, {args.workers} workers")
    print(table(cases, results))
    seconds = getattr(run_cases, "seconds", [])
    slowest = sorted(zip(seconds, cases), key=lambda pair: -pair[0])[:5]
    print("slowest cases: " + "; ".join(f"{case.label[:60]!r} {t:.1f} s" for t, case in slowest))
    shown = [(c, r) for c, r in zip(cases, results) if args.list or r[0] not in CLEAN]
    if shown:
        print(f"\n{'every case' if args.list else 'cases that are not clean'} ({len(shown)}):")
    for case, (outcome, detail) in shown:
        label = case.label.encode("utf-8", "backslashreplace").decode()[:110]
        detail = detail.encode("utf-8", "backslashreplace").decode().replace("\n", "⏎")[:220]
        print(f"- [{outcome}] {case.kind}: {label} → {detail}")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps([{"kind": c.kind, "label": c.label, "expect": c.expect,
                                                "outcome": r[0], "detail": r[1]} for c, r in zip(cases, results)],
                                              ensure_ascii=True, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
