"""Pod subnet allocation for Nodes (pure part)."""

from __future__ import annotations

import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.masters.pod_cidr_allocator import (
    PodCidrConfig,
    assign,
    check_requested,
    cidr_key,
    claim_keys,
    taken_cidrs,
)


def node(name: str, cidr: str = "") -> core_pb2.Node:
    n = core_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    n.spec.pod_cidr = cidr
    return n


def test_lowest_free_subnet_after_the_first_one() -> None:
    config = PodCidrConfig("10.244.0.0/16", 24)
    assert assign(node("a"), config, set()).spec.pod_cidr == "10.244.1.0/24"
    assert assign(node("b"), config, {"10.244.1.0/24"}).spec.pod_cidr == "10.244.2.0/24"
    assert assign(node("c", "10.244.9.0/24"), config, set()).spec.pod_cidr == "10.244.9.0/24"


def test_claim_keys_round_trip() -> None:
    keys = claim_keys(node("a", "10.244.3.0/24"))
    assert keys == [cidr_key("10.244.3.0/24")]
    assert taken_cidrs(keys) == {"10.244.3.0/24"}
    assert claim_keys(node("b")) == []


def test_exhausted_range_registers_without_a_subnet() -> None:
    config = PodCidrConfig("10.244.0.0/23", 24)
    assert assign(node("a"), config, set()).spec.pod_cidr == "10.244.1.0/24"
    assert assign(node("b"), config, {"10.244.1.0/24"}).spec.pod_cidr == ""


def test_a_subnet_outside_the_range_is_invalid() -> None:
    with pytest.raises(apierrors.Invalid, match="not inside the cluster's pod range"):
        check_requested(node("a", "10.99.0.0/24"), PodCidrConfig())
