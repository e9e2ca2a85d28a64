"""Hostile input (issue 27): a seeded sample of bench/fuzz.py's cases — mutated scenario files of every family, YAML
bombs and recursive aliases, Python factories that exit, raise or hang, bad flag sets of every subcommand, plan and
input messages with bad shapes or NaN — must each give one clear line or be accepted when valid: no traceback, no
hang, no invalid input accepted in silence. `python bench/fuzz.py` runs all 2000+ and prints the table."""
from __future__ import annotations

import importlib.util
import sys
import time

from conftest import REPO_DIR

SAMPLE = 300
SEED = 2027


def load_fuzz():
    spec = importlib.util.spec_from_file_location("dmpc_bench_fuzz", REPO_DIR / "bench" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses, and the cases its workers unpickle, need it registered
    spec.loader.exec_module(module)
    return module


def test_a_seeded_sample_of_hostile_cases_gives_no_traceback_hang_or_silent_acceptance() -> None:
    fuzz = load_fuzz()
    started = time.monotonic()
    cases, results = fuzz.fuzz(SEED, 2000, {"scenario", "factory", "flags", "plan", "input"}, count=SAMPLE,
                               workers=2, case_timeout=20.0)
    elapsed = time.monotonic() - started
    bad = [f"[{outcome}] {case.kind}: {case.label[:100]!r} → {detail[:200]!r}" for case, (outcome, detail)
           in zip(cases, results) if outcome in ("traceback", "hang", "silent acceptance")]
    assert len(cases) >= SAMPLE * 0.9
    assert not bad, "\n".join([fuzz.table(cases, results)] + bad)
    assert {case.kind for case in cases} == {"scenario", "factory", "flags", "plan", "input"}
    assert elapsed < 90, f"the sample took {elapsed:.0f} s"
