"""The provisioning scripts of deploy/provision/ in their local mode (a root directory
instead of /): what the Vagrant VMs and the local multi-host bring-up both run.

Real scripts, real files; installing raftkube uses real wheels built by
scripts/build_wheels.sh into a real virtualenv."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "deploy" / "provision"
SYSTEMD = REPO / "deploy" / "systemd"

NODES = """\
# name role address
master-1 master 192.168.57.11
master-2 master 192.168.57.12
master-3 master 192.168.57.13

worker-1 worker 192.168.57.51   # first worker
"""


def _run(script: str, *args: str, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PROVISION / script), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


@pytest.fixture
def cluster(tmp_path: Path) -> dict[str, Path]:
    """A nodes file, a cluster directory shaped like `raftkube init`'s, and an empty root."""
    nodes = tmp_path / "nodes"
    nodes.write_text(NODES)
    cluster_dir = tmp_path / "cluster"
    (cluster_dir / "nodes" / "master-1").mkdir(parents=True)
    (cluster_dir / "nodes" / "worker-1").mkdir(parents=True)
    (cluster_dir / "ca.crt").write_text("CA CERT\n")
    (cluster_dir / "nodes" / "master-1" / "server.crt").write_text("M1 CERT\n")
    (cluster_dir / "nodes" / "master-1" / "server.key").write_text("M1 KEY\n")
    (cluster_dir / "nodes" / "master-1" / "raft.secret").write_text("RAFT SECRET\n")
    (cluster_dir / "nodes" / "worker-1" / "node.crt").write_text("W1 CERT\n")
    (cluster_dir / "nodes" / "worker-1" / "node.key").write_text("W1 KEY\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    # What Vagrant's hostname step leaves behind.
    (root / "etc" / "hosts").write_text(
        "127.0.0.1 localhost\n127.0.1.1 master-1 master-1\n::1 localhost ip6-localhost\n"
    )
    return {"nodes": nodes, "cluster": cluster_dir, "root": root}


def _configure(c: dict[str, Path], name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run("configure_node.sh", "--name", name, "--nodes", str(c["nodes"]),
                "--cluster-dir", str(c["cluster"]), "--root", str(c["root"]), *extra)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_configure_master_writes_hosts_pki_and_config(cluster):
    result = _configure(cluster, "master-1")
    assert result.returncode == 0, result.stderr
    root = cluster["root"]

    hosts = (root / "etc" / "hosts").read_text().splitlines()
    assert "127.0.1.1 master-1 master-1" not in hosts
    assert "127.0.0.1 localhost" in hosts
    for line in ("192.168.57.11 master-1", "192.168.57.12 master-2",
                 "192.168.57.13 master-3", "192.168.57.51 worker-1"):
        assert line in hosts

    pki = root / "etc" / "raftkube" / "pki"
    assert sorted(p.name for p in pki.iterdir()) == [
        "ca.crt", "raft.secret", "server.crt", "server.key",
    ]
    assert _mode(pki) == 0o700
    assert _mode(pki / "server.key") == 0o600
    assert _mode(pki / "raft.secret") == 0o600
    assert _mode(pki / "server.crt") == 0o644
    assert (pki / "server.key").read_text() == "M1 KEY\n"

    config = yaml.safe_load((root / "etc" / "raftkube" / "master.yaml").read_text())
    assert config["node_name"] == "master-1"
    assert config["advertise_address"] == "192.168.57.11"
    assert config["raft"]["listen"] == "192.168.57.11:2380"
    assert config["raft"]["peers"] == ["192.168.57.12:2380", "192.168.57.13:2380"]
    assert config["data_dir"] == "/var/lib/raftkube/master"
    assert _mode(root / "etc" / "raftkube" / "master.yaml") == 0o600
    assert (root / "var" / "lib" / "raftkube" / "master").is_dir()
    assert (root / "etc" / "raftkube" / "nodes").read_text() == NODES
    assert not (root / "etc" / "raftkube" / "worker.yaml").exists()


def test_configure_worker_lists_every_master_and_gets_only_its_own_files(cluster):
    result = _configure(cluster, "worker-1", "--api-port", "7443")
    assert result.returncode == 0, result.stderr
    etc = cluster["root"] / "etc" / "raftkube"
    config = yaml.safe_load((etc / "worker.yaml").read_text())
    assert config["node_name"] == "worker-1"
    assert config["node_address"] == "192.168.57.51"
    assert config["masters"] == ["192.168.57.11:7443", "192.168.57.12:7443",
                                 "192.168.57.13:7443"]
    assert sorted(p.name for p in (etc / "pki").iterdir()) == ["ca.crt", "node.crt", "node.key"]


def test_configure_is_idempotent(cluster):
    assert _configure(cluster, "master-1").returncode == 0
    first = _snapshot(cluster["root"])
    assert _configure(cluster, "master-1").returncode == 0
    assert _snapshot(cluster["root"]) == first
    hosts = (cluster["root"] / "etc" / "hosts").read_text()
    assert hosts.count("# BEGIN raftkube nodes") == 1


def test_config_written_by_raftkube_init_is_installed_unchanged(cluster):
    own = "node_name: master-1\nfrom: raftkube-init\n"
    (cluster["cluster"] / "nodes" / "master-1" / "master.yaml").write_text(own)
    assert _configure(cluster, "master-1").returncode == 0
    etc = cluster["root"] / "etc" / "raftkube"
    assert (etc / "master.yaml").read_text() == own
    assert not (etc / "pki" / "master.yaml").exists()


def test_root_may_come_from_the_environment(cluster):
    env = {**os.environ, "RAFTKUBE_ROOT": str(cluster["root"])}
    result = _run("configure_node.sh", "--name", "master-2", "--nodes", str(cluster["nodes"]),
                  "--cluster-dir", str(cluster["cluster"]), env=env)
    # master-2 has no files in the cluster directory: refused, nothing written.
    assert result.returncode != 0
    assert "nodes/master-2 missing" in result.stderr
    assert not (cluster["root"] / "etc" / "raftkube").exists()

    (cluster["cluster"] / "nodes" / "master-2").mkdir()
    result = _run("configure_node.sh", "--name", "master-2", "--nodes", str(cluster["nodes"]),
                  "--cluster-dir", str(cluster["cluster"]), env=env)
    assert result.returncode == 0, result.stderr
    assert (cluster["root"] / "etc" / "raftkube" / "master.yaml").is_file()


@pytest.mark.parametrize(
    ("nodes_text", "message"),
    [
        ("master-1 master\n", "nodes:1: expected 'NAME ROLE ADDRESS'"),
        ("master-1 master 192.168.57.11\nw_1 worker 192.168.57.51\n",
         "nodes:2: node name 'w_1' is not a DNS label"),
        ("master-1 boss 192.168.57.11\n", "nodes:1: role 'boss' is not master or worker"),
        ("master-1 master 192.168.57.300\n", "nodes:1: address '192.168.57.300' is not"),
        ("master-1 master 192.168.57.11\nmaster-1 master 192.168.57.12\n",
         "nodes:2: node 'master-1' is listed twice"),
        ("master-1 master 192.168.57.11\nworker-1 worker 192.168.57.11\n",
         "nodes:2: address 192.168.57.11 is already used by master-1"),
        ("worker-1 worker 192.168.57.51\nmaster-1 worker 192.168.57.11\n",
         "lists no master"),
        ("master-2 master 192.168.57.12\n", "node 'master-1' is not listed"),
    ],
)
def test_bad_nodes_file_is_refused_with_the_line_and_nothing_is_written(
        cluster, nodes_text, message):
    cluster["nodes"].write_text(nodes_text)
    hosts_before = (cluster["root"] / "etc" / "hosts").read_text()
    result = _configure(cluster, "master-1")
    assert result.returncode != 0
    assert message in result.stderr
    assert (cluster["root"] / "etc" / "hosts").read_text() == hosts_before
    assert not (cluster["root"] / "etc" / "raftkube").exists()


def test_missing_ca_is_refused(cluster):
    (cluster["cluster"] / "ca.crt").unlink()
    result = _configure(cluster, "master-1")
    assert result.returncode != 0
    assert "ca.crt missing" in result.stderr
    assert not (cluster["root"] / "etc" / "raftkube").exists()


@pytest.mark.parametrize("role", ["master", "worker"])
def test_install_units_offline_installs_and_enables_the_unit(tmp_path, role):
    result = _run("install_units.sh", "--role", role, "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    unit = f"raftkube-{role}.service"
    installed = tmp_path / "etc" / "systemd" / "system" / unit
    assert installed.read_bytes() == (SYSTEMD / unit).read_bytes()
    link = tmp_path / "etc" / "systemd" / "system" / "multi-user.target.wants" / unit
    assert os.readlink(link) == f"/etc/systemd/system/{unit}"
    text = installed.read_text()
    assert (f"ExecStart=/opt/raftkube/venv/bin/raftkube {role} "
            f"--config /etc/raftkube/{role}.yaml") in text
    assert "Restart=on-failure" in text
    assert "WantedBy=multi-user.target" in text
    # Idempotent.
    again = _run("install_units.sh", "--role", role, "--root", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert installed.read_bytes() == (SYSTEMD / unit).read_bytes()


def test_install_units_refuses_an_unknown_role(tmp_path):
    result = _run("install_units.sh", "--role", "etcd", "--root", str(tmp_path))
    assert result.returncode != 0
    assert "--role must be master or worker, got 'etcd'" in result.stderr
    assert not (tmp_path / "etc").exists()


def test_install_raftkube_refuses_a_directory_without_the_wheel(tmp_path):
    (tmp_path / "wheels").mkdir()
    result = _run("install_raftkube.sh", "--wheels", str(tmp_path / "wheels"),
                  "--prefix", str(tmp_path / "opt"), "--bin-dir", "none")
    assert result.returncode != 0
    assert "no raftkube-*.whl in" in result.stderr
    assert not (tmp_path / "opt").exists()


@pytest.mark.slow
def test_wheels_install_offline_into_a_fresh_virtualenv(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(["bash", str(REPO / "scripts" / "build_wheels.sh"), "--out",
                            str(wheels), "--python", sys.executable],
                           capture_output=True, text=True, timeout=900, check=False)
    if built.returncode != 0 and "Could not find a version" in built.stderr:
        pytest.skip(f"no package index reachable to build dependency wheels: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    assert {"raftkube", "grpcio", "pysyncobj", "protobuf", "cryptography"} <= names

    prefix = tmp_path / "opt"
    bin_dir = tmp_path / "bin"
    # A clean environment: no pip configuration or index can be used.
    env = {"PATH": os.environ["PATH"], "PIP_CONFIG_FILE": os.devnull, "HOME": str(tmp_path)}
    result = _run("install_raftkube.sh", "--wheels", str(wheels), "--prefix", str(prefix),
                  "--bin-dir", str(bin_dir), "--python", "python3", env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    version = subprocess.run([str(bin_dir / "raftkube"), "version"], capture_output=True,
                             text=True, check=True)
    assert version.stdout.startswith("raftkube ")
    assert os.readlink(bin_dir / "raftkubectl") == str(prefix / "venv" / "bin" / "raftkubectl")
    # Again: the venv is reused and raftkube reinstalled from the wheel.
    again = _run("install_raftkube.sh", "--wheels", str(wheels), "--prefix", str(prefix),
                 "--bin-dir", str(bin_dir), "--python", "python3", env=env, timeout=600)
    assert again.returncode == 0, again.stderr
