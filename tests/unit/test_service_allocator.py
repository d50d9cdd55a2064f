"""Service clusterIP / nodePort picking (the pure part of the allocator)."""

from __future__ import annotations

import random

import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.masters.service_allocator import (
    AllocatorConfig,
    assign,
    check_requested,
    claim_keys,
    pick_ip,
    pick_port,
)


def svc(kind: str = "ClusterIP", ports: int = 1, cluster_ip: str = "") -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name = "web"
    s.spec.type = kind
    s.spec.cluster_ip = cluster_ip
    for i in range(ports):
        s.spec.ports.add(name=f"p{i}", port=80 + i, protocol="TCP")
    return s


def test_picks_skip_network_and_first_address_and_taken_ones() -> None:
    config = AllocatorConfig(service_cidr="10.0.0.0/30")  # .0 net, .1 gateway, .2, .3 bcast
    assert pick_ip(config, set(), random.Random(1)) == "10.0.0.2"
    with pytest.raises(apierrors.Invalid, match="no free address"):
        pick_ip(config, {"10.0.0.2"}, random.Random(1))


def test_ports_come_from_the_range_and_never_repeat() -> None:
    config = AllocatorConfig(node_port_range=(30000, 30002))
    taken: set[int] = set()
    for _ in range(3):
        taken.add(pick_port(config, taken, random.Random(7)))
    assert taken == {30000, 30001, 30002}
    with pytest.raises(apierrors.Invalid, match="no free nodePort"):
        pick_port(config, taken, random.Random(7))


def test_assign_gives_ip_and_node_ports_and_claims_name_them() -> None:
    out = assign(svc("NodePort", ports=2), AllocatorConfig(), {"10.96.0.5"}, {30080},
                 random.Random(3))
    assert out.spec.cluster_ip and out.spec.cluster_ip != "10.96.0.5"
    assert list(out.spec.cluster_ips) == [out.spec.cluster_ip]
    ports = [p.node_port for p in out.spec.ports]
    assert len(set(ports)) == 2 and 30080 not in ports
    keys = claim_keys(out)
    assert keys[0] == b"/registry/allocations/serviceips/" + out.spec.cluster_ip.encode()
    assert len(keys) == 3


def test_headless_service_claims_nothing_and_cluster_ip_services_get_no_node_ports() -> None:
    headless = assign(svc(cluster_ip="None"), AllocatorConfig(), set(), set(), random.Random())
    assert headless.spec.cluster_ip == "None" and claim_keys(headless) == []
    plain = assign(svc(), AllocatorConfig(), set(), set(), random.Random())
    assert all(p.node_port == 0 for p in plain.spec.ports)


def test_requested_values_must_be_in_range() -> None:
    with pytest.raises(apierrors.Invalid, match=r"spec\.clusterIP"):
        check_requested(svc(cluster_ip="192.168.1.1"), AllocatorConfig())
    bad = svc("NodePort")
    bad.spec.ports[0].node_port = 80
    with pytest.raises(apierrors.Invalid, match=r"spec.ports\[0\].nodePort"):
        check_requested(bad, AllocatorConfig())
