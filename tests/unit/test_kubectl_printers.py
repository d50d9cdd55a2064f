"""Golden outputs of raftkubectl's pure parts: tables, describe, rollout decisions,
cluster status, error lines."""

from __future__ import annotations

import pytest

from raftkube import apierrors
from raftkube.api.v1 import admin_pb2, apps_pb2, core_pb2, pod_pb2
from raftkube.cli.kubectl import rollout_state as rollout
from raftkube.cli.kubectl.cmd_cluster import status_data, status_table
from raftkube.cli.kubectl.common import CommandError, error_lines, parse_duration
from raftkube.cli.kubectl.printers import describe, human_age, related_events, table
from raftkube.cli.kubectl.targets import parse_targets
from raftkube.client.reconcile import parse_timestamp
from raftkube.objects import registry
from raftkube.objects.errors import FieldError

NOW = parse_timestamp("2026-01-01T01:00:00Z")


def meta(obj, name: str, created: str = "2026-01-01T00:00:00Z", namespace: str = "default"):
    obj.metadata.name = name
    obj.metadata.namespace = namespace
    obj.metadata.creation_timestamp = created
    return obj


def web_pod() -> pod_pb2.Pod:
    p = meta(pod_pb2.Pod(api_version="v1", kind="Pod"), "web-0")
    p.metadata.uid = "pod-uid"
    p.metadata.labels["app"] = "web"
    p.spec.containers.add(name="a", image="img")
    p.spec.containers.add(name="b", image="img")
    p.spec.node_name = "w1"
    p.status.phase = "Running"
    p.status.pod_ip = "10.0.0.5"
    p.status.container_statuses.add(name="a", ready=True, restart_count=2)
    crash = p.status.container_statuses.add(name="b", restart_count=5)
    crash.state.waiting.reason = "CrashLoopBackOff"
    return p


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (59, "59s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
    (9 * 3600, "9h"), (50 * 3600, "2d2h"), (10 * 86400, "10d"), (800 * 86400, "2y"), (-5, "0s"),
])
def test_human_age(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


def test_pod_table_golden() -> None:
    pending = meta(pod_pb2.Pod(api_version="v1", kind="Pod"), "web-1", "2026-01-01T00:59:30Z")
    pending.spec.containers.add(name="a", image="img")
    assert table(registry.by_kind("Pod"), [web_pod(), pending], NOW) == (
        "NAME    READY   STATUS             RESTARTS   AGE\n"
        "web-0   1/2     CrashLoopBackOff   7          60m\n"
        "web-1   0/1     Pending            0          30s\n")
    assert table(registry.by_kind("Pod"), [web_pod()], NOW, wide=True,
                 with_namespace=True) == (
        "NAMESPACE   NAME    READY   STATUS             RESTARTS   AGE   IP         NODE\n"
        "default     web-0   1/2     CrashLoopBackOff   7          60m   10.0.0.5   w1\n")


def test_deployment_node_service_tables_golden() -> None:
    d = meta(apps_pb2.Deployment(api_version="apps/v1", kind="Deployment"), "web",
             "2025-12-31T00:00:00Z")
    d.spec.replicas = 3
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.spec.containers.add(name="web", image="busybox")
    d.status.ready_replicas, d.status.updated_replicas, d.status.available_replicas = 2, 3, 2
    assert table(registry.by_kind("Deployment"), [d], NOW, wide=True) == (
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES    SELECTOR\n"
        "web    2/3     3            2           25h   web          busybox   app=web\n")
    n = meta(core_pb2.Node(api_version="v1", kind="Node"), "w1", namespace="")
    n.spec.unschedulable = True
    n.status.conditions.add(type="Ready", status="True")
    n.status.node_info.kubelet_version = "raftkube-0.1.0"
    n.metadata.labels["node-role.kubernetes.io/worker"] = ""
    assert table(registry.by_kind("Node"), [n], NOW) == (
        "NAME   STATUS                     ROLES    AGE   VERSION\n"
        "w1     Ready,SchedulingDisabled   worker   60m   raftkube-0.1.0\n")
    s = meta(core_pb2.Service(api_version="v1", kind="Service"), "web")
    s.spec.type = "NodePort"
    s.spec.cluster_ip = "10.96.0.10"
    s.spec.ports.add(port=80, node_port=30080, protocol="TCP")
    assert table(registry.by_kind("Service"), [s], NOW) == (
        "NAME   TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE\n"
        "web    NodePort   10.96.0.10   <none>        80:30080/TCP   60m\n")
    assert table(registry.by_kind("Service"), [], NOW) == ""


def event(reason: str, when: str, kind: str = "Pod", name: str = "web-0",
          uid: str = "pod-uid") -> core_pb2.Event:
    ev = meta(core_pb2.Event(api_version="v1", kind="Event"), f"{name}.{reason}")
    ev.reason, ev.message, ev.type, ev.last_timestamp = reason, f"{reason} happened", \
        "Normal", when
    ev.involved_object.kind, ev.involved_object.name = kind, name
    ev.involved_object.namespace, ev.involved_object.uid = "default", uid
    ev.source.component = "agent"
    return ev


def test_describe_golden() -> None:
    p = web_pod()
    events = related_events(p, [
        event("Started", "2026-01-01T00:58:00Z"), event("Scheduled", "2026-01-01T00:50:00Z"),
        event("Other", "2026-01-01T00:50:00Z", name="web-1"),
        event("OldIncarnation", "2026-01-01T00:50:00Z", uid="older-uid"),
        event("NotAPod", "2026-01-01T00:50:00Z", kind="Deployment")])
    assert [e.reason for e in events] == ["Scheduled", "Started"]
    text = describe(p, events, NOW)
    assert text.startswith(
        "Name:               web-0\n"
        "Namespace:          default\n"
        "Labels:             app=web\n"
        "Annotations:        <none>\n"
        "CreationTimestamp:  2026-01-01T00:00:00Z\n"
        "Node:               w1\n"
        "Status:             CrashLoopBackOff\n"
        "IP:                 10.0.0.5\n"
        "Spec:\n")
    assert text.endswith(
        "Events:\n"
        "  Type     Reason      Age    From    Message\n"
        "  ----     ------      ----   ----    -------\n"
        "  Normal   Scheduled   10m    agent   Scheduled happened\n"
        "  Normal   Started     2m     agent   Started happened\n")
    assert "restartCount:" in text and "CrashLoopBackOff" in text


def deployment(generation: int = 2, observed: int = 2, replicas: int = 3,
               updated: int = 3, total: int = 3, available: int = 3) -> apps_pb2.Deployment:
    d = meta(apps_pb2.Deployment(api_version="apps/v1", kind="Deployment"), "web")
    d.metadata.uid = "dep-uid"
    d.metadata.generation = generation
    d.spec.replicas = replicas
    s = d.status
    s.observed_generation, s.updated_replicas, s.replicas = observed, updated, total
    s.available_replicas = available
    return d


def test_rollout_state_decisions() -> None:
    assert rollout.rollout_state(deployment(observed=1)).message == \
        "Waiting for deployment spec update to be observed..."
    assert "1 out of 3 new replicas have been updated" in \
        rollout.rollout_state(deployment(updated=1)).message
    assert "2 old replicas are pending termination" in \
        rollout.rollout_state(deployment(total=5)).message
    assert "1 of 3 updated replicas are available" in \
        rollout.rollout_state(deployment(available=1)).message
    done = rollout.rollout_state(deployment())
    assert done.done and done.message == 'deployment "web" successfully rolled out'
    stuck = deployment(updated=1)
    stuck.status.conditions.add(type="Progressing", status="False",
                                reason="ProgressDeadlineExceeded")
    assert rollout.rollout_state(stuck).failed


def owned_rs(d: apps_pb2.Deployment, revision: str, image: str, owner_uid: str = "dep-uid"):
    rs = meta(apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet"), f"web-{revision}")
    rs.metadata.annotations[rollout.REVISION] = revision
    rs.metadata.owner_references.add(kind="Deployment", name="web", uid=owner_uid,
                                     controller=True)
    rs.spec.template.metadata.labels["pod-template-hash"] = "abc"
    rs.spec.template.spec.containers.add(name="web", image=image)
    return rs


def test_rollout_history_and_undo_decisions() -> None:
    d = deployment()
    sets = [owned_rs(d, "3", "v3"), owned_rs(d, "1", "v1"), owned_rs(d, "2", "v2"),
            owned_rs(d, "9", "foreign", owner_uid="someone-else")]
    assert [n for n, _ in rollout.revisions(d, sets)] == [1, 2, 3]
    number, rs = rollout.undo_target(d, sets)
    assert number == 2
    back = rollout.rolled_back(d, rs)
    assert back.spec.template.spec.containers[0].image == "v2"
    assert "pod-template-hash" not in back.spec.template.metadata.labels
    assert rollout.undo_target(d, sets, 1)[0] == 1
    with pytest.raises(ValueError, match="revision 7"):
        rollout.undo_target(d, sets, 7)
    with pytest.raises(ValueError, match="no rollout history"):
        rollout.undo_target(d, [])


def test_cluster_status_table_and_json() -> None:
    response = admin_pb2.ClusterStatusResponse(leader="127.0.0.1:2", term=4, members=["a"])
    response.masters.add(name="m1", api_address="127.0.0.1:1", raft_address="127.0.0.1:2",
                         role="leader", term=4, commit_index=10, applied_index=10, pid=42,
                         health="ok", lag=0)
    response.masters.add(name="m2", api_address="127.0.0.1:3", raft_address="127.0.0.1:4",
                         role="unreachable", health="unreachable: UNAVAILABLE", lag=-1)
    assert status_table(response) == (
        "NAME   API           RAFT          ROLE          TERM   COMMIT   APPLIED   LAG   PID"
        "   HEALTH\n"
        "m1     127.0.0.1:1   127.0.0.1:2   leader        4      10       10        0     42"
        "    ok\n"
        "m2     127.0.0.1:3   127.0.0.1:4   unreachable                             ?"
        "           unreachable: UNAVAILABLE\n")
    data = status_data(response)
    assert data["masters"][0] == {
        "id": "m1", "apiAddress": "127.0.0.1:1", "raftAddress": "127.0.0.1:2",
        "role": "leader", "term": 4, "commitIndex": 10, "appliedIndex": 10, "pid": 42,
        "health": "ok", "lag": 0, "revision": 0, "version": ""}
    assert data["masters"][1]["lag"] is None


def test_error_lines_are_one_readable_line() -> None:
    invalid = apierrors.Invalid(
        "Deployment 'web' is invalid (create): spec.template.spec.containers[0].image: "
        "required", [FieldError("spec.template.spec.containers[0].image", "required")])
    assert error_lines(invalid) == [
        "Error from server (Invalid): Deployment 'web' is invalid (create): "
        "spec.template.spec.containers[0].image: required"]
    assert error_lines(apierrors.Unavailable("no master\nanswered")) == [
        "error: Unavailable: no master answered"]
    assert error_lines(CommandError("bad")) == ["error: bad"]


def test_parse_duration_and_targets() -> None:
    assert parse_duration("90") == 90 and parse_duration("1h30m") == 5400
    with pytest.raises(CommandError):
        parse_duration("soon")
    assert [(i.kind, n) for i, n in parse_targets(["deploy", "a", "b"])] == [
        ("Deployment", "a"), ("Deployment", "b")]
    assert [(i.kind, n) for i, n in parse_targets(["po/x", "svc/y"])] == [
        ("Pod", "x"), ("Service", "y")]
    assert parse_targets(["pods"])[0][1] == ""
    assert [(i.kind, n) for i, n in parse_targets(["deploy,svc"])] == [
        ("Deployment", ""), ("Service", "")]
    with pytest.raises(CommandError):
        parse_targets(["po", "svc/y"])


def test_leading_config_flag_moves_behind_the_command() -> None:
    from raftkube.cli.raftkubectl_main import global_flags_last

    assert global_flags_last(["--config", "c.yaml", "get", "pods"]) == [
        "get", "pods", "--config", "c.yaml"]
    assert global_flags_last(["--config=c.yaml", "get", "pods"]) == [
        "get", "pods", "--config=c.yaml"]
    assert global_flags_last(["get", "pods", "--config", "c"]) == ["get", "pods", "--config", "c"]
