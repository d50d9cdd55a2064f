"""StatefulSet with per-ordinal local volumes on a real 3-master cluster with hollow nodes."""

from __future__ import annotations

import threading

import grpc
import pytest

from raftkube.api.v1 import apps_pb2, resources_pb2
from raftkube.objects import registry
from raftkube.testing.hollow_nodes import HollowNodeConfig, HollowNodes
from raftkube.testing.master_cluster import MasterCluster
from tests.integration.controller_helpers import (
    container,
    create,
    get,
    list_objects,
    running,
    service,
    update,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with MasterCluster(3, controllers={"volumes": {"base_path": "/srv/raftkube"}}) as c:
        yield c


@pytest.fixture(scope="module")
def nodes(cluster):
    with HollowNodes(lambda: cluster.resources(0),
                     HollowNodeConfig(count=4, prefix="st")) as fleet:
        yield fleet


def stateful_set(name: str, replicas: int) -> apps_pb2.StatefulSet:
    sts = apps_pb2.StatefulSet(api_version="apps/v1", kind="StatefulSet")
    sts.metadata.name = name
    sts.spec.replicas = replicas
    sts.spec.service_name = f"{name}-headless"
    sts.spec.selector.match_labels["app"] = name
    sts.spec.template.metadata.labels["app"] = name
    sts.spec.template.spec.containers.append(container())
    claim = sts.spec.volume_claim_templates.add()
    claim.metadata.name = "data"
    claim.spec.access_modes.append("ReadWriteOnce")
    claim.spec.resources.requests["storage"] = "1Gi"
    return sts


class PodLog:
    """Pod events of one StatefulSet, in order."""

    def __init__(self, stub, app: str) -> None:
        self.events: list[tuple[str, str, bool]] = []
        self._stream = stub.Watch(resources_pb2.WatchRequest(kind="Pod", namespace="default",
                                                             label_selector=f"app={app}"))
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for event in self._stream:
                pod = registry.unwrap(event.object)
                ready = pod.status.phase == "Running" and any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
                self.events.append((event.type, pod.metadata.name, ready))
        except grpc.RpcError:
            return

    def first(self, name: str, ready: bool | None = None, kind: str | None = None) -> int:
        for i, (type_, pod, is_ready) in enumerate(self.events):
            if pod == name and (ready is None or is_ready == ready) and (
                    kind is None or type_ == kind):
                return i
        return -1

    def stop(self) -> None:
        self._stream.cancel()


def test_ordered_pods_identity_volumes_scale_and_update(cluster, nodes) -> None:
    stub = cluster.resources(0)
    headless = service("db-headless", {"app": "db"}, port=5432, target=5432)
    headless.spec.cluster_ip = "None"
    create(stub, headless)
    log = PodLog(cluster.resources(1), "db")
    create(stub, stateful_set("db", 3))
    assert wait_for(lambda: len(running(list_objects(stub, "Pod", label_selector="app=db")))
                    == 3, timeout=90)
    log.stop()
    # created in order, each after the previous one was Ready
    assert 0 <= log.first("db-0", ready=True) < log.first("db-1", kind="ADDED")
    assert 0 <= log.first("db-1", ready=True) < log.first("db-2", kind="ADDED")
    pods = {p.metadata.name: p for p in list_objects(stub, "Pod", label_selector="app=db")}
    assert pods["db-1"].spec.hostname == "db-1"
    assert pods["db-1"].spec.subdomain == "db-headless"

    def bound_claims():
        claims = {c.metadata.name: c for c in list_objects(stub, "PersistentVolumeClaim")}
        names = [f"data-db-{i}" for i in range(3)]
        return all(n in claims and claims[n].status.phase == "Bound" for n in names) and claims

    claims = wait_for(bound_claims, timeout=30)
    assert claims
    for i in range(3):
        pv = get(stub, "PersistentVolume", claims[f"data-db-{i}"].spec.volume_name, namespace="")
        assert pv.spec.local.path == f"/srv/raftkube/default-data-db-{i}"
        values = pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0].values
        assert list(values) == [pods[f"db-{i}"].spec.node_name]
    ep = wait_for(lambda: (e := get(stub, "Endpoints", "db-headless")).subsets
                  and len(e.subsets[0].addresses) == 3 and e, timeout=20)
    assert ep and {a.hostname for a in ep.subsets[0].addresses} == {"db-0", "db-1", "db-2"}

    # scale down: highest ordinals go, claims stay
    sts = get(stub, "StatefulSet", "db")
    sts.spec.replicas = 1
    update(stub, sts)
    assert wait_for(lambda: sorted(p.metadata.name for p in list_objects(
        stub, "Pod", label_selector="app=db")) == ["db-0"], timeout=60)
    names = {c.metadata.name for c in list_objects(stub, "PersistentVolumeClaim")}
    assert {"data-db-1", "data-db-2"} <= names
    # scale up: db-1 comes back on its volume's node
    node_of_1 = pods["db-1"].spec.node_name
    sts = get(stub, "StatefulSet", "db")
    sts.spec.replicas = 2
    update(stub, sts)
    back = wait_for(lambda: (p := get(stub, "Pod", "db-1")).status.phase == "Running" and p,
                    timeout=60)
    assert back and back.spec.node_name == node_of_1
    assert back.spec.volumes[-1].persistent_volume_claim.claim_name == "data-db-1"

    # rolling update: every pod ends at the new revision
    sts = get(stub, "StatefulSet", "db")
    sts.spec.template.spec.containers[0].command[:] = ["sleep", "7200"]
    update(stub, sts)

    def updated():
        s = get(stub, "StatefulSet", "db")
        pods = running(list_objects(stub, "Pod", label_selector="app=db"))
        return (len(pods) == 2 and s.status.updated_replicas == 2
                and s.status.current_revision == s.status.update_revision
                and all(p.spec.containers[0].command[1] == "7200" for p in pods))

    assert wait_for(updated, timeout=90), get(stub, "StatefulSet", "db").status
