"""The scenario's `security` section: whether plans and control inputs must be authenticated, and with which keys.

    security:
      authenticate: true        # refuse unsigned, forged, foreign and replayed plans and inputs (dmpc_ros.auth)
      keystore: keys/team       # the team keystore (dmpc keys create); relative to the scenario file's folder

Authentication is on when `authenticate` is true or a keystore is named, by the scenario or by `dmpc run
--authenticate` / `--keystore DIR` (the node parameters authenticate and keystore): a flag can require it, never
switch a scenario's requirement off. On without a keystore is a one-line error. Off by default, so a run without the
section is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .csv_series import source_directory
from .validation import ScenarioError, flag, reject_unknown

MAX_PATH = 4096   # characters of a keystore path (Linux's PATH_MAX)


@dataclass(frozen=True)
class SecuritySettings:
    authenticate: bool = False
    keystore: str = ""          # absolute path of the team keystore ("" when not named)

    @property
    def enabled(self) -> bool:
        return self.authenticate or bool(self.keystore)


def keystore_path(value: object, name: str, base: Path | None) -> str:
    """A keystore folder given as text: absolute, relative ones against `base` (else the working directory)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PATH or "\0" in value:
        shown = value[:80] if isinstance(value, str) else value
        raise ScenarioError(f"{name}: {shown!r} is not allowed: must be the path of a keystore folder (dmpc keys "
                            f"create), at most {MAX_PATH} characters")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else ((base or Path.cwd()) / path).resolve())


def parse_security(data: dict, source: str) -> SecuritySettings:
    """The `security` section (an empty mapping: off)."""
    reject_unknown(data, "security.", {"authenticate", "keystore"})
    keystore = data.get("keystore")
    return SecuritySettings(
        authenticate=flag(data, "security.", "authenticate", False),
        keystore="" if keystore is None else keystore_path(keystore, "security.keystore", source_directory(source)))


def security_parameters(settings: SecuritySettings, authenticate: bool = False, keystore: str = "") -> dict:
    """The node parameters authenticate and keystore of a run: the scenario's settings, required further by the
    run's (flags, launch arguments); {} when authentication is off. ScenarioError when on without a keystore."""
    keystore = keystore_path(keystore, "keystore", None) if keystore else settings.keystore
    if not (authenticate or settings.enabled or keystore):
        return {}
    if not keystore:
        raise ScenarioError("security.keystore: missing; authentication is required (security.authenticate or "
                            "--authenticate) and needs the team keystore: make one with dmpc keys create DIR "
                            "--agents M, then give --keystore DIR or security.keystore")
    return {"authenticate": True, "keystore": keystore}
