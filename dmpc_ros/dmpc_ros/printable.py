"""Text from scenario files (names of scenarios, agents, states, units) made safe to show and to name files with.

A YAML or JSON string can hold anything, e.g. a lone surrogate ("\\ud800") that no encoder accepts: matplotlib's
font code raises on it, `print` to a UTF-8 terminal raises, and a path holding it cannot be created. The
summary keeps the name as it is (JSON escapes it); everything drawn or printed goes through `readable`, every file
or folder name made from such text through `file_name`. The one place both rules live.
"""
from __future__ import annotations

import re
import unicodedata

REPLACEMENT = "\ufffd"        # what stands in for a character that cannot be shown
FILE_NAME_LENGTH = 64         # [characters] of a file-name part made from free text
KEPT_CONTROLS = frozenset("\n\t")
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._+-]+")


def readable(text: object) -> str:
    """`text` with every surrogate and control character (other than newline and tab) replaced by U+FFFD: it
    encodes as UTF-8 and draws in any matplotlib font."""
    return "".join(REPLACEMENT if unicodedata.category(c) in ("Cs", "Cc") and c not in KEPT_CONTROLS else c
                   for c in str(text))


def file_name(text: object, fallback: str = "unnamed") -> str:
    """A part of a file or folder name from free text: ASCII letters, digits and `._+-` only (runs of anything
    else become one `_`), at most FILE_NAME_LENGTH characters, never empty, `.` or `..` (then `fallback`)."""
    name = _UNSAFE_IN_NAMES.sub("_", str(text))[:FILE_NAME_LENGTH].strip("_")
    return fallback if name in ("", ".", "..") or set(name) == {"."} else name
