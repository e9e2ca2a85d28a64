"""Tube DMPC over ROS keeps every constraint when 30 % of the packets are lost (bench/loss.py, bench/lossy_loopback.py):
a real-time run with best-effort plans in a network namespace of the test's own whose loopback drops each packet
with probability 0.3 (every packet: plans, states, inputs, discovery). No input is NaN or outside U."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from conftest import REPO_DIR

pytestmark = [pytest.mark.ros, pytest.mark.slow]
sys.path.insert(0, str(REPO_DIR / "bench"))
from lossy_loopback import unavailable  # noqa: E402

_spec = importlib.util.spec_from_file_location("dmpc_bench_loss", REPO_DIR / "bench" / "loss.py")
loss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loss)


def test_tube_dmpc_keeps_every_constraint_at_30_percent_loss(tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    steps = 15
    run = loss.ros_run("mass_spring_robust", "lock_step", "reliable", 0.3, steps, tmp_path, timeout=60)
    assert run.get("code") == 0, run
    assert run["dropped"] > 0   # the loss was real
    assert run["steps"] == steps
    assert (run["violations"], run["outside_U"], run["nan"]) == (0, 0, 0), run
