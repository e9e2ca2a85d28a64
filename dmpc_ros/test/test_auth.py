"""The sans-IO authentication (dmpc_ros.auth): HMAC tags, the keystore's checks, and the verifier's refusals — a
tampered byte, another agent's key, an unknown or missing key, any replay or reordering is refused and counted; a
fresh message is accepted."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmpc_ros.auth import (KEY_SIZE, MAC_SIZE, REASONS, KeystoreError, NonceCounter, Signer, Verifier,
                           create_keystore, load_keystore, message_mac)


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    return create_keystore(tmp_path_factory.mktemp("team") / "keys", 3)


def signed(signer: Signer, kind: str, body: bytes) -> tuple[int, bytes, bytes]:
    """(nonce, payload, tag) as the ROS layer makes them: the nonce is part of the signed bytes."""
    nonce = signer.nonce()
    payload = body + nonce.to_bytes(8, "little") + signer.key_id.encode()
    return nonce, payload, signer.tag(kind, payload)


def test_created_keystore_is_private_and_loads(keystore) -> None:
    assert os.stat(keystore.directory).st_mode & 0o777 == 0o700
    for path in keystore.directory.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_keystore(keystore.directory)
    assert loaded.keys == keystore.keys and len(loaded.keys) == 3
    assert all(len(key.key) == KEY_SIZE for key in loaded.keys.values())
    assert loaded.key_of(2).owner == "agent_2" and "key=" not in repr(loaded.key_of(2))
    loaded.require(3)
    with pytest.raises(KeystoreError, match="no key for agent_3 .*dmpc keys create"):
        loaded.require(4)


def test_create_never_overwrites(keystore) -> None:
    with pytest.raises(KeystoreError, match="not empty; keys are never overwritten"):
        create_keystore(keystore.directory, 2)
    with pytest.raises(KeystoreError, match="--agents 0 is not allowed"):
        create_keystore(keystore.directory.parent / "other", 0)


def copy_store(keystore, target):
    target.mkdir(mode=0o700)
    for path in keystore.directory.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
        (target / path.name).chmod(0o600)
    return target


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.chmod(0o755), r"keystore .*keys: mode 0755 is not allowed: .* must be 0700 \(chmod 700"),
    (lambda d: (d / "agent_1.key").chmod(0o644), r"agent_1.key: mode 0644 is not allowed: .* must be 0600"),
    (lambda d: (d / "agent_1.key").write_text("{"), r"agent_1.key: not a JSON object"),
    (lambda d: (d / "agent_1.key").write_text("[1]"), r"agent_1.key: a JSON list is not allowed"),
    (lambda d: edit_field(d, "key", "abcd"), r"field key: a value of 4 characters is not allowed: must be 64 hex"),
    (lambda d: edit_field(d, "key", "zz" * 32), r"field key: a value of 64 characters is not allowed"),
    (lambda d: edit_field(d, "owner", "agent_2"), r"field owner: 'agent_2' is not allowed: must be the file's name"),
    (lambda d: edit_field(d, "key_id", "a b"), r"field key_id: 'a b' is not allowed"),
    (lambda d: edit_field(d, "key_id", json.loads((d / "agent_0.key").read_text())["key_id"]),
     r"field key_id: .* agent_0.key has it too"),
    (lambda d: edit_field(d, "extra", "1"), r"field 'extra' is unknown; allowed: owner, key_id, key"),
    (lambda d: edit_field(d, "owner", None), r"field owner: missing; a string is required"),
    (lambda d: (d / "agent_1.key").write_text(" " * 5000), r"5000 bytes are not allowed"),
    (lambda d: [p.unlink() for p in d.iterdir()], r"holds no .key file; make one with dmpc keys create"),
])
def test_load_refuses_in_one_line_naming_file_field_and_value(keystore, tmp_path, edit, message) -> None:
    store = copy_store(keystore, tmp_path / "keys")
    edit(store)
    with pytest.raises(KeystoreError, match=message) as error:
        load_keystore(store)
    text = str(error.value)
    assert "\n" not in text and len(text) < 300
    secrets = [json.loads((keystore.directory / p).read_text())["key"] for p in os.listdir(keystore.directory)]
    assert not any(secret in text for secret in secrets)   # a key's value is never shown


def test_load_refuses_a_missing_folder_and_a_symbolic_link(keystore, tmp_path) -> None:
    with pytest.raises(KeystoreError, match=r"nowhere: No such file or directory; make one with dmpc keys create"):
        load_keystore(tmp_path / "nowhere")
    (tmp_path / "link").symlink_to(keystore.directory)
    with pytest.raises(KeystoreError, match="is not a folder"):
        load_keystore(tmp_path / "link")


def edit_field(directory, name, value) -> None:
    path = directory / "agent_1.key"
    data = json.loads(path.read_text())
    if value is None:
        del data[name]
    else:
        data[name] = value
    path.write_text(json.dumps(data))


def test_mac_is_hmac_sha256_and_separates_kinds() -> None:
    import hashlib
    import hmac
    key = bytes(range(32))
    assert message_mac(key, "plan", b"abc") == hmac.new(key, b"plan\0abc", hashlib.sha256).digest()
    assert len(message_mac(key, "plan", b"abc")) == MAC_SIZE
    assert message_mac(key, "plan", b"abc") != message_mac(key, "input", b"abc")


def team(keystore, agent: int, start: int = 1000) -> tuple[Signer, Verifier]:
    return Signer(keystore.key_of(agent), NonceCounter(start)), Verifier(keystore)


def test_fresh_messages_are_accepted_and_nothing_is_counted(keystore) -> None:
    signer, verifier = team(keystore, 1)
    for step in range(3):
        for iteration in range(3):
            nonce, payload, tag = signed(signer, "plan", b"plan %d %d" % (step, iteration))
            assert verifier.check("plan", 1, signer.key_id, (step, iteration), nonce, tag, payload) is None
    assert sum(verifier.refused.values()) == 0
    assert verifier.take_new() == dict.fromkeys(REASONS, 0)


def test_each_reason_is_refused_and_counted(keystore) -> None:
    signer, verifier = team(keystore, 1)
    nonce, payload, tag = signed(signer, "input", b"u=0.5")
    other = keystore.key_of(0).key_id
    assert verifier.check("input", 1, "", (0, 0), nonce, tag, payload) == "unsigned"
    assert verifier.check("input", 1, signer.key_id, (0, 0), nonce, b"", payload) == "unsigned"
    assert verifier.check("input", 1, "agent_1.000000000000", (0, 0), nonce, tag, payload) == "unknown_key"
    assert verifier.check("input", 1, other, (0, 0), nonce, tag, payload) == "wrong_owner"   # 0's key, 1's input
    assert verifier.check("input", 0, signer.key_id, (0, 0), nonce, tag, payload) == "wrong_owner"  # 1's key as 0
    assert verifier.check("input", 1, signer.key_id, (0, 0), nonce, tag, payload + b"!") == "bad_mac"
    assert verifier.check("plan", 1, signer.key_id, (0, 0), nonce, tag, payload) == "bad_mac"   # another kind
    assert verifier.check("input", 1, signer.key_id, (0, 0), nonce, tag, payload) is None
    assert verifier.check("input", 1, signer.key_id, (0, 0), nonce, tag, payload) == "replay"
    assert dict(verifier.refused) == {"unsigned": 2, "unknown_key": 1, "wrong_owner": 2, "bad_mac": 2, "replay": 1}
    assert verifier.by_sender[(0, "wrong_owner")] == 1
    assert verifier.take_new() == {"unsigned": 2, "unknown_key": 1, "wrong_owner": 2, "bad_mac": 2, "replay": 1}
    assert verifier.take_new() == dict.fromkeys(REASONS, 0)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=300), data=st.data())
def test_any_tampered_byte_is_refused(keystore, body: bytes, data) -> None:
    signer, verifier = team(keystore, 2)
    nonce, payload, tag = signed(signer, "plan", body)
    position = data.draw(st.integers(0, len(payload) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = payload[:position] + bytes([payload[position] ^ flip]) + payload[position + 1:]
    assert verifier.check("plan", 2, signer.key_id, (0, 0), nonce, tag, tampered) == "bad_mac"
    tag_position = data.draw(st.integers(0, MAC_SIZE - 1))
    bad_tag = tag[:tag_position] + bytes([tag[tag_position] ^ flip]) + tag[tag_position + 1:]
    assert verifier.check("plan", 2, signer.key_id, (0, 0), nonce, bad_tag, payload) == "bad_mac"
    assert verifier.check("plan", 2, signer.key_id, (0, 0), nonce, tag, payload) is None


@settings(max_examples=150, deadline=None)
@given(orders=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=20).map(sorted),
       delivery=st.lists(st.integers(0, 19), max_size=40))
def test_replays_and_reorderings_are_refused_and_fresh_ones_accepted(keystore, orders, delivery) -> None:
    """The sender's messages in its own (sorted) order; the network delivers any sequence of them, with copies and
    in any order: exactly those newer than everything accepted before are taken, i.e. an increasing subsequence, and
    every other delivery is counted as a replay."""
    signer, verifier = team(keystore, 0)
    messages = [(order, *signed(signer, "plan", b"plan %d %d" % order)) for order in orders]
    accepted, newest = [], None
    for index in delivery:
        order, nonce, payload, tag = messages[index % len(messages)]
        reason = verifier.check("plan", 0, signer.key_id, order, nonce, tag, payload)
        key = (*order, nonce)
        assert (reason is None) == (newest is None or key > newest)
        if reason is None:
            accepted.append(key)
            newest = key
        else:
            assert reason == "replay"
    assert accepted == sorted(set(accepted))
    assert verifier.refused["replay"] == len(delivery) - len(accepted)


def test_forged_messages_do_not_move_the_senders_order(keystore) -> None:
    """A forgery with a huge order is refused as bad_mac and leaves the genuine stream alone."""
    signer, verifier = team(keystore, 1)
    nonce, payload, tag = signed(signer, "plan", b"x")
    assert verifier.check("plan", 1, signer.key_id, (10**6, 0), 2**64 - 1, b"\0" * 32, payload) == "bad_mac"
    assert verifier.check("plan", 1, signer.key_id, (0, 0), nonce, tag, payload) is None


def test_nonces_increase_from_the_start_and_stay_uint64() -> None:
    counter = NonceCounter(2**64 - 2)
    assert counter() == 2**64 - 2 and counter() == 2**64 - 1
    with pytest.raises(OverflowError):
        counter()
    with pytest.raises(ValueError, match="nonce start"):
        NonceCounter(-1)
