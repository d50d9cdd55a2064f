"""The provisioning scripts of deploy/provision/ in their local mode (a root directory
instead of /): what the Vagrant VMs and the local multi-host bring-up both run.

Real scripts, real files; installing raftkube uses real wheels built by
scripts/build_wheels.sh into a real virtualenv."""

from __future__ import annotations

import os
import shutil
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


def _write_cluster_dir(directory: Path) -> None:
    """The layout `raftkube init --dir DIR --master master-1=... --master master-2=...
    --master master-3=... --worker worker-1` writes (raftkube/security/cluster_init.py,
    ClusterLayout), with short file contents; cluster.yaml refers to files by absolute
    path, as init writes it."""
    files = {
        "ca/ca.crt": "CA CERT\n", "ca/ca.key": "CA KEY\n",
        "node-serving-ca/ca.crt": "NODE SERVING CA CERT\n",
        "node-serving-ca/ca.key": "NODE SERVING CA KEY\n",
        "raft-secret": "RAFT SECRET\n", "encryption-keys.yaml": "keys: []\n",
        "tokens.json": "{}\n", "join-token": "abcdef.0123456789abcdef\n",
        "config.yaml": "kind: ClientConfig\n",
        "admin/client.crt": "ADMIN CERT\n", "admin/client.key": "ADMIN KEY\n",
        "admin/token": "ADMIN TOKEN\n",
        "workers/worker-1/client.crt": "W1 CERT\n", "workers/worker-1/client.key": "W1 KEY\n",
        "workers/worker-1/token": "W1 TOKEN\n",
        "workers/worker-1/config.yaml": (
            "apiVersion: raftkube/v1\nkind: ClientConfig\nuser: system:node:worker-1\n"
            "masters:\n- 192.168.57.11:6445\n"
            f"caFile: {directory}/ca/ca.crt\n"
            f"tokenFile: {directory}/workers/worker-1/token\n"
            f"clientCertFile: {directory}/workers/worker-1/client.crt\n"
            f"clientKeyFile: {directory}/workers/worker-1/client.key\n"),
    }
    masters = []
    for i in (1, 2, 3):
        files[f"masters/master-{i}/server.crt"] = f"M{i} CERT\n"
        files[f"masters/master-{i}/server.key"] = f"M{i} KEY\n"
        masters.append({"name": f"master-{i}", "ip": f"192.168.57.1{i}", "apiPort": 6443,
                        "raftPort": 6444, "nodePort": 6445,
                        "certFile": f"{directory}/masters/master-{i}/server.crt",
                        "keyFile": f"{directory}/masters/master-{i}/server.key"})
    files["cluster.yaml"] = yaml.safe_dump({
        "apiVersion": "raftkube/v1", "kind": "Cluster", "caFile": f"{directory}/ca/ca.crt",
        "caFingerprint": "sha256:00", "raftSecretFile": f"{directory}/raft-secret",
        "encryptionKeyFile": f"{directory}/encryption-keys.yaml",
        "tokenTableFile": f"{directory}/tokens.json",
        "nodeServingCA": {"certFile": f"{directory}/node-serving-ca/ca.crt",
                          "keyFile": f"{directory}/node-serving-ca/ca.key"},
        "masters": masters,
        "workers": [{"name": "worker-1",
                     "configFile": f"{directory}/workers/worker-1/config.yaml"}],
    }, sort_keys=False)
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def cluster(tmp_path: Path) -> dict[str, Path]:
    """A nodes file, a cluster directory shaped like `raftkube init`'s, and a root holding
    the /etc/hosts that Vagrant's hostname step leaves behind."""
    nodes = tmp_path / "nodes"
    nodes.write_text(NODES)
    cluster_dir = tmp_path / "cluster"
    _write_cluster_dir(cluster_dir)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
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


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_configure_master_writes_hosts_its_credentials_and_config(cluster):
    result = _configure(cluster, "master-1")
    assert result.returncode == 0, result.stderr
    root = cluster["root"]

    hosts = (root / "etc" / "hosts").read_text().splitlines()
    assert "127.0.1.1 master-1 master-1" not in hosts
    assert "127.0.0.1 localhost" in hosts
    for line in ("192.168.57.11 master-1", "192.168.57.12 master-2",
                 "192.168.57.13 master-3", "192.168.57.51 worker-1"):
        assert line in hosts

    copy = root / "etc" / "raftkube" / "cluster"
    # Its own key, the cluster secrets; never the CA key, the admin's or other masters' keys.
    assert _files(copy) == [
        "ca/ca.crt", "cluster.yaml", "encryption-keys.yaml", "masters/master-1/server.crt",
        "masters/master-1/server.key", "node-serving-ca/ca.crt", "node-serving-ca/ca.key",
        "raft-secret", "tokens.json",
    ]
    assert _mode(copy) == 0o700
    assert _mode(copy / "masters" / "master-1") == 0o700
    assert _mode(copy / "masters" / "master-1" / "server.key") == 0o600
    assert _mode(copy / "raft-secret") == 0o600
    assert _mode(copy / "node-serving-ca" / "ca.key") == 0o600
    assert _mode(copy / "ca" / "ca.crt") == 0o644
    assert (copy / "masters" / "master-1" / "server.key").read_text() == "M1 KEY\n"

    # Paths in the cluster file now point into the node's copy.
    doc = yaml.safe_load((copy / "cluster.yaml").read_text())
    assert doc["caFile"] == "/etc/raftkube/cluster/ca/ca.crt"
    assert doc["raftSecretFile"] == "/etc/raftkube/cluster/raft-secret"
    assert doc["masters"][0]["keyFile"] == "/etc/raftkube/cluster/masters/master-1/server.key"
    assert doc["nodeServingCA"]["keyFile"] == "/etc/raftkube/cluster/node-serving-ca/ca.key"
    assert str(cluster["cluster"]) not in (copy / "cluster.yaml").read_text()

    config_path = root / "etc" / "raftkube" / "master.yaml"
    config = yaml.safe_load(config_path.read_text())
    assert config["name"] == "master-1"
    assert config["clusterFile"] == "/etc/raftkube/cluster/cluster.yaml"
    assert config["dataDir"] == "/var/lib/raftkube/master"
    assert config["join"] is False
    assert _mode(config_path) == 0o600
    assert (root / "var" / "lib" / "raftkube" / "master").is_dir()
    assert (root / "etc" / "raftkube" / "nodes").read_text() == NODES
    assert not (root / "etc" / "raftkube" / "worker.yaml").exists()


def test_rendered_master_config_is_what_raftkube_master_reads(cluster):
    from raftkube.masters.config import load_master_config

    assert _configure(cluster, "master-2").returncode == 0
    config = load_master_config(cluster["root"] / "etc" / "raftkube" / "master.yaml")
    assert config.name == "master-2"
    assert str(config.cluster_file) == "/etc/raftkube/cluster/cluster.yaml"
    assert str(config.data_dir) == "/var/lib/raftkube/master"
    assert config.bind_ip == ""
    assert config.metrics_address == "192.168.57.12:9101"
    assert config.join is False


def test_configure_worker_gets_only_its_own_credentials(cluster):
    result = _configure(cluster, "worker-1")
    assert result.returncode == 0, result.stderr
    etc = cluster["root"] / "etc" / "raftkube"
    assert _files(etc / "cluster") == [
        "ca/ca.crt", "cluster.yaml", "workers/worker-1/client.crt",
        "workers/worker-1/client.key", "workers/worker-1/config.yaml",
        "workers/worker-1/token",
    ]
    client = yaml.safe_load((etc / "cluster" / "workers" / "worker-1" / "config.yaml")
                           .read_text())
    assert client["tokenFile"] == "/etc/raftkube/cluster/workers/worker-1/token"
    assert client["caFile"] == "/etc/raftkube/cluster/ca/ca.crt"
    from raftkube.workers.agent.config import parse_worker_config

    text = (etc / "worker.yaml").read_text()
    config = parse_worker_config(yaml.safe_load(text), "worker.yaml", etc)
    assert config.node_name == "worker-1"
    assert config.node_ip == "192.168.57.51"
    assert config.pod_cidr == "10.244.1.0/24"
    assert str(config.client_config) == "/etc/raftkube/cluster/workers/worker-1/config.yaml"
    assert config.network is not None and config.runtime.kind == "podman"
    assert config.node_agent.listen == "192.168.57.51:10250"
    assert config.node_agent.cert_file == Path(
        "/etc/raftkube/cluster/workers/worker-1/client.crt")
    assert config.node_agent.ca_file == Path("/etc/raftkube/cluster/ca/ca.crt")
    assert config.metrics_address == "192.168.57.51:9102"


def test_configure_is_idempotent_and_drops_what_a_previous_run_left(cluster):
    assert _configure(cluster, "master-1").returncode == 0
    first = _snapshot(cluster["root"])
    stale = cluster["root"] / "etc" / "raftkube" / "cluster" / "masters" / "master-9"
    stale.mkdir()
    (stale / "server.key").write_text("old\n")
    assert _configure(cluster, "master-1").returncode == 0
    assert _snapshot(cluster["root"]) == first
    hosts = (cluster["root"] / "etc" / "hosts").read_text()
    assert hosts.count("# BEGIN raftkube nodes") == 1


def test_root_may_come_from_the_environment(cluster):
    env = {**os.environ, "RAFTKUBE_ROOT": str(cluster["root"])}
    result = _run("configure_node.sh", "--name", "master-2", "--nodes", str(cluster["nodes"]),
                  "--cluster-dir", str(cluster["cluster"]), env=env)
    assert result.returncode == 0, result.stderr
    assert (cluster["root"] / "etc" / "raftkube" / "master.yaml").is_file()


def test_a_master_missing_from_the_cluster_file_is_refused(cluster):
    cluster["nodes"].write_text(NODES + "master-4 master 192.168.57.14\n")
    result = _configure(cluster, "master-4")
    assert result.returncode != 0
    assert "no master named 'master-4'" in result.stderr
    assert not (cluster["root"] / "etc" / "raftkube").exists()


def test_missing_credentials_are_refused_naming_the_file(cluster):
    (cluster["cluster"] / "workers" / "worker-1" / "token").unlink()
    result = _configure(cluster, "worker-1")
    assert result.returncode != 0
    assert "workers/worker-1/token missing" in result.stderr
    assert not (cluster["root"] / "etc" / "raftkube").exists()


def test_a_master_of_a_directory_made_before_the_node_serving_ca_is_configured(cluster):
    cluster_file = cluster["cluster"] / "cluster.yaml"
    doc = yaml.safe_load(cluster_file.read_text())
    del doc["nodeServingCA"]
    cluster_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.rmtree(cluster["cluster"] / "node-serving-ca")
    result = _configure(cluster, "master-1")
    assert result.returncode == 0, result.stderr
    copy = cluster["root"] / "etc" / "raftkube" / "cluster"
    assert not (copy / "node-serving-ca").exists() and (copy / "raft-secret").exists()


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


def test_a_directory_that_is_not_a_cluster_is_refused(cluster):
    (cluster["cluster"] / "cluster.yaml").write_text("kind: Something\n")
    result = _configure(cluster, "master-1")
    assert result.returncode != 0
    assert "not a raftkube cluster file (kind: Cluster)" in result.stderr
    assert not (cluster["root"] / "etc" / "raftkube").exists()


def test_configure_from_a_real_raftkube_init(tmp_path):
    init = subprocess.run([sys.executable, "-m", "raftkube.cli.raftkube_main", "init", "--help"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    if init.returncode != 0:
        pytest.skip("`raftkube init` is not in this checkout yet")
    cluster_dir = tmp_path / "cluster"
    made = subprocess.run([sys.executable, "-m", "raftkube.cli.raftkube_main", "init",
                           "--dir", str(cluster_dir), "--master", "master-1=192.168.57.11",
                           "--worker", "worker-1"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    nodes = tmp_path / "nodes"
    nodes.write_text("master-1 master 192.168.57.11\nworker-1 worker 192.168.57.51\n")
    for name in ("master-1", "worker-1"):
        root = tmp_path / name
        root.mkdir()
        result = _run("configure_node.sh", "--name", name, "--nodes", str(nodes),
                      "--cluster-dir", str(cluster_dir), "--root", str(root))
        assert result.returncode == 0, result.stderr
        text = (root / "etc" / "raftkube" / "cluster" / "cluster.yaml").read_text()
        assert str(cluster_dir) not in text
        assert not (root / "etc" / "raftkube" / "cluster" / "ca" / "ca.key").exists()


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
    # dependencies.txt: exactly the dependency wheels pip resolves, each present in DIR.
    listed = (wheels / "dependencies.txt").read_text().split()
    assert listed == sorted(listed)
    assert all((wheels / name).is_file() for name in listed)
    assert {n.split("-")[0].lower() for n in listed} == names - {"raftkube"}

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
    assert "dependencies already in" not in again.stdout

    # A venv baked from the same dependencies.txt (what build_box.sh --wheels leaves in the
    # box): only raftkube's wheel is installed.
    baked = prefix / "venv" / "raftkube-dependencies.txt"
    shutil.copy(wheels / "dependencies.txt", baked)
    fast = _run("install_raftkube.sh", "--wheels", str(wheels), "--prefix", str(prefix),
                "--bin-dir", str(bin_dir), "--python", "python3", env=env, timeout=600)
    assert fast.returncode == 0, fast.stderr
    assert "dependencies already in" in fast.stdout
    assert subprocess.run([str(bin_dir / "raftkube"), "version"], check=False).returncode == 0

    # Baked from another dependency set: the dependencies come from the wheel directory.
    baked.write_text("grpcio-0.0.1-py3-none-any.whl\n")
    stale = _run("install_raftkube.sh", "--wheels", str(wheels), "--prefix", str(prefix),
                 "--bin-dir", str(bin_dir), "--python", "python3", env=env, timeout=600)
    assert stale.returncode == 0, stale.stderr
    assert "differs from" in stale.stdout
