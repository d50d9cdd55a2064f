"""Service clusterIP and nodePort allocation, collision-free through the store.

Every allocated IP or port has a claim key (`/registry/allocations/serviceips/<ip>`,
`/registry/allocations/nodeports/<port>`) written in the SAME transaction as the Service,
guarded by `Compare.absent` on each claim key: two masters picking the same value at the
same time cannot both commit; the loser picks again. Deleting the Service deletes its
claim keys in the deletion's transaction, so nothing leaks and nothing is freed early.

```
 create Service ─> free = range - keys under /registry/allocations/... ─> pick (random)
                ─> txn[ absent(service), absent(claims...) ] put service + claims
                     └ a claim taken meanwhile ─> pick again (bounded retries)
 delete Service ─> txn[ mod_revision(service) ] delete service + its claims
```
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.objects.errors import FieldError

ALLOCATIONS_PREFIX = b"/registry/allocations/"
IP_PREFIX = ALLOCATIONS_PREFIX + b"serviceips/"
PORT_PREFIX = ALLOCATIONS_PREFIX + b"nodeports/"


@dataclass(frozen=True)
class AllocatorConfig:
    """service_cidr: where clusterIPs come from (network and first address never used);
    node_port_range: inclusive range of nodePorts."""

    service_cidr: str = "10.96.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)


def ip_key(ip: str) -> bytes:
    return IP_PREFIX + ip.encode()


def port_key(port: int) -> bytes:
    return PORT_PREFIX + str(port).encode()


def claim_keys(service: core_pb2.Service) -> list[bytes]:
    """The claim keys a stored Service holds (its clusterIP unless headless, nodePorts)."""
    keys = []
    if service.spec.cluster_ip and service.spec.cluster_ip != "None":
        keys.append(ip_key(service.spec.cluster_ip))
    keys += [port_key(p.node_port) for p in service.spec.ports if p.node_port]
    return list(dict.fromkeys(keys))


def wants_node_ports(service: core_pb2.Service) -> bool:
    return service.spec.type in ("NodePort", "LoadBalancer")


def pick_ip(config: AllocatorConfig, taken: set[str], rng: random.Random) -> str:
    """A free address of the service range (not the network address nor .1)."""
    network = ipaddress.ip_network(config.service_cidr)
    size = network.num_addresses
    first = int(network.network_address)
    for _ in range(64):
        offset = rng.randrange(2, size - 1)
        candidate = str(ipaddress.ip_address(first + offset))
        if candidate not in taken:
            return candidate
    for offset in range(2, size - 1):
        candidate = str(ipaddress.ip_address(first + offset))
        if candidate not in taken:
            return candidate
    raise apierrors.Invalid(f"spec.clusterIP: no free address left in {config.service_cidr}")


def pick_port(config: AllocatorConfig, taken: set[int], rng: random.Random) -> int:
    low, high = config.node_port_range
    for _ in range(64):
        candidate = rng.randint(low, high)
        if candidate not in taken:
            return candidate
    for candidate in range(low, high + 1):
        if candidate not in taken:
            return candidate
    raise apierrors.Invalid(f"spec.ports: no free nodePort left in {low}-{high}")


def check_requested(service: core_pb2.Service, config: AllocatorConfig) -> None:
    """A clusterIP or nodePort given by the user must be inside the configured ranges."""
    errors = []
    ip = service.spec.cluster_ip
    if ip and ip != "None":
        address = ipaddress.ip_address(ip)
        network = ipaddress.ip_network(config.service_cidr)
        if address not in network or int(address) - int(network.network_address) < 2 \
                or address == network.broadcast_address:
            errors.append(FieldError("spec.clusterIP",
                                     f"{ip} is not a usable address of {config.service_cidr}"))
    low, high = config.node_port_range
    for i, port in enumerate(service.spec.ports):
        if port.node_port and not low <= port.node_port <= high:
            errors.append(FieldError(f"spec.ports[{i}].nodePort",
                                     f"{port.node_port} is outside {low}-{high}"))
    if errors:
        raise apierrors.Invalid(f"Service {service.metadata.name!r} is invalid: "
                                + "; ".join(str(e) for e in errors), errors)


def assign(service: core_pb2.Service, config: AllocatorConfig, taken_ips: Iterable[str],
           taken_ports: Iterable[int], rng: random.Random) -> core_pb2.Service:
    """A copy of `service` with a clusterIP (unless given or headless) and nodePorts (for
    NodePort/LoadBalancer ports without one) picked from what is not taken."""
    out = core_pb2.Service()
    out.CopyFrom(service)
    ips, ports = set(taken_ips), set(taken_ports)
    if not out.spec.cluster_ip:
        out.spec.cluster_ip = pick_ip(config, ips, rng)
    if out.spec.cluster_ip != "None":
        del out.spec.cluster_ips[:]
        out.spec.cluster_ips.append(out.spec.cluster_ip)
    if wants_node_ports(out):
        ports |= {p.node_port for p in out.spec.ports if p.node_port}
        for port in out.spec.ports:
            if not port.node_port:
                port.node_port = pick_port(config, ports, rng)
                ports.add(port.node_port)
    return out
