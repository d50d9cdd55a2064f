"""Scheduler, ReplicaSet and Deployment controllers on a real 3-master cluster with hollow
nodes."""

from __future__ import annotations

import pytest

from raftkube.testing.hollow_nodes import HollowNodeConfig, HollowNodes
from raftkube.testing.master_cluster import MasterCluster
from tests.integration.controller_helpers import (
    create,
    deployment,
    events_for,
    get,
    list_objects,
    running,
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
