"""Every raftkubectl verb against a real 3-master cluster (TLS, tokens, Raft)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from raftkube.api.v1 import apps_pb2, core_pb2, pod_pb2
from raftkube.cli import raftkubectl_main
from raftkube.client import Client, ClientOptions, NotFound
from raftkube.security.client_config import load_client_config, write_client_config
from raftkube.testing.master_cluster import REPO_ROOT, MasterCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with MasterCluster(3) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster):
    options = ClientOptions(linearizable_reads=True)
    with Client.from_config(cluster.layout.admin_config, options=options) as cl:
        yield cl


WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: {image}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-settings
data:
  url: http://db
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_apply_create_get(kubectl, tmp_path, client) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    write(manifests / "web.yaml", WEB.format(name="web", image="localhost/busybox:1"))
    code, out, _ = kubectl("apply", "-f", str(manifests))
    assert code == 0
    assert out.splitlines() == ["deployment.apps/web created", "configmap/web-settings created"]
    code, out, _ = kubectl("apply", "-f", str(manifests))
    assert out.splitlines() == ["deployment.apps/web unchanged",
                                "configmap/web-settings unchanged"]
    write(manifests / "web.yaml", WEB.format(name="web", image="localhost/busybox:2"))
    code, out, _ = kubectl("apply", "-f", str(manifests))
    assert out.splitlines()[0] == "deployment.apps/web configured"
    assert client.deployments.get("web").spec.template.spec.containers[0].image == \
        "localhost/busybox:2"

    code, out, err = kubectl("create", "-f", str(manifests / "web.yaml"))
    assert code == 1 and 'Error from server (AlreadyExists): deployments "web" already exists' \
        in err

    code, out, _ = kubectl("get", "deploy", "web")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    row = lines[1].split()
    assert row[:2] == ["web", "0/2"] and row[3] == "0"  # no node: nothing is ready
    code, out, _ = kubectl("get", "deployments", "-o", "wide")
    assert "localhost/busybox:2" in out and "app=web" in out
    code, out, _ = kubectl("get", "deploy/web", "cm/web-settings", "-o", "name")
    assert out.splitlines() == ["deployment.apps/web", "configmap/web-settings"]
    code, out, _ = kubectl("get", "deploy", "web", "-o", "yaml")
    assert yaml.safe_load(out)["spec"]["replicas"] == 2
    code, out, _ = kubectl("get", "cm", "-o", "json", "-l", "app!=none")
    data = json.loads(out)
    assert data["metadata"]["name"] == "web-settings" if "metadata" in data else \
        "web-settings" in [i["metadata"]["name"] for i in data["items"]]
    code, out, _ = kubectl("get", "cm", "-A", "--field-selector", "metadata.name=web-settings")
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert out.splitlines()[1].split()[:2] == ["default", "web-settings"]
    code, out, _ = kubectl("get", "deploy,cm")
    tables = out.split("\n\n")
    assert tables[0].splitlines()[0].split()[0:2] == ["NAME", "READY"]
    assert tables[1].splitlines()[0].split() == ["NAME", "DATA", "AGE"]
    code, out, err = kubectl("get", "pods", "-l", "app=nothing")
    assert code == 0 and out == "" and "No resources found in default namespace." in err
    code, _, err = kubectl("get", "deploy", "nope")
    assert code == 1 and 'Error from server (NotFound): deployments "nope" not found' in err
    code, _, err = kubectl("get", "frobs")
    assert code == 1 and 'error: the server doesn\'t have a resource type "frobs"' in err


def test_apply_reports_field_path_and_applies_nothing(kubectl, tmp_path, client) -> None:
    bad = write(tmp_path / "bad.yaml", WEB.format(name="broken", image='""'))
    code, out, err = kubectl("apply", "-f", str(bad))
    assert code == 1 and out == ""
    assert "spec.template.spec.containers[0].image" in err and err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(NotFound):
        client.configmaps.get("broken-settings")
    code, out, _ = kubectl("apply", "-f", str(tmp_path / "missing.yaml"))
    assert code == 1


def test_apply_from_stdin_and_dry_runs(kubectl, monkeypatch, client) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(WEB.format(name="piped", image="img:1")))
    code, out, _ = kubectl("apply", "-f", "-", "--dry-run=server")
    assert code == 0 and "deployment.apps/piped created (server dry run)" in out
    with pytest.raises(NotFound):
        client.deployments.get("piped")
    monkeypatch.setattr(sys, "stdin", io.StringIO(WEB.format(name="piped", image="img:1")))
    code, out, _ = kubectl("apply", "-f", "-")
    assert "deployment.apps/piped created" in out


def event_for(obj, reason: str, message: str, when: str) -> core_pb2.Event:
    ev = core_pb2.Event(api_version="v1", kind="Event", reason=reason, message=message,
                        type="Normal", last_timestamp=when, count=1)
    ev.metadata.name = f"{obj.metadata.name}.{reason.lower()}"
    ev.involved_object.kind = obj.kind
    ev.involved_object.name = obj.metadata.name
    ev.involved_object.namespace = obj.metadata.namespace
    ev.involved_object.uid = obj.metadata.uid
    ev.source.component = "scheduler"
    return ev


def pod(name: str, node: str = "", owner: str = "") -> pod_pb2.Pod:
    p = pod_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.labels["app"] = "cli"
    p.spec.containers.add(name="c", image="localhost/busybox:latest")
    if node:
        p.spec.node_name = node
    if owner:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=owner,
                                        uid="rs-uid", controller=True)
    return p


def test_describe_shows_object_and_its_events(kubectl, client) -> None:
    created = client.create(pod("described"))
    client.create(event_for(created, "Scheduled", "assigned to w1", "2026-01-01T00:00:00Z"))
    other = client.create(pod("other"))
    client.create(event_for(other, "Pulled", "not about the described pod",
                            "2026-01-01T00:00:01Z"))
    code, out, _ = kubectl("describe", "pod", "described")
    assert code == 0
    assert out.startswith("Name:")
    assert "Namespace:          default" in out or "default" in out.splitlines()[1]
    assert "Labels:" in out and "app=cli" in out
    assert "Events:" in out and "Scheduled" in out and "assigned to w1" in out
    assert "not about the described pod" not in out
    quiet = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    quiet.metadata.name = "quiet"
    client.create(quiet)
    code, out, _ = kubectl("describe", "cm", "quiet")
    assert "Events:  <none>" in out


def test_delete_verbs(kubectl, client, tmp_path) -> None:
    client.create(pod("doomed"))
    code, out, _ = kubectl("delete", "pod", "doomed")
    assert code == 0 and out.strip() == 'pod "doomed" deleted'
    with pytest.raises(NotFound):
        client.pods.get("doomed")
    code, _, err = kubectl("delete", "pod", "doomed")
    assert code == 1 and "NotFound" in err
    assert kubectl("delete", "pod", "doomed", "--ignore-not-found")[0] == 0

    manifest = write(tmp_path / "x.yaml", WEB.format(name="gone", image="img:1"))
    kubectl("apply", "-f", str(manifest))
    code, out, _ = kubectl("delete", "-f", str(manifest))
    assert out.splitlines() == ['deployment.apps "gone" deleted',
                                'configmap "gone-settings" deleted']

    kubectl("apply", "-f", str(write(tmp_path / "o.yaml", WEB.format(name="kept",
                                                                     image="img:1"))))
    code, out, _ = kubectl("delete", "deployment", "kept", "--cascade=orphan")
    assert code == 0 and "deleted" in out
    marked = client.deployments.get("kept")
    assert marked.metadata.deletion_timestamp and "orphan" in marked.metadata.finalizers

    for name in ("sel-a", "sel-b"):
        p = pod(name)
        p.metadata.labels["batch"] = "x"
        client.create(p)
    code, out, _ = kubectl("delete", "pods", "-l", "batch=x")
    assert sorted(out.splitlines()) == ['pod "sel-a" deleted', 'pod "sel-b" deleted']


def test_edit_updates_and_detects_conflicts(kubectl, client, cluster, tmp_path,
                                            monkeypatch) -> None:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = "editme"
    cm.data["color"] = "blue"
    client.create(cm)
    monkeypatch.setenv("EDITOR", "sed -i s/blue/green/")
    code, out, _ = kubectl("edit", "cm", "editme")
    assert code == 0 and out.strip() == "configmap/editme edited"
    assert client.configmaps.get("editme").data["color"] == "green"

    monkeypatch.setenv("EDITOR", "true")
    code, out, _ = kubectl("edit", "cm", "editme")
    assert code == 0 and "Edit cancelled, no changes made." in out

    # An editor that is slow: someone else changes the object meanwhile.
    script = write(tmp_path / "editor.py", textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from raftkube.client import Client
        with Client.from_config() as c:
            cm = c.configmaps.get("editme")
            cm.data["color"] = "red"
            c.update(cm)
        path = sys.argv[1]
        text = open(path).read().replace("green", "yellow")
        open(path, "w").write(text)
        """))
    monkeypatch.setenv("RAFTKUBECONFIG", str(cluster.layout.admin_config))
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    code, _, err = kubectl("edit", "cm", "editme")
    assert code == 1 and "has been modified" in err and "your edit is kept in" in err
    assert client.configmaps.get("editme").data["color"] == "red"
    kept = Path(re.search(r"your edit is kept in (\S+):", err).group(1))
    assert "color: yellow" in kept.read_text()
    kept.unlink()

    # An editor that gives up (vi's :cq) or is missing: nothing changed, nothing left.
    before = set(Path(tempfile.gettempdir()).glob("raftkubectl-edit-editme-*"))
    for editor, message in (("false", "the editor exited with status 1"),
                            ("/nonexistent/editor", "cannot run the editor")):
        monkeypatch.setenv("EDITOR", editor)
        code, _, err = kubectl("edit", "cm", "editme")
        assert code == 1 and message in err
    assert set(Path(tempfile.gettempdir()).glob("raftkubectl-edit-editme-*")) == before
    assert client.configmaps.get("editme").data["color"] == "red"


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def make_deployment(client: Client, name: str) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.spec.replicas = 2
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="web", image="localhost/busybox:2")
    return client.create(d)


def test_scale(kubectl, client) -> None:
    make_deployment(client, "scaled")
    code, out, _ = kubectl("scale", "deployment", "scaled", "--replicas=5")
    assert code == 0 and out.strip() == "deployment.apps/scaled scaled"
    assert client.deployments.get("scaled").spec.replicas == 5
    code, _, err = kubectl("scale", "deploy/scaled", "--replicas=1", "--current-replicas=3")
    assert code == 1 and "expected 3 replicas, found 5" in err
    code, _, err = kubectl("scale", "configmap", "kube-root", "--replicas=1")
    assert code == 1 and "cannot be scaled" in err


def test_rollout_status_waits_for_the_rollout(kubectl, client, cluster) -> None:
    """Against the real controllers: with no node nothing becomes available (timeout);
    once hollow nodes run the pods, the rollout completes and the command says so."""
    from raftkube.testing.hollow_nodes import HollowNodeConfig, HollowNodes

    make_deployment(client, "rolling")
    code, out, err = kubectl("rollout", "status", "deployment/rolling", "--timeout", "2s")
    assert code == 1
    assert "Waiting for deployment \"rolling\" rollout to finish" in out and "timed out" in err
    config = HollowNodeConfig(count=2, prefix="roll", images=("localhost/busybox:2",))
    with HollowNodes(lambda: cluster.resources(0), config):
        code, out, _ = kubectl("rollout", "status", "deploy/rolling", "--timeout", "120s")
    assert code == 0
    assert out.splitlines()[-1] == 'deployment "rolling" successfully rolled out'


def replica_set_for(d: apps_pb2.Deployment, revision: int, image: str) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = f"{d.metadata.name}-rev{revision}"
    rs.metadata.annotations["deployment.kubernetes.io/revision"] = str(revision)
    rs.metadata.annotations["kubernetes.io/change-cause"] = f"image {image}"
    rs.metadata.owner_references.add(api_version="apps/v1", kind="Deployment",
                                     name=d.metadata.name, uid=d.metadata.uid, controller=True)
    rs.spec.replicas = 0
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels["pod-template-hash"] = f"h{revision}"
    rs.spec.template.spec.containers[0].image = image
    return rs


def test_rollout_history_and_undo(kubectl, client) -> None:
    """Against the real deployment controller: two templates make two revisions; undo goes
    back to the first template (whose ReplicaSet becomes the newest revision)."""
    make_deployment(client, "history")

    def revisions() -> list[str]:
        sets = client.replicasets.list(label_selector="app=history")
        return sorted(r.metadata.annotations.get("deployment.kubernetes.io/revision", "")
                      for r in sets)

    assert wait_for(lambda: revisions() == ["1"])
    client.deployments.patch("history", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "localhost/busybox:3"}]}}}})
    assert wait_for(lambda: revisions() == ["1", "2"])
    code, out, _ = kubectl("rollout", "history", "deployment/history")
    assert code == 0
    assert [line.split()[:1] for line in out.splitlines()[2:]] == [["1"], ["2"]]
    code, out, _ = kubectl("rollout", "undo", "deployment/history")
    assert code == 0 and "rolled back (to revision 1)" in out
    restored = client.deployments.get("history").spec.template
    assert restored.spec.containers[0].image == "localhost/busybox:2"
    assert "pod-template-hash" not in restored.metadata.labels
    assert wait_for(lambda: revisions() == ["2", "3"])
    code, _, err = kubectl("rollout", "undo", "deployment/history", "--to-revision=9")
    assert code == 1 and "revision 9" in err


def test_cordon_uncordon_drain(kubectl, client) -> None:
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = "w-cli"
    client.create(node)
    assert kubectl("cordon", "w-cli")[1].strip() == "node/w-cli cordoned"
    assert client.nodes.get("w-cli").spec.unschedulable
    assert kubectl("cordon", "w-cli")[1].strip() == "node/w-cli already cordoned"
    assert kubectl("uncordon", "w-cli")[1].strip() == "node/w-cli uncordoned"
    assert not client.nodes.get("w-cli").spec.unschedulable

    client.create(pod("managed", node="w-cli", owner="rs1"))
    client.create(pod("loner", node="w-cli"))
    code, _, err = kubectl("drain", "w-cli")
    assert code == 1 and "default/loner" in err and "--force" in err
    assert client.nodes.get("w-cli").spec.unschedulable  # cordoned before refusing
    assert client.pods.get("loner")
    code, out, _ = kubectl("drain", "w-cli", "--force", "--grace-period=0", "--timeout=60s")
    assert code == 0, out
    assert "evicting pod default/managed" in out and "pod/loner evicted" in out
    assert out.splitlines()[-1] == "node/w-cli drained"
    assert client.pods.list(field_selector="spec.nodeName=w-cli") == []


def test_cluster_status_snapshot_token_version(kubectl, cluster, tmp_path) -> None:
    code, out, _ = kubectl("cluster", "status", "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert sorted(m["id"] for m in data["masters"]) == ["m1", "m2", "m3"]
    leader = [m for m in data["masters"] if m["role"] == "leader"]
    assert len(leader) == 1
    for m in data["masters"]:
        assert set(m) >= {"id", "apiAddress", "raftAddress", "role", "term", "commitIndex",
                          "appliedIndex", "pid", "health", "lag"}
        assert m["health"] == "ok" and m["pid"] == cluster.members[int(m["id"][1:]) - 1].pid
    code, out, _ = kubectl("cluster", "status")
    header = out.splitlines()[0].split()
    assert header == ["NAME", "API", "RAFT", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "PID",
                      "HEALTH"]
    assert len(out.splitlines()) == 4

    target = tmp_path / "backup" / "snap.db"
    code, out, _ = kubectl("snapshot", "save", str(target))
    assert code == 0 and target.stat().st_size > 0 and "sha256" in out
    import hashlib

    assert hashlib.sha256(target.read_bytes()).hexdigest() in out

    code, out, err = kubectl("token", "create", "--ttl", "30m")
    assert code == 0 and len(out.strip()) > 20 and "expires" in err
    code, out, _ = kubectl("version")
    assert code == 0 and out.startswith("Client Version: raftkube ")
    assert "Server Version: raftkube" in out


def test_cluster_add_master_follows_leader_hint(kubectl, cluster, tmp_path,
                                                capsys) -> None:
    leader = cluster.leader_index()
    follower = next(i for i in range(3) if i != leader)
    member = cluster.members[follower]
    # A config that lists only a follower: the leader is learnt from its hint.
    config = load_client_config(cluster.layout.admin_config)
    follower_first = tmp_path / "follower.yaml"
    write_client_config(follower_first, dataclasses.replace(
        config, masters=(member.api_address,)))
    # Re-adding an existing member is a no-op membership change that still has to run on
    # the leader: the follower answers Unavailable with the leader hint, the SDK follows it.
    capsys.readouterr()
    code = raftkubectl_main.main(["cluster", "add-master", member.name, "--api",
                                  member.api_address, "--raft", member.raft_address,
                                  "--config", str(follower_first)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert member.raft_address in out
    code, _, err = kubectl("cluster", "remove-master", "nobody")
    assert code == 1 and "NotFound" in err


def test_get_watch_prints_changes(kubectl, client) -> None:
    results: dict = {}

    def run() -> None:
        results["r"] = kubectl("get", "cm", "-w", "-l", "watch=me", "--request-timeout", "6")

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(2.0)
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = "watched"
    cm.metadata.labels["watch"] = "me"
    client.create(cm)
    cm.data["k"] = "v"
    client.update(cm)
    worker.join(30)
    code, out, _ = results["r"]
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert [line.split()[:2] for line in lines[1:]] == [["watched", "0"], ["watched", "1"]]


def test_runs_as_a_program_with_a_leading_config_flag(cluster, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("RAFTKUBECONFIG", None)
    program = [sys.executable, "-m", "raftkube.cli.raftkubectl_main"]
    done = subprocess.run([*program, "--config", str(cluster.layout.admin_config), "get",
                           "namespaces", "-o", "name"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    # Unreachable masters: a readable error and a failing exit code.
    config = load_client_config(cluster.layout.admin_config)
    dead = tmp_path / "dead.yaml"
    write_client_config(dead, dataclasses.replace(config, masters=("127.0.0.1:1",)))
    done = subprocess.run([*program, "get", "pods", "--config", str(dead)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: Unavailable: list pods: no master answered")
    assert len(done.stderr.strip().splitlines()) == 1
