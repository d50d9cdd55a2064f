"""Service clusterIP / nodePort allocation through the store on a real 3-master cluster:
concurrent creates through different masters never get the same value; deletion frees."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from raftkube import apierrors
from raftkube.testing.master_cluster import MasterCluster
from tests.integration.controller_helpers import create, delete, get, service, update

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with MasterCluster(3) as c:
        yield c


def node_port_service(name: str):
    s = service(name, {"app": name}, port=80, target=8080)
    s.spec.type = "NodePort"
    return s


def test_concurrent_creates_through_all_masters_get_distinct_values(cluster) -> None:
    def make(i: int):
        return create(cluster.resources(i % 3), node_port_service(f"svc-{i}"))

    with ThreadPoolExecutor(12) as pool:
        made = list(pool.map(make, range(36)))
    ips = [s.spec.cluster_ip for s in made]
    ports = [s.spec.ports[0].node_port for s in made]
    assert len(set(ips)) == 36 and len(set(ports)) == 36
    assert all(ip.startswith("10.96.") and not ip.endswith((".0.0", ".0.1")) for ip in ips)
    assert all(30000 <= p <= 32767 for p in ports)


def test_requested_values_are_exclusive_until_deleted(cluster) -> None:
    stub = cluster.resources(0)
    first = node_port_service("fixed-a")
    first.spec.cluster_ip = "10.96.7.7"
    first.spec.ports[0].node_port = 31999
    create(stub, first)
    clash = node_port_service("fixed-b")
    clash.spec.cluster_ip = "10.96.7.7"
    with pytest.raises(apierrors.Invalid, match="already allocated"):
        create(cluster.resources(1), clash)
    port_clash = node_port_service("fixed-c")
    port_clash.spec.ports[0].node_port = 31999
    with pytest.raises(apierrors.Invalid, match="already allocated"):
        create(cluster.resources(2), port_clash)
    # an update may not move the allocation; leaving the fields out keeps them
    current = get(stub, "Service", "fixed-a")
    current.spec.cluster_ip = ""
    current.spec.cluster_ips[:] = []
    current.spec.ports[0].node_port = 0
    kept = update(stub, current)
    assert kept.spec.cluster_ip == "10.96.7.7" and kept.spec.ports[0].node_port == 31999
    moved = get(stub, "Service", "fixed-a")
    moved.spec.cluster_ip = "10.96.8.8"
    moved.spec.cluster_ips[:] = ["10.96.8.8"]
    with pytest.raises(apierrors.Invalid, match="immutable"):
        update(stub, moved)
    delete(stub, "Service", "fixed-a")
    again = create(cluster.resources(1), clash)
    assert again.spec.cluster_ip == "10.96.7.7"


def test_headless_service_gets_no_cluster_ip(cluster) -> None:
    s = service("headless", {"app": "db"})
    s.spec.cluster_ip = "None"
    made = create(cluster.resources(0), s)
    assert made.spec.cluster_ip == "None"
