"""Scheduler, ReplicaSet and Deployment controllers on a real 3-master cluster with hollow
nodes."""

from __future__ import annotations

import pytest

from raftkube.api.v1 import apps_pb2
from raftkube.testing.hollow_nodes import HollowNodeConfig, HollowNodes
from raftkube.testing.master_cluster import MasterCluster
from tests.integration.controller_helpers import (
    container,
    create,
    delete,
    deployment,
    events_for,
    get,
    list_objects,
    pod,
    running,
    update,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with MasterCluster(3) as c:
        yield c


@pytest.fixture(scope="module")
def nodes(cluster):
    fleet = HollowNodes(lambda: cluster.resources(0),
                        HollowNodeConfig(count=4, prefix="wl", cpu="2", memory="4Gi"))
    with fleet:
        yield fleet


def test_deployment_pods_are_scheduled_and_running(cluster, nodes) -> None:
    stub = cluster.resources(1)
    create(stub, deployment("web", 6))
    pods = wait_for(lambda: (len(p := running(list_objects(stub, "Pod", label_selector="app=web")))
                             == 6) and p, timeout=60)
    assert pods, list_objects(stub, "Pod", label_selector="app=web")
    assert {p.spec.node_name for p in pods} <= set(nodes.names)
    assert len({p.spec.node_name for p in pods}) >= 3, "replicas should spread over nodes"
    d = wait_for(lambda: (x := get(stub, "Deployment", "web")).status.available_replicas == 6
                 and x, timeout=30)
    assert d and d.status.updated_replicas == 6
    assert wait_for(lambda: any(e.reason == "Scheduled"
                                for e in events_for(stub, pods[0].metadata.name)), timeout=20)


def rs_of(stub, name: str) -> list:
    return [rs for rs in list_objects(stub, "ReplicaSet")
            if rs.metadata.owner_references and rs.metadata.owner_references[0].name == name]


def test_rolling_update_then_rollback_reuses_the_old_replica_set(cluster, nodes) -> None:
    stub = cluster.resources(0)
    d = create(stub, deployment("roll", 4))
    assert wait_for(lambda: get(stub, "Deployment", "roll").status.available_replicas == 4,
                    timeout=60)
    first = rs_of(stub, "roll")
    assert len(first) == 1 and first[0].metadata.annotations[
        "deployment.kubernetes.io/revision"] == "1"
    d = get(stub, "Deployment", "roll")
    d.spec.template.spec.containers[0].command[:] = ["sleep", "7200"]
    update(stub, d)

    def rolled():
        x = get(stub, "Deployment", "roll")
        sets = rs_of(stub, "roll")
        pods = running(list_objects(stub, "Pod", label_selector="app=roll"))
        return (x.status.updated_replicas == 4 and x.status.available_replicas == 4
                and x.status.replicas == 4 and len(sets) == 2
                and sum(rs.spec.replicas for rs in sets) == 4 and len(pods) == 4
                and all(p.spec.containers[0].command[1] == "7200" for p in pods)) and sets

    sets = wait_for(rolled, timeout=60)
    assert sets, get(stub, "Deployment", "roll").status
    revisions = sorted(rs.metadata.annotations["deployment.kubernetes.io/revision"]
                       for rs in sets)
    assert revisions == ["1", "2"]
    # rollout undo: the template of revision 1 again -> the same ReplicaSet, revision 3
    old = next(rs for rs in sets if rs.metadata.name == first[0].metadata.name)
    d = get(stub, "Deployment", "roll")
    d.spec.template.CopyFrom(old.spec.template)
    del d.spec.template.metadata.labels["pod-template-hash"]
    update(stub, d)

    def undone():
        back = get(stub, "ReplicaSet", old.metadata.name)
        x = get(stub, "Deployment", "roll")
        return (back.spec.replicas == 4 and x.status.updated_replicas == 4
                and x.status.available_replicas == 4 and x.status.replicas == 4
                and back.metadata.annotations["deployment.kubernetes.io/revision"] == "3")

    assert wait_for(undone, timeout=60)
    assert len(rs_of(stub, "roll")) == 2
    assert get(stub, "Deployment", "roll").metadata.annotations[
        "deployment.kubernetes.io/revision"] == "3"
    reasons = {e.reason for e in events_for(stub, "roll")}
    assert "ScalingReplicaSet" in reasons


def replica_set(name: str, replicas: int) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = name
    rs.spec.replicas = replicas
    rs.spec.selector.match_labels["app"] = name
    rs.spec.template.metadata.labels["app"] = name
    rs.spec.template.spec.containers.append(container())
    return rs


def test_replica_set_adopts_releases_and_replaces_pods(cluster, nodes) -> None:
    stub = cluster.resources(2)
    orphan = create(stub, pod("adopt-orphan", {"app": "adopt"}))
    rs = create(stub, replica_set("adopt", 3))

    def mine():
        return [p for p in list_objects(stub, "Pod", label_selector="app=adopt")
                if p.metadata.owner_references
                and p.metadata.owner_references[0].uid == rs.metadata.uid]

    assert wait_for(lambda: len(running(mine())) == 3, timeout=60)
    assert orphan.metadata.name in {p.metadata.name for p in mine()}, "orphan adopted"
    assert len(list_objects(stub, "Pod", label_selector="app=adopt")) == 3
    # a pod relabelled out of the selector is released and replaced
    leaving = get(stub, "Pod", orphan.metadata.name)
    leaving.metadata.labels["app"] = "elsewhere"
    update(stub, leaving)
    assert wait_for(lambda: not get(stub, "Pod", orphan.metadata.name).metadata.owner_references,
                    timeout=30)
    assert wait_for(lambda: len(running(mine())) == 3, timeout=60)
    # a deleted pod is replaced
    victim = running(mine())[0]
    delete(stub, "Pod", victim.metadata.name, grace=0)
    assert wait_for(lambda: len(running(mine())) == 3 and victim.metadata.name not in {
        p.metadata.name for p in mine()}, timeout=60)
    # scale down keeps exactly the count
    current = get(stub, "ReplicaSet", "adopt")
    current.spec.replicas = 1
    update(stub, current)
    assert wait_for(lambda: len([p for p in mine() if not p.metadata.deletion_timestamp]) == 1
                    and get(stub, "ReplicaSet", "adopt").status.replicas == 1, timeout=60)
    assert "SuccessfulDelete" in {e.reason for e in events_for(stub, "adopt")}


def test_unschedulable_pod_gets_a_reason_and_is_retried_when_a_node_appears(
        cluster, nodes) -> None:
    stub = cluster.resources(0)
    create(stub, pod("huge", cpu="16"))

    def failed_event():
        return [e for e in events_for(stub, "huge") if e.reason == "FailedScheduling"]

    found = wait_for(failed_event, timeout=30)
    assert found
    assert found[0].message == "0/4 nodes are available: 4 Insufficient cpu."
    cond = [c for c in get(stub, "Pod", "huge").status.conditions if c.type == "PodScheduled"]
    assert cond and cond[0].status == "False" and cond[0].reason == "Unschedulable"
    big = HollowNodes(lambda: cluster.resources(1),
                      HollowNodeConfig(count=1, prefix="big", cpu="32", memory="64Gi"))
    with big:
        assert wait_for(lambda: get(stub, "Pod", "huge").spec.node_name == "big-0", timeout=30)
        assert wait_for(lambda: get(stub, "Pod", "huge").status.phase == "Running", timeout=30)
        delete(stub, "Pod", "huge", grace=0)
        delete(stub, "Node", "big-0")


def test_cordoned_nodes_are_named_in_the_failure_message(cluster, nodes) -> None:
    stub = cluster.resources(0)
    for name in nodes.names[:2]:
        node = get(stub, "Node", name, namespace="")
        node.spec.unschedulable = True
        update(stub, node)
    try:
        create(stub, pod("picky", memory="5Gi"))
        found = wait_for(lambda: [e for e in events_for(stub, "picky")
                                  if e.reason == "FailedScheduling"], timeout=30)
        assert found
        assert found[0].message == ("0/4 nodes are available: 2 Insufficient memory, "
                                    "2 node(s) were unschedulable.")
    finally:
        for name in nodes.names[:2]:
            node = get(stub, "Node", name, namespace="")
            node.spec.unschedulable = False
            update(stub, node)
        delete(stub, "Pod", "picky", grace=0)
