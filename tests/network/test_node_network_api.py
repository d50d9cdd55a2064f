"""The worker's network role driven by the API: Services and Endpoints created through real
masters become nftables rules and DNS answers on a node in its own namespace."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest
from dnslib import QTYPE, DNSRecord

from raftkube.api.v1 import core_pb2
from raftkube.client import Client
from raftkube.testing.master_cluster import MasterCluster
from raftkube.testing.netns import NetnsCluster
from raftkube.workers.network.network_sync import NetworkSync
from raftkube.workers.network.node_network import NodeNetwork, NodeNetworkConfig

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture(scope="module")
def masters():
    with MasterCluster(3, workers=("h0",)) as cluster:
        yield cluster


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_services_and_endpoints_from_the_api_reach_pods(masters: MasterCluster,
                                                        netns_cluster: NetnsCluster) -> None:
    h0, h1, _ = netns_cluster.hosts
    pod_a, pod_b = netns_cluster.add_pod(h0), netns_cluster.add_pod(h1)
    netns_cluster.start_echo_http(pod_a.netns, 8080, "A")
    netns_cluster.start_echo_http(pod_b.netns, 8080, "B")
    # pods are reached from h0 through h1's address (the route syncer's job on real nodes)
    netns_cluster.run(h0.netns, ["ip", "route", "replace", h1.pod_cidr, "via", h1.address])
    admin = Client.from_config(masters.layout.admin_config)
    node = Client.from_config(masters.layout.worker_config("h0"))
    vip = "10.96.0.77"
    svc = core_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = "web"
    svc.spec.cluster_ip = vip
    # No selector: the endpoints are managed by hand here (the endpoints controller leaves
    # selector-less Services alone), since these "pods" are processes in namespaces.
    port = svc.spec.ports.add(name="http", port=80, protocol="TCP")
    port.target_port.int_val = 8080
    admin.create(svc)
    ep = core_pb2.Endpoints(api_version="v1", kind="Endpoints")
    ep.metadata.name = "web"
    subset = ep.subsets.add()
    subset.addresses.add(ip=pod_a.ip, node_name="h0")
    subset.ports.add(name="http", port=8080, protocol="TCP")
    ep = admin.create(ep)

    table = f"raftkube_{secrets.token_hex(3)}"
    network = NodeNetwork(NodeNetworkConfig(
        node_name="h0", node_address="127.0.0.1", netns=h0.netns, proxy_table=table,
        cluster_cidr=str(netns_cluster.pod_cluster_cidr), dns_port=0, ingress_port=None))
    sync = NetworkSync(node, network).start()
    try:
        result = netns_cluster.http_probe(h0.netns, f"http://{vip}/", count=10)
        assert result["fail"] == 0 and set(result["pods"]) == {"A"}, result

        subset = ep.subsets[0]
        subset.addresses.add(ip=pod_b.ip, node_name="h1")
        admin.update(ep)

        def both_serve() -> bool:
            probe = netns_cluster.http_probe(h0.netns, f"http://{vip}/", count=20)
            return probe["fail"] == 0 and set(probe["pods"]) == {"A", "B"}

        assert wait_for(both_serve), "the new endpoint was not programmed"

        query = DNSRecord.question("web.default.svc.cluster.local", "A")
        answer = DNSRecord.parse(query.send("127.0.0.1", network.dns.port, timeout=3))
        assert [str(r.rdata) for r in answer.rr if r.rtype == QTYPE.A] == [vip]

        admin.endpoints.delete("web")
        admin.services.delete("web")

        def rejected() -> bool:
            probe = netns_cluster.http_probe(h0.netns, f"http://{vip}/", count=1, timeout=2)
            return probe["fail"] == 1

        assert wait_for(rejected), "traffic to a deleted service still flows"
    finally:
        sync.stop()
        admin.close()
        node.close()
    out = netns_cluster.run(h0.netns, ["nft", "list", "tables"]).stdout
    assert table not in out, "the proxy's table was left behind"
