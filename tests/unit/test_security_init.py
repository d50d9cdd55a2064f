"""`raftkube init`: every credential, right permissions, refuses to overwrite."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raftkube.security import encryption, pki, tokens
from raftkube.security.client_config import load_client_config
from raftkube.security.cluster_init import (
    ClusterLayout,
    InitConfig,
    InitError,
    MasterSpec,
    add_worker,
    init_cluster,
)

T0 = 1_700_000_000.0
ROOT = Path(__file__).resolve().parents[2]


def _config(directory: Path, **kw) -> InitConfig:
    return InitConfig(
        directory=directory,
        masters=(MasterSpec.parse("m1=127.0.0.1:7100"), MasterSpec.parse("m2=10.0.0.2")),
        workers=("w1", "w2"), **kw)


def test_init_creates_every_credential_with_private_modes(tmp_path) -> None:
    result = init_cluster(_config(tmp_path / "c", extra_sans=("api.example",)), now=T0)
    lay = result.layout
    assert lay.root == tmp_path / "c"
    secrets_ = [lay.ca_key, lay.master_key("m1"), lay.master_key("m2"), lay.worker_key("w1"),
                lay.worker_token("w1"), lay.worker_config("w1"), lay.admin_key, lay.admin_token,
                lay.raft_secret, lay.encryption_keys, lay.token_table, lay.join_token,
                lay.admin_config]
    files = {p for p in lay.root.rglob("*") if p.is_file()}
    assert set(secrets_) <= files
    for path in lay.root.rglob("*"):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        elif path.suffix == ".crt" or path == lay.cluster_file:
            assert mode == 0o644, path  # public: certificates and the cluster description
        else:
            assert mode == 0o600, path
    # Certificates chain to the CA with the right identities.
    ca = pki.load_key_pair(lay.ca_cert, lay.ca_key)
    m1 = pki.load_key_pair(lay.master_cert("m1"), lay.master_key("m1"))
    m1.cert.verify_directly_issued_by(ca.cert)
    sans = m1.cert.extensions.get_extension_for_class(pki.x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(pki.x509.IPAddress)} == {"127.0.0.1"}
    assert set(sans.get_values_for_type(pki.x509.DNSName)) == {"m1", "api.example"}
    assert pki.identity_of(pki.load_cert(lay.worker_cert("w2"))) == (
        "system:node:w2", ("system:nodes",))
    assert pki.identity_of(pki.load_cert(lay.admin_cert)) == ("admin", ("system:masters",))
    # The raft secret is random, 32 bytes or more.
    assert len(bytes.fromhex(lay.raft_secret.read_text().strip())) >= 32
    # The encryption key file works.
    ring = encryption.load_key_file(lay.encryption_keys)
    assert ring.decrypt(ring.encrypt(b"x", "/k"), "/k") == b"x"
    # Tokens: the table authenticates each issued token; no secret in the table.
    table = tokens.loads(lay.token_table.read_text())
    admin_token = lay.admin_token.read_text().strip()
    assert tokens.authenticate(table, admin_token, now=T0).groups == ("system:masters",)
    w1 = tokens.authenticate(table, lay.worker_token("w1").read_text().strip(), now=T0)
    assert w1.node_name == "w1"
    join = lay.join_token.read_text().strip()
    assert tokens.validate_join_token(table, join, now=T0 + 3600).usage == "join"
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.validate_join_token(table, join, now=result.join_token_expires)
    for t in (admin_token, join):
        assert tokens.split_token(t)[1] not in lay.token_table.read_text()
    # Client configs point at the user API port (admin) and the node port (workers).
    admin = load_client_config(lay.admin_config)
    assert admin.masters == ("127.0.0.1:7100", "10.0.0.2:6443")
    assert admin.ca_file == lay.ca_cert and admin.token() == admin_token
    worker = load_client_config(lay.worker_config("w1"))
    assert worker.masters == ("127.0.0.1:7102", "10.0.0.2:6445")
    assert worker.client_cert_file == lay.worker_cert("w1")
    # The cluster file describes the masters.
    doc = yaml.safe_load(lay.cluster_file.read_text())
    assert [(m["name"], m["apiPort"], m["raftPort"], m["nodePort"]) for m in doc["masters"]] == [
        ("m1", 7100, 7101, 7102), ("m2", 6443, 6444, 6445)]
    assert doc["caFingerprint"] == result.ca_fingerprint
    # Nothing else next to the cluster directory (no temp dirs left).
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_init_refuses_to_overwrite_unless_forced(tmp_path) -> None:
    first = init_cluster(_config(tmp_path / "c"))
    ca_before = first.layout.ca_cert.read_bytes()
    with pytest.raises(InitError, match="refusing to overwrite"):
        init_cluster(_config(tmp_path / "c"))
    assert first.layout.ca_cert.read_bytes() == ca_before
    init_cluster(_config(tmp_path / "c", force=True))
    assert first.layout.ca_cert.read_bytes() != ca_before
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_init_accepts_an_existing_empty_directory(tmp_path) -> None:
    (tmp_path / "c").mkdir()
    init_cluster(_config(tmp_path / "c"))
    assert ClusterLayout(tmp_path / "c").ca_cert.exists()


@pytest.mark.parametrize(("spec", "message"), [
    ("m1", "expected NAME=IP"),
    ("m1=not-an-ip", "'not-an-ip' is not an IP address"),
    ("m1=10.0.0.1:abc", "ports must be numbers"),
    ("m1=10.0.0.1:70000", "api port 70000 is out of range"),
    ("m1=10.0.0.1:7000,7000", "must differ"),
    ("M_1=10.0.0.1", "names are lower-case"),
])
def test_bad_master_specs_are_named(spec, message) -> None:
    with pytest.raises(InitError, match=message):
        MasterSpec.parse(spec)


def test_ipv6_master_spec() -> None:
    spec = MasterSpec.parse("m1=[::1]:7000,7005,7009")
    assert (spec.ip, spec.api_port, spec.raft_port, spec.node_port) == ("::1", 7000, 7005, 7009)
    assert spec.address(spec.api_port) == "[::1]:7000"


@pytest.mark.parametrize(("kw", "message"), [
    ({"masters": ()}, "at least one --master"),
    ({"masters": (MasterSpec.parse("a=10.0.0.1"), MasterSpec.parse("a=10.0.0.2"))},
     "master names repeat"),
    ({"masters": (MasterSpec.parse("a=10.0.0.1:7000"), MasterSpec.parse("b=10.0.0.1:7001"))},
     "masters 'a' and 'b' both use 10.0.0.1:7001"),
    ({"workers": ("w1", "w1")}, "worker names repeat"),
    ({"workers": ("W 1",)}, "worker 'W 1'"),
])
def test_bad_configs_are_refused_and_nothing_is_written(tmp_path, kw, message) -> None:
    base = {"directory": tmp_path / "c", "masters": (MasterSpec.parse("m1=10.0.0.1"),)}
    with pytest.raises(InitError, match=message):
        init_cluster(InitConfig(**{**base, **kw}))
    assert list(tmp_path.iterdir()) == []


def test_cli_init_prints_where_everything_is_and_refuses_a_second_run(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "raftkube.cli.raftkube_main", "init", "--dir",
           str(tmp_path / "c"), "--master", "m1=127.0.0.1:7200", "--worker", "w1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    lay = ClusterLayout(tmp_path / "c")
    for path in (lay.admin_config, lay.ca_cert, lay.admin_token, lay.raft_secret,
                 lay.encryption_keys, lay.join_token, lay.worker_config("w1")):
        assert str(path) in out
        assert path.exists()
    assert f"RAFTKUBECONFIG={lay.admin_config}" in out
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr


def test_add_worker_issues_credentials_in_an_existing_cluster(tmp_path) -> None:
    lay = init_cluster(_config(tmp_path / "c"), now=T0).layout
    made = add_worker(lay.root, "w3", now=T0)
    assert made.config_file == lay.worker_config("w3")
    cfg = load_client_config(made.config_file)
    assert cfg.masters == ("127.0.0.1:7102", "10.0.0.2:6445")
    assert pki.identity_of(pki.load_cert(lay.worker_cert("w3")))[0] == "system:node:w3"
    pki.load_cert(lay.worker_cert("w3")).verify_directly_issued_by(pki.load_cert(lay.ca_cert))
    table = tokens.loads(lay.token_table.read_text())
    assert tokens.authenticate(table, cfg.token() or "", now=T0).node_name == "w3"
    assert made.token_record.token_id in table
    doc = yaml.safe_load(lay.cluster_file.read_text())
    assert [w["name"] for w in doc["workers"]] == ["w1", "w2", "w3"]
    assert stat.S_IMODE(os.stat(lay.worker_key("w3")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(lay.root / "workers" / "w3").st_mode) == 0o700
    with pytest.raises(InitError, match="worker 'w1' already exists"):
        add_worker(lay.root, "w1")
    assert sorted(p.name for p in (lay.root / "workers").iterdir()) == ["w1", "w2", "w3"]
