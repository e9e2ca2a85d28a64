"""Any text a scenario file can hold (a lone surrogate, control characters, `$`) can be drawn, printed and used in a
file name: the plots and the run folder of a scenario named "\\ud800" are written (issue 27)."""
from __future__ import annotations

import re

import pytest
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dmpc_ros.printable import FILE_NAME_LENGTH, REPLACEMENT, file_name, readable

ANY_TEXT = st.text(st.characters(codec=None), max_size=40)   # surrogates and control characters included


@given(ANY_TEXT)
def test_readable_text_encodes_and_keeps_every_printable_character(text: str) -> None:
    shown = readable(text)
    shown.encode("utf-8")   # raises on a surrogate
    assert len(shown) == len(text) and readable(shown) == shown
    assert all(a == b or b == REPLACEMENT for a, b in zip(text, shown))
    assert "\ud800" not in readable("a\ud800b") and readable("name $x$\n") == "name $x$\n"


@given(ANY_TEXT)
def test_a_file_name_from_any_text_is_safe_and_can_be_created(tmp_path_factory, text: str) -> None:
    name = file_name(text)
    assert re.fullmatch(r"[A-Za-z0-9._+-]{1,%d}" % FILE_NAME_LENGTH, name) and name not in (".", "..")
    folder = tmp_path_factory.mktemp("names") / f"run-{name}"
    folder.mkdir()
    assert folder.is_dir()


def test_file_names_keep_what_is_safe() -> None:
    assert file_name("mass_spring") == "mass_spring" and file_name("a b/c") == "a_b_c"
    assert file_name("\ud800") == "unnamed" and file_name("..") == "unnamed" and file_name("") == "unnamed"


@settings(max_examples=25, deadline=None)
@given(title=ANY_TEXT, label=ANY_TEXT)
def test_a_figure_titled_and_labelled_with_any_text_is_saved(tmp_path_factory, title: str, label: str) -> None:
    from dmpc_ros.sim.plots import plt, save

    fig, axes = plt.subplots(2, 1)
    axes[0].plot([0.0, 1.0], label=label)
    axes[0].set_title(title)
    axes[0].set_ylabel(label)
    axes[0].legend()
    axes[1].set_yscale("symlog", linthresh=1e-6)   # its tick labels are mathtext: left to matplotlib
    axes[1].plot([1e-3, 1.0])
    fig.suptitle(f"{title}: states")
    path = save(fig, tmp_path_factory.mktemp("plot") / "figure.png")
    assert path.stat().st_size > 0


def test_a_scenario_named_with_a_lone_surrogate_is_refused_from_a_file_and_plotted_from_python(tmp_path: Path) -> None:
    """The issue's case: a YAML name "\\ud800" is refused at load in one line (scenarios/yaml_file.py); a name
    that reaches the plots anyway (a Python-built scenario) no longer crashes them (printable.py)."""
    import dataclasses

    from conftest import PACKAGE_DIR
    from dmpc_ros.api import load, save, simulate
    from dmpc_ros.scenarios import ScenarioError

    text = (PACKAGE_DIR / "config" / "mass_spring.yaml").read_text()
    (tmp_path / "surrogate.yaml").write_text(re.sub(r"(?m)^name: .*$", r'name: "\\ud800"', text))
    with pytest.raises(ScenarioError, match=r"line \d+ \(name\): text with a lone surrogate"):
        load(str(tmp_path / "surrogate.yaml"))
    case = dataclasses.replace(load("mass_spring").with_overrides(steps=3), name="\ud800")
    summary = save(simulate(case), case, tmp_path)
    assert summary["scenario"] == "\ud800"
    assert (tmp_path / "states_inputs.png").is_file() and (tmp_path / "convergence.png").is_file()
