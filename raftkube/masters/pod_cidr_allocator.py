"""Pod subnets for Nodes, allocated collision-free through the store at registration.

Each Node's `spec.podCIDR` holds a claim key `/registry/allocations/podcidrs/<a.b.c.d_n>`
written in the same transaction as the Node (the same mechanism as Service IPs, see
service_allocator): a Node created without a podCIDR gets the lowest free subnet of the
cluster range; one that names its own gets it only when nobody holds it. Deleting the Node
frees it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.masters.service_allocator import ALLOCATIONS_PREFIX
from raftkube.objects.errors import FieldError

CIDR_PREFIX = ALLOCATIONS_PREFIX + b"podcidrs/"


@dataclass(frozen=True)
class PodCidrConfig:
    """cluster_cidr: the range pod subnets come from; node_prefix: each node's subnet size.
    The range's first subnet is never handed out (it holds the network address)."""

    cluster_cidr: str = "10.244.0.0/16"
    node_prefix: int = 24


def cidr_key(cidr: str) -> bytes:
    return CIDR_PREFIX + cidr.replace("/", "_").encode()


def claim_keys(node: core_pb2.Node) -> list[bytes]:
    return [cidr_key(node.spec.pod_cidr)] if node.spec.pod_cidr else []


def taken_cidrs(claims: Iterable[bytes]) -> set[str]:
    return {k[len(CIDR_PREFIX):].decode().replace("_", "/") for k in claims
            if k.startswith(CIDR_PREFIX)}


def check_requested(node: core_pb2.Node, config: PodCidrConfig) -> None:
    if not node.spec.pod_cidr:
        return
    subnet = ipaddress.ip_network(node.spec.pod_cidr, strict=False)
    if not subnet.subnet_of(ipaddress.ip_network(config.cluster_cidr)):  # type: ignore[arg-type]
        raise apierrors.Invalid(
            f"Node {node.metadata.name!r} is invalid: spec.podCIDR: {node.spec.pod_cidr} is "
            f"not inside the cluster's pod range {config.cluster_cidr}",
            [FieldError("spec.podCIDR", f"not inside {config.cluster_cidr}")])


def assign(node: core_pb2.Node, config: PodCidrConfig, taken: set[str]) -> core_pb2.Node:
    """A copy of `node` with the lowest free pod subnet (unless it names one). When the
    range is used up the Node registers without one, as Kubernetes' node IPAM does
    (CIDRNotAvailable): it can run pods only on the host network until a subnet frees."""
    out = core_pb2.Node()
    out.CopyFrom(node)
    if out.spec.pod_cidr:
        return out
    subnets = ipaddress.ip_network(config.cluster_cidr).subnets(new_prefix=config.node_prefix)
    next(subnets)  # the range's first subnet is not used
    for subnet in subnets:
        if str(subnet) not in taken:
            out.spec.pod_cidr = str(subnet)
            return out
    return out
