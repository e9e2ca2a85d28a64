"""The team keystore: one folder (mode 0700) with one secret 32-byte key per agent, each in its own file (0600).

A file `agent_<i>.key` holds one JSON object: `owner` (agent_<i>, the file's stem), `key_id` (what messages name;
letters, digits, `.`, `_`, `-`, at most 64) and `key` (64 hex digits). `create_keystore` writes a fresh one from the
operating system's random source (`secrets`); `load_keystore` refuses, in one line naming the file, the field and the
value, a folder or file others may read, a symbolic link, a file too large, malformed JSON, a field missing or
unknown, an owner that is not the file's, a key of the wrong size, and a key id used twice. A key's value is never
printed.

HMAC keys are shared secrets: a node that holds agent j's key could sign as j. A run's nodes load one keystore, so
the keys keep out whoever is not in the team (forged and spoofed messages); SROS2 (signatures, per-node permissions,
where the middleware has DDS Security) also separates the members.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

KEY_SIZE = 32                   # bytes of an HMAC-SHA256 key (the hash's block size is 64; 32 is its strength)
MAX_KEYS = 1000                 # keys a keystore may hold (one per agent; scenarios have at most 1000 agents)
MAX_FILE_SIZE = 4096            # bytes of one key file (a real one has about 150)
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
OWNER = re.compile(r"agent_(0|[1-9][0-9]{0,3})")
SUFFIX = ".key"
FIELDS = ("owner", "key_id", "key")


class KeystoreError(ValueError):
    """A keystore that cannot be used; one line naming the folder or file, the field and what is allowed."""


def owner_name(agent: int) -> str:
    """The keystore's name for agent `agent`'s key: agent_<i>."""
    return f"agent_{agent}"


@dataclass(frozen=True)
class TeamKey:
    owner: str          # agent_<i>
    key_id: str         # what a signed message carries in key_id
    key: bytes = b""    # KEY_SIZE secret bytes

    def __repr__(self) -> str:   # never show the secret
        return f"TeamKey(owner={self.owner!r}, key_id={self.key_id!r})"

    @property
    def agent(self) -> int:
        return int(self.owner.rpartition("_")[2])


@dataclass(frozen=True)
class Keystore:
    """The keys of one team, by key id."""

    directory: Path
    keys: dict[str, TeamKey]

    def key_of(self, agent: int) -> TeamKey:
        """Agent `agent`'s key (KeystoreError naming the command that makes one when there is none)."""
        for key in self.keys.values():
            if key.owner == owner_name(agent):
                return key
        raise KeystoreError(f"keystore {self.directory}: no key for {owner_name(agent)} (it has "
                            f"{self.owner_list()}); make one for every agent: dmpc keys create DIR --agents M")

    def require(self, agents: int) -> None:
        """Every agent 0 … agents − 1 has a key, else KeystoreError naming the first without one."""
        for agent in range(agents):
            self.key_of(agent)

    def owner_list(self) -> str:
        owners = sorted((key.agent for key in self.keys.values()))
        return f"keys of agents {owners[0]}..{owners[-1]}" if owners else "no key"


def create_keystore(directory: Path, agents: int) -> Keystore:
    """A new keystore for agents 0 … agents − 1 in `directory` (created with mode 0700; an existing one must be
    empty: keys are never overwritten)."""
    directory = Path(directory)
    if isinstance(agents, bool) or not isinstance(agents, int) or not 1 <= agents <= MAX_KEYS:
        raise KeystoreError(f"--agents {agents!r} is not allowed: must be an integer in 1..{MAX_KEYS}")
    if directory.exists() and not directory.is_dir():
        raise KeystoreError(f"keystore {directory}: is a file; give a folder (created if missing)")
    if directory.is_dir() and any(directory.iterdir()):
        raise KeystoreError(f"keystore {directory}: is not empty; keys are never overwritten: remove it or give a "
                            "new folder")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    keys = {}
    for agent in range(agents):
        owner = owner_name(agent)
        key = TeamKey(owner, f"{owner}.{secrets.token_hex(6)}", secrets.token_bytes(KEY_SIZE))
        text = json.dumps({"owner": key.owner, "key_id": key.key_id, "key": key.key.hex()}) + "\n"
        handle = os.open(directory / f"{owner}{SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as file:
            file.write(text)
        keys[key.key_id] = key
    return Keystore(directory, keys)


def _private(path: Path, mode: int, what: str, wanted: str) -> None:
    if mode & 0o077:
        raise KeystoreError(f"keystore {path}: mode {stat.S_IMODE(mode):04o} is not allowed: a {what} of secret keys "
                            f"must be {wanted} (chmod {wanted[1:]} {path})")


def load_keystore(directory: str | Path) -> Keystore:
    """The keystore in `directory`, every file checked (KeystoreError, one line, on the first problem)."""
    directory = Path(directory)
    try:
        info = directory.lstat()
    except OSError as error:
        raise KeystoreError(f"keystore {directory}: {error.strerror or error}; make one with dmpc keys create "
                            f"{directory} --agents M") from None
    if not stat.S_ISDIR(info.st_mode):
        raise KeystoreError(f"keystore {directory}: is not a folder (a symbolic link or a file); give the folder "
                            "dmpc keys create made")
    _private(directory, info.st_mode, "folder", "0700")
    try:
        paths = sorted(directory.glob(f"*{SUFFIX}"))
    except OSError as error:
        raise KeystoreError(f"keystore {directory}: {error.strerror or error}") from None
    if len(paths) > MAX_KEYS:
        raise KeystoreError(f"keystore {directory}: {len(paths)} key files are not allowed: at most {MAX_KEYS}")
    keys: dict[str, TeamKey] = {}
    for path in paths:
        key = _read_key(path)
        if key.key_id in keys:
            raise KeystoreError(f"keystore {path}: field key_id: {key.key_id!r} is not allowed: "
                                f"{keys[key.key_id].owner}{SUFFIX} has it too; key ids are unique")
        keys[key.key_id] = key
    if not keys:
        raise KeystoreError(f"keystore {directory}: holds no {SUFFIX} file; make one with dmpc keys create "
                            f"{directory} --agents M")
    return Keystore(directory, keys)


def _read_key(path: Path) -> TeamKey:
    """One key file, checked."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise KeystoreError(f"keystore {path}: is not a regular file (a symbolic link?); key files are plain files")
    _private(path, info.st_mode, "file", "0600")
    if info.st_size > MAX_FILE_SIZE:
        raise KeystoreError(f"keystore {path}: {info.st_size} bytes are not allowed: a key file has at most "
                            f"{MAX_FILE_SIZE}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KeystoreError(f"keystore {path}: not a JSON object ({str(error)[:80]}); "
                            'expected {"owner": ..., "key_id": ..., "key": ...}') from None
    if not isinstance(data, dict):
        raise KeystoreError(f"keystore {path}: a JSON {type(data).__name__} is not allowed: must be an object with "
                            f"{', '.join(FIELDS)}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise KeystoreError(f"keystore {path}: field {unknown[0][:40]!r} is unknown; allowed: {', '.join(FIELDS)}")
    for name in FIELDS:
        if not isinstance(data.get(name), str):
            raise KeystoreError(f"keystore {path}: field {name}: {'missing' if name not in data else 'not a string'}; "
                                "a string is required")
    owner, key_id, key = data["owner"], data["key_id"], data["key"]
    if not OWNER.fullmatch(owner) or f"{owner}{SUFFIX}" != path.name:
        raise KeystoreError(f"keystore {path}: field owner: {owner[:40]!r} is not allowed: must be the file's name "
                            f"{path.stem!r} (agent_<i>)")
    if not KEY_ID.fullmatch(key_id):
        raise KeystoreError(f"keystore {path}: field key_id: {key_id[:70]!r} is not allowed: must be 1 to 64 letters, "
                            "digits, '.', '_' or '-'")
    try:
        secret = bytes.fromhex(key)
    except ValueError:
        secret = b""
    if len(secret) != KEY_SIZE or len(key) != 2 * KEY_SIZE:
        raise KeystoreError(f"keystore {path}: field key: a value of {len(key)} characters is not allowed: must be "
                            f"{2 * KEY_SIZE} hex digits (a {KEY_SIZE}-byte key; the value is secret and not shown)")
    return TeamKey(owner, key_id, secret)
