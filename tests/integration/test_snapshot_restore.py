"""Disaster-recovery drill with real master processes: `raftkubectl snapshot save`, lose
every master's store, `raftkubectl snapshot restore` on each master, start them again."""

from __future__ import annotations

import re
import shutil
import time

import pytest
from google.protobuf.message import Message

from raftkube.api.v1 import core_pb2
from raftkube.cli import raftkubectl_main
from raftkube.client import Client, ClientOptions, NotFound
from raftkube.masters.config import load_master_config
from raftkube.testing.master_cluster import MasterCluster

pytestmark = pytest.mark.slow

BEFORE = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {url: "http://db", mode: before}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
stringData: {password: hunter2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: localhost/busybox:1}
"""

AFTER = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: after-snapshot, namespace: shop}
data: {lost: "yes"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {url: "http://db", mode: after}
"""


@pytest.fixture
def cluster():
    with MasterCluster(3) as c:
        yield c


def admin_client(cluster: MasterCluster) -> Client:
    return Client.from_config(cluster.layout.admin_config,
                              options=ClientOptions(linearizable_reads=True))


def wait_all_healthy(kubectl, timeout: float = 60.0) -> str:
    """`cluster status` output once it exits 0 (every master healthy)."""
    deadline = time.monotonic() + timeout
    while True:
        code, out, err = kubectl("cluster", "status")
        if code == 0 or time.monotonic() > deadline:
            assert code == 0, out + err
            return out
        time.sleep(0.5)


def restore_every_master(cluster: MasterCluster, snapshot: str, capsys) -> list[int]:
    """Empty each master's store dir and run `snapshot restore` on it (in-process, as an
    operator would on each machine); the revisions it reports."""
    revisions = []
    for member in cluster.members:
        store = load_master_config(member.config_path).store_dir
        shutil.rmtree(store)
        store.mkdir(mode=0o700)
        capsys.readouterr()
        code = raftkubectl_main.main(["snapshot", "restore", snapshot,
                                      "--master-config", str(member.config_path)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"into {store}" in out
        assert "Raft members of the new cluster: " + ", ".join(
            sorted(m.raft_address for m in cluster.members)) in out
        revisions.append(int(re.search(r"\(revision (\d+),", out).group(1)))
    return revisions


def test_disaster_recovery_drill(cluster: MasterCluster, kubectl, capsys) -> None:
    (cluster.root / "before.yaml").write_text(BEFORE)
    (cluster.root / "after.yaml").write_text(AFTER)
    backup = str(cluster.root / "backup.snap")

    assert kubectl("apply", "-f", str(cluster.root / "before.yaml"))[0] == 0
    with admin_client(cluster) as client:
        saved: dict[str, Message] = {
            "namespace": client.namespaces.get("shop"),
            "configmap": client.configmaps.get("settings", "shop"),
            "secret": client.secrets.get("db", "shop"),
            "deployment": client.deployments.get("web", "shop")}
    code, out, err = kubectl("snapshot", "save", backup)
    assert code == 0, err
    saved_revision = int(re.search(r"revision (\d+)", out).group(1))
    assert kubectl("apply", "-f", str(cluster.root / "after.yaml"))[0] == 0

    for index in range(cluster.size):  # the disaster: every master and its store lost
        cluster.kill(index)
    assert restore_every_master(cluster, backup, capsys) == [saved_revision] * cluster.size
    cluster.start()

    cluster.leader_index()
    with admin_client(cluster) as client:
        assert client.namespaces.get("shop").metadata.uid == saved["namespace"].metadata.uid
        assert client.configmaps.get("settings", "shop") == saved["configmap"]
        secret = client.secrets.get("db", "shop")
        assert secret == saved["secret"]
        assert secret.data["password"] == b"hunter2"
        deployment = client.deployments.get("web", "shop")
        assert deployment.metadata.uid == saved["deployment"].metadata.uid
        assert deployment.spec == saved["deployment"].spec
        with pytest.raises(NotFound):
            client.configmaps.get("after-snapshot", "shop")
        fresh = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        fresh.metadata.name = "after-restore"
        fresh.metadata.namespace = "shop"
        client.create(fresh)
        assert client.configmaps.get("after-restore", "shop").metadata.uid
    status = wait_all_healthy(kubectl)
    rows = status.splitlines()[1:]
    assert len(rows) == 3 and all(row.split()[-1] == "ok" for row in rows), status
