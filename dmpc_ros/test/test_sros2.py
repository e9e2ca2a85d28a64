"""SROS2 keystores the project generates (scenarios/sros2.py, `dmpc keys sros2`): an enclave per node, governance and
least-privilege permissions from the run's topics, certificates and signatures that openssl verifies; and a secured
run wherever the middleware has DDS Security (the PyPI Fast DDS has not: that test skips, saying so)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from dmpc_ros.ros.sros2 import fastdds_has_security
from dmpc_ros.scenarios.sros2 import create_sros2_keystore, run_enclaves, security_environment

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
DMPC = [sys.executable, "-m", "dmpc_ros.cli"]


@pytest.fixture(scope="module")
def keystore(tmp_path_factory) -> Path:
    return create_sros2_keystore(tmp_path_factory.mktemp("sros2") / "keystore", run_enclaves(4, "/dmpc"))


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def topics(permissions: Path, kind: str) -> set[str]:
    return {t.text for t in ElementTree.parse(permissions).getroot().find(f".//{kind}").iter("topic")}


def test_every_node_has_an_enclave_signed_by_the_keystores_ca(keystore) -> None:
    enclaves = keystore / "enclaves"
    names = sorted(str(p.parent.relative_to(enclaves)) for p in enclaves.rglob("cert.pem"))
    assert names == sorted(["dmpc/plant", "dmpc/lifecycle_manager", "dmpc/recorder"] +
                           [f"dmpc/agent_{i}" for i in range(4)])
    ca = keystore / "public" / "ca.cert.pem"
    assert openssl("smime", "-verify", "-in", str(enclaves / "governance.p7s"), "-CAfile", str(ca),
                   "-out", os.devnull).returncode == 0
    for name in names:
        folder = enclaves / name
        assert {p.name for p in folder.iterdir()} == {"cert.pem", "key.pem", "identity_ca.cert.pem",
                                                     "permissions_ca.cert.pem", "governance.p7s", "permissions.xml",
                                                     "permissions.p7s"}
        assert (folder / "key.pem").stat().st_mode & 0o077 == 0
        subject = openssl("x509", "-in", str(folder / "cert.pem"), "-noout", "-subject", "-nameopt", "RFC2253")
        assert subject.stdout.strip() == f"subject=CN=/{name}"
        assert openssl("verify", "-CAfile", str(ca), str(folder / "cert.pem")).returncode == 0
        grant = ElementTree.parse(folder / "permissions.xml").getroot().find(".//grant")
        assert grant.get("name") == f"/{name}" and grant.findtext("subject_name") == f"CN=/{name}"
        assert grant.findtext("default") == "DENY"
        assert openssl("smime", "-verify", "-in", str(folder / "permissions.p7s"), "-CAfile", str(ca),
                       "-out", os.devnull).returncode == 0
    governance = ElementTree.parse(enclaves / "governance.xml").getroot()
    assert governance.findtext(".//allow_unauthenticated_participants") == "false"
    assert governance.findtext(".//data_protection_kind") == "ENCRYPT"


def test_permissions_are_least_privilege_on_the_runs_topics(keystore) -> None:
    enclaves = keystore / "enclaves" / "dmpc"
    for i in range(4):
        published = topics(enclaves / f"agent_{i}" / "permissions.xml", "publish")
        own = {t for t in published if t.startswith("rt/dmpc/")}
        assert own == {f"rt/dmpc/agent_{i}/{leaf}" for leaf in ("plan", "control", "status", "heartbeat", "path",
                                                                 "markers")}
        read = topics(enclaves / f"agent_{i}" / "permissions.xml", "subscribe")
        assert {"rt/dmpc/agent_*/plan", f"rt/dmpc/agent_{i}/state"} <= read and "rt/dmpc/agent_*/control" not in read
    plant = enclaves / "plant" / "permissions.xml"
    assert {t for t in topics(plant, "publish") if t.startswith("rt/dmpc")} == {"rt/dmpc/agent_*/state"}
    assert "rt/dmpc/agent_*/control" in topics(plant, "subscribe")


def test_a_tampered_permissions_file_fails_its_signature(keystore, tmp_path) -> None:
    signed = (keystore / "enclaves" / "dmpc" / "agent_1" / "permissions.p7s").read_text()
    forged = tmp_path / "permissions.p7s"
    forged.write_text(signed.replace("rt/dmpc/agent_1/control", "rt/dmpc/agent_2/control"))
    assert "agent_2/control" in forged.read_text()
    assert openssl("smime", "-verify", "-in", str(forged), "-CAfile", str(keystore / "public" / "ca.cert.pem"),
                   "-out", os.devnull).returncode != 0


def test_dmpc_keys_sros2_makes_the_keystore_and_says_how_to_run(tmp_path) -> None:
    done = subprocess.run(DMPC + ["keys", "sros2", str(tmp_path / "k"), "--agents", "2", "--namespace", "/team"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "5 enclaves (/team/plant, /team/agent_0, /team/agent_1, /team/lifecycle_manager, /team/recorder)" \
        in done.stdout and "ROS_SECURITY_ENABLE=true" in done.stdout
    assert (tmp_path / "k" / "enclaves" / "team" / "agent_1" / "permissions.p7s").is_file()
    again = subprocess.run(DMPC + ["keys", "sros2", str(tmp_path / "k"), "--agents", "2"], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 2 and "exists and is not an empty folder" in again.stderr


SECURE, WHY = fastdds_has_security()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not SECURE, reason=WHY)
def test_a_secured_run_completes_in_its_enclaves(keystore, tmp_path) -> None:
    """Where Fast DDS has DDS Security (a normal ROS 2 install): `dmpc run` with the generated keystore enforced
    runs every process in its enclave and completes."""
    env = {**os.environ, **security_environment(keystore)}
    run = subprocess.run(DMPC + ["run", "mass_spring", "--steps", "3", "--output", str(tmp_path / "run"),
                                 "--no-reference"], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["complete"]


def test_the_detection_of_dds_security_is_honest() -> None:
    """The wheels' library: no PKI-DH plugin, and the "security is disabled" log line is in it."""
    if SECURE:
        pytest.skip(f"this Fast DDS has DDS Security: {WHY}")
    assert "built without DDS Security" in WHY and "security is disabled" in WHY
