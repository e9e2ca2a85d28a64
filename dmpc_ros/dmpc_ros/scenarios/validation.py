"""Small checked readers for scenario data: every error names the field, the bad value and what is allowed."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


MAX_MESSAGE = 400   # characters of an error message: one line, the field first and what is allowed last


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """`text` as one line of at most `limit` characters: whitespace runs (newlines too) become one space and an
    over-long middle (a long value) is cut at word boundaries, keeping the start (the field) and the end (what is
    allowed)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head, tail = text[:limit * 2 // 3], text[-(limit // 3 - 3):]
    head = head[:head.rfind(" ")] if " " in head[len(head) // 2:] else head
    tail = tail[tail.find(" ") + 1:] if " " in tail[:len(tail) // 2] else tail
    return f"{head} … {tail}"


def is_text(value: str) -> bool:
    """True if `value` is valid Unicode (no lone surrogate, which no file, plot or log can encode)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ScenarioError(ValueError):
    """A scenario file or parameter set that cannot be used; the message says which field and why, in one line of
    at most MAX_MESSAGE characters."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(message))


def section(data: dict, path: str, key: str, required: bool = False) -> dict:
    value = data.get(key, None)
    if value is None:
        if required:
            raise ScenarioError(f"{path}{key}: missing; a mapping is required")
        return {}
    if not isinstance(value, dict):
        raise ScenarioError(f"{path}{key}: {value!r} is not allowed: must be a mapping")
    return value


def reject_unknown(data: dict, path: str, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScenarioError(f"{path}{unknown[0]}: unknown field; allowed: {', '.join(sorted(allowed))}")


def number(data: dict, path: str, key: str, default: float | None = None, minimum: float | None = None,
           maximum: float | None = None, strict_minimum: bool = False, integer: bool = False,
           finite: bool = False) -> Any:
    value = data.get(key, default)
    name = f"{path}{key}"
    if value is None:
        raise ScenarioError(f"{name}: missing; a number is required")
    return check_number(value, name, minimum, maximum, strict_minimum, integer, finite)


def check_number(value: Any, name: str, minimum: float | None = None, maximum: float | None = None,
                 strict_minimum: bool = False, integer: bool = False, finite: bool = False) -> Any:
    """`value` as a float (an int with integer=True) within the bounds; `finite`: inf is refused too."""
    kind = "an integer" if integer else ("a finite number" if finite else "a number")
    if isinstance(value, str) and value.strip().lower() in ("inf", ".inf", "infinity"):
        value = math.inf
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e300:
        raise ScenarioError(f"{name}: an integer of {len(str(abs(value)))} digits is not allowed: must be {kind} "
                            f"of at most 300 digits")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and (
            math.isnan(value) or (integer and not value.is_integer()))):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be {kind}")
    if (finite or integer) and math.isinf(value):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be {kind}")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be {'>' if strict_minimum else '≥'} {minimum}")
    if maximum is not None and value > maximum:
        raise ScenarioError(f"{name}: {value!r} is not allowed: must be ≤ {maximum}")
    return int(value) if integer else float(value)


def text(value: Any, name: str, limit: int = 200, lines: bool = False) -> str:
    """A name or description: a string of valid Unicode, at most `limit` characters, without control characters
    (`lines`: line breaks and tabs allowed)."""
    if not isinstance(value, str):
        kind = {bool: "true or false", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}.get(
            type(value), f"a {type(value).__name__}")
        raise ScenarioError(f"{name}: {kind} is not allowed: must be text (quote it in YAML)")
    if not is_text(value):
        raise ScenarioError(f"{name}: {ascii(value[:40])} is not allowed: must be valid Unicode (it has a lone "
                            f"surrogate)")
    if len(value) > limit:
        raise ScenarioError(f"{name}: {len(value)} characters are not allowed: at most {limit}")
    allowed = "\n\t\r" if lines else ""
    if any((ord(c) < 32 or ord(c) == 127) and c not in allowed for c in value):
        raise ScenarioError(f"{name}: {ascii(value[:40])} is not allowed: must be text without control characters")
    return value


def choice(data: dict, path: str, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    value = data.get(key, default)
    if value is None:
        raise ScenarioError(f"{path}{key}: missing; must be one of {', '.join(allowed)}")
    if value not in allowed:
        raise ScenarioError(f"{path}{key}: {value!r} is not allowed: must be one of {', '.join(allowed)}")
    return value


def flag(data: dict, path: str, key: str, default: bool) -> bool:
    """A true/false field (YAML booleans only: 1, "yes" or "on" written as text are refused)."""
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ScenarioError(f"{path}{key}: {value!r} is not allowed: must be true or false")
    return value


def per_agent(data: dict, path: str, key: str, count: int, default: float, **limits) -> list[float]:
    """A scalar applied to every agent, or a list of exactly `count` values."""
    value = data.get(key, default)
    if isinstance(value, list):
        if len(value) != count:
            raise ScenarioError(f"{path}{key}: has {len(value)} entries, "
                                f"expected {count} (one per agent) or one number")
        return [check_number(v, f"{path}{key}[{i}]", **limits) for i, v in enumerate(value)]
    return [check_number(value, f"{path}{key}", **limits)] * count


def weight_matrix(value: Any, name: str, size: int) -> np.ndarray:
    """A positive semidefinite weight: a diagonal (list of `size` numbers) or a full size × size matrix."""
    array = None
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value) \
            and len({len(row) for row in value}) == 1:
        array = np.array([[check_number(v, f"{name}[{i}][{j}]") for j, v in enumerate(row)]
                          for i, row in enumerate(value)])
    elif isinstance(value, list) and not any(isinstance(v, list) for v in value):
        array = np.array([check_number(v, f"{name}[{i}]") for i, v in enumerate(value)])
    if array is None or array.ndim not in (1, 2):
        raise ScenarioError(f"{name}: {value!r} is not allowed: "
                            f"must be a list of {size} numbers or a {size}×{size} matrix")
    if array.ndim == 1:
        if array.shape != (size,):
            raise ScenarioError(f"{name}: has {array.shape[0]} entries, "
                                f"expected {size} (the diagonal) or a {size}×{size} matrix")
        array = np.diag(array)
    elif array.shape != (size, size):
        raise ScenarioError(f"{name}: matrix is {array.shape[0]}×{array.shape[1]}, expected {size}×{size}")
    if not np.all(np.isfinite(array)) or not np.allclose(array, array.T):
        raise ScenarioError(f"{name}: must be finite and symmetric")
    if np.min(np.linalg.eigvalsh(array)) < -1e-12:
        raise ScenarioError(f"{name}: must be positive semidefinite "
                            f"(smallest eigenvalue {np.min(np.linalg.eigvalsh(array)):.3g})")
    return array


def parse_rows(value: object, name: str, count: int, fields: tuple[str, ...], noun: str = "lists") -> np.ndarray:
    """`count` lists of len(fields) numbers, stacked into one vector."""
    if value is None:
        raise ScenarioError(f"{name}: missing; give {count} [{', '.join(fields)}] {noun}")
    if not isinstance(value, list) or len(value) != count:
        raise ScenarioError(f"{name}: {value!r} is not allowed: expected {count} [{', '.join(fields)}] {noun}")
    rows = []
    for i, entry in enumerate(value):
        if not isinstance(entry, list) or len(entry) != len(fields):
            raise ScenarioError(f"{name}[{i}]: {entry!r} is not allowed: must be [{', '.join(fields)}]")
        rows.extend(check_number(v, f"{name}[{i}][{j}]", finite=True) for j, v in enumerate(entry))
    return np.asarray(rows, float)


def agent_values(value: object, count: int) -> list[tuple[object, str]]:
    """One value for every agent, or `per_agent: [...]` with exactly one value per agent."""
    if isinstance(value, dict):
        reject_unknown(value, "", {"per_agent"})
        values = value.get("per_agent")
        if not isinstance(values, list) or len(values) != count:
            raise ScenarioError(f"per_agent: expected a list of {count} entries (one per agent), got {values!r}")
        return [(v, f".per_agent[{i}]") for i, v in enumerate(values)]
    return [(value, "")] * count


def symbol(state_name: str) -> str:
    """The state's symbol across agents: 'p_3' → 'p' (built-in families number their states), else the name."""
    stem, _, suffix = state_name.rpartition("_")
    return stem if stem and suffix.isdigit() else state_name
