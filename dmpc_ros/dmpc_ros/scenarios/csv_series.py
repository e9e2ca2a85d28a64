"""Time series from CSV files named in a scenario (disturbances, references), read strictly at load time.

A file has a header row naming its columns, one of them `time` [s], strictly increasing, and one row per sample;
every cell a finite number (a blank cell only where the caller allows it: a free setpoint entry). A path is
relative to the scenario file's folder (for a scenario built in Python or by a factory: the working directory).
Every error is one line naming the field, the file and what is wrong (row and column where it is a cell).
"""
from __future__ import annotations

import contextlib
import csv
import math
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .validation import ScenarioError

_DIRECTORY: ContextVar[Path | None] = ContextVar("scenario_directory", default=None)


def source_directory(source: str) -> Path | None:
    """The folder of a scenario file source (a YAML path), None for other sources (a factory, a Python name)."""
    return Path(source).resolve().parent if source.endswith((".yaml", ".yml")) else None


@contextlib.contextmanager
def scenario_directory(source: str):
    """While parsing the scenario of `source`, relative CSV paths resolve against its folder."""
    token = _DIRECTORY.set(source_directory(source))
    try:
        yield
    finally:
        _DIRECTORY.reset(token)


def resolve(value: object, name: str) -> Path:
    """The file a scenario field names: a non-empty string, relative to the scenario file's folder."""
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be the path of a CSV file (relative to the "
                            f"scenario file)")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (_DIRECTORY.get() or Path.cwd()) / path
    return path


@dataclass(frozen=True)
class CsvSeries:
    """The columns of a CSV time series: times [s] (strictly increasing) and named value columns (NaN: blank)."""
    path: Path
    times: np.ndarray
    columns: dict[str, np.ndarray]


def read_series(value: object, name: str, allowed: tuple[str, ...], required: tuple[str, ...] = (),
                blanks: bool = False) -> CsvSeries:
    """The CSV file named by field `name`: header `time` plus columns among `allowed` (those in `required` must be
    there); blank cells refused unless `blanks` (they read as NaN)."""
    path = resolve(value, name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{name}: {value!r}: file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ScenarioError(f"{name}: {value!r}: file {path} cannot be read: {reason}") from None
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    where = f"{name}: {path.name}"
    if not rows:
        raise ScenarioError(f"{where}: the file is empty; it needs a header (time, {', '.join(allowed)}) and rows")
    header = [cell.strip() for cell in rows[0]]
    if "time" not in header:
        raise ScenarioError(f"{where}: the header {header} has no 'time' column; columns: time, "
                            f"{', '.join(allowed)}")
    unknown = [c for c in header if c != "time" and c not in allowed]
    if unknown:
        raise ScenarioError(f"{where}: column {unknown[0]!r} is not allowed; allowed: time, {', '.join(allowed)}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ScenarioError(f"{where}: column {repeated[0]!r} is given twice; each column may appear once")
    missing = [c for c in required if c not in header]
    if missing:
        raise ScenarioError(f"{where}: column {missing[0]!r} is missing; required: time, {', '.join(required)}")
    if len(rows) < 2:
        raise ScenarioError(f"{where}: no samples below the header; give at least one row")
    data = np.empty((len(rows) - 1, len(header)))
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ScenarioError(f"{where}: row {r} has {len(row)} cells, the header {len(header)}")
        for c, cell in enumerate(row):
            data[r - 2, c] = cell_value(cell, f"{where}: row {r}, column {header[c]!r}", blanks and header[c] != "time")
    times = data[:, header.index("time")]
    decreasing = np.flatnonzero(np.diff(times) <= 0)
    if decreasing.size:
        r = int(decreasing[0]) + 3
        raise ScenarioError(f"{where}: row {r}: time {times[r - 2]:g} is not allowed: times must increase strictly "
                            f"(previous {times[r - 3]:g})")
    return CsvSeries(path, times, {c: data[:, k] for k, c in enumerate(header) if c != "time"})


def cell_value(cell: str, where: str, blank: bool) -> float:
    text = cell.strip()
    if not text and blank:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise ScenarioError(f"{where}: {cell!r} is not allowed: must be a finite number"
                            f"{' (or blank: free)' if blank else ''}")
    return value


def copy_data_files(source: Path, folder: Path) -> list[Path]:
    """Copy the CSV files a scenario file names by relative path (inside its own folder) to the same relative
    paths under `folder`, where `dmpc run` puts its copy of the scenario, so the copy (which the nodes read) finds
    them. A path leaving the scenario's folder (`..`) is not copied: give such a file by its absolute path."""
    import shutil

    from .yaml_file import read_yaml

    def strings(value: object):
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value

    copied = []
    for name in strings(read_yaml(source)):
        relative = Path(name)
        if relative.suffix.lower() != ".csv" or relative.is_absolute() or ".." in relative.parts:
            continue
        original = source.parent / relative
        if original.is_file():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original, target)
            copied.append(target)
    return copied
