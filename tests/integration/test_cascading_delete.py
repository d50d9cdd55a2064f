"""Deletion cascades through ownerReferences (background, foreground, orphan) on a real
3-master cluster whose leader runs the garbage collector."""

from __future__ import annotations

import time

import grpc
import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2, resources_pb2
from raftkube.objects import registry
from raftkube.testing.master_cluster import MasterCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with MasterCluster(3) as c:
        yield c


def call(fn, *args, **kwargs):
    try:
        return fn(*args, timeout=10, **kwargs)
    except grpc.RpcError as e:
        raise apierrors.from_rpc_error(e) from None


def make_family(stub, prefix: str) -> tuple[core_pb2.ConfigMap, list[str]]:
    owner = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    owner.metadata.name = f"{prefix}-owner"
    owner = registry.unwrap(call(stub.Create, resources_pb2.CreateRequest(
        object=registry.wrap(owner))))
    names = []
    for i in range(3):
        child = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        child.metadata.name = f"{prefix}-child-{i}"
        child.metadata.owner_references.add(api_version="v1", kind="ConfigMap",
                                            name=owner.metadata.name, uid=owner.metadata.uid,
                                            controller=True, block_owner_deletion=True)
        call(stub.Create, resources_pb2.CreateRequest(object=registry.wrap(child)))
        names.append(child.metadata.name)
    return owner, names


def exists(stub, name: str) -> bool:
    try:
        call(stub.Get, resources_pb2.GetRequest(kind="ConfigMap", namespace="default",
                                                name=name))
        return True
    except apierrors.NotFound:
        return False


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_background_deletion_removes_dependents(cluster: MasterCluster) -> None:
    stub = cluster.resources(0)
    owner, children = make_family(stub, "bg")
    reply = call(stub.Delete, resources_pb2.DeleteRequest(kind="ConfigMap",
                                                          name=owner.metadata.name))
    assert reply.deleted
    assert wait_for(lambda: not any(exists(stub, c) for c in children))


def test_foreground_deletion_keeps_owner_until_dependents_are_gone(cluster: MasterCluster) -> None:
    stub = cluster.resources(1)
    owner, children = make_family(stub, "fg")
    reply = call(stub.Delete, resources_pb2.DeleteRequest(
        kind="ConfigMap", name=owner.metadata.name, propagation_policy="Foreground"))
    assert not reply.deleted
    marked = registry.unwrap(reply.object)
    assert marked.metadata.deletion_timestamp
    assert "foregroundDeletion" in marked.metadata.finalizers
    assert wait_for(lambda: not exists(stub, owner.metadata.name))
    assert not any(exists(stub, c) for c in children)


def test_orphan_deletion_releases_dependents(cluster: MasterCluster) -> None:
    stub = cluster.resources(2)
    owner, children = make_family(stub, "orphan")
    call(stub.Delete, resources_pb2.DeleteRequest(
        kind="ConfigMap", name=owner.metadata.name, propagation_policy="Orphan"))
    assert wait_for(lambda: not exists(stub, owner.metadata.name))
    for name in children:
        child = registry.unwrap(call(stub.Get, resources_pb2.GetRequest(
            kind="ConfigMap", namespace="default", name=name)))
        assert list(child.metadata.owner_references) == []


def test_deleting_a_namespace_deletes_its_objects(cluster: MasterCluster) -> None:
    stub = cluster.resources(0)
    ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = "team-a"
    call(stub.Create, resources_pb2.CreateRequest(object=registry.wrap(ns)))
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = "settings"
    cm.metadata.namespace = "team-a"
    call(stub.Create, resources_pb2.CreateRequest(object=registry.wrap(cm)))
    missing = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    missing.metadata.name = "x"
    missing.metadata.namespace = "no-such-namespace"
    with pytest.raises(apierrors.NotFound, match='namespaces "no-such-namespace" not found'):
        call(stub.Create, resources_pb2.CreateRequest(object=registry.wrap(missing)))
    reply = call(stub.Delete, resources_pb2.DeleteRequest(kind="Namespace", name="team-a"))
    assert not reply.deleted  # Terminating until empty
    with pytest.raises(apierrors.Forbidden, match="being deleted"):
        call(stub.Create, resources_pb2.CreateRequest(object=registry.wrap(cm)))
    with pytest.raises(apierrors.Forbidden, match="system namespace"):
        call(stub.Delete, resources_pb2.DeleteRequest(kind="Namespace", name="default"))

    def gone() -> bool:
        try:
            call(stub.Get, resources_pb2.GetRequest(kind="ConfigMap", namespace="team-a",
                                                    name="settings"))
            return False
        except apierrors.NotFound:
            return True

    assert wait_for(gone)

    def namespace_gone() -> bool:
        try:
            call(stub.Get, resources_pb2.GetRequest(kind="Namespace", name="team-a"))
            return False
        except apierrors.NotFound:
            return True

    assert wait_for(namespace_gone)
