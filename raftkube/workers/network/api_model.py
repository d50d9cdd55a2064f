"""Pure translation of API objects (Service, Endpoints, Ingress, Node) into the plain
models the service proxy, DNS server, ingress proxy and route syncer program.

Contract: no I/O; objects that cannot be programmed yet (a Service without an allocated
cluster IP, a Node without a pod CIDR or address) are left out rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable

from raftkube.api.v1 import core_pb2, networking_pb2
from raftkube.workers.network.ingress_routes import (
    BackendRef,
    Ingress,
    IngressPath,
    IngressRule,
)
from raftkube.workers.network.model import Endpoint, Service, ServicePort
from raftkube.workers.network.pod_routes import NodeRoute

HEADLESS = "None"


def _target_port(port: core_pb2.ServicePort) -> int:
    which = port.target_port.WhichOneof("value")
    if which == "int_val" and port.target_port.int_val:
        return port.target_port.int_val
    return port.port  # named target ports are resolved per endpoint (Endpoints ports)


def _endpoints(endpoints: core_pb2.Endpoints | None) -> tuple[Endpoint, ...]:
    if endpoints is None:
        return ()
    out: list[Endpoint] = []
    seen: set[str] = set()
    for subset in endpoints.subsets:
        ports = tuple((p.name, p.port) for p in subset.ports)
        for address in subset.addresses:
            if address.ip in seen:
                continue
            seen.add(address.ip)
            out.append(Endpoint(ip=address.ip, ports=ports, hostname=address.hostname,
                                node_name=address.node_name))
    return tuple(sorted(out, key=lambda e: e.ip))


def services_model(services: Iterable[core_pb2.Service],
                   endpoints: Iterable[core_pb2.Endpoints]) -> tuple[Service, ...]:
    """Every programmable Service with its ready endpoints, in a stable order."""
    by_key = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
    out: list[Service] = []
    for svc in services:
        spec = svc.spec
        if not spec.cluster_ip:
            continue  # not allocated yet
        headless = spec.cluster_ip == HEADLESS
        ports = tuple(
            ServicePort(port=p.port, target_port=_target_port(p), protocol=p.protocol or "TCP",
                        name=p.name, node_port=p.node_port if not headless else 0)
            for p in spec.ports)
        timeout = 10800
        if spec.session_affinity_config.client_ip.HasField("timeout_seconds"):
            timeout = spec.session_affinity_config.client_ip.timeout_seconds
        out.append(Service(
            namespace=svc.metadata.namespace, name=svc.metadata.name,
            cluster_ip=None if headless else spec.cluster_ip, ports=ports,
            endpoints=_endpoints(by_key.get((svc.metadata.namespace, svc.metadata.name))),
            type=spec.type or "ClusterIP",
            session_affinity=spec.session_affinity or "None",
            affinity_timeout_s=timeout))
    return tuple(sorted(out, key=lambda s: s.key))


def _backend(namespace: str, backend: networking_pb2.IngressBackend) -> BackendRef | None:
    service = backend.service
    if not service.name:
        return None
    port: int | str = service.port.number or service.port.name
    return BackendRef(namespace, service.name, port)


def ingress_model(ingresses: Iterable[networking_pb2.Ingress]) -> tuple[Ingress, ...]:
    """The Ingresses as routing input (paths without a service backend are skipped)."""
    out: list[Ingress] = []
    for ing in ingresses:
        ns = ing.metadata.namespace
        rules = []
        for rule in ing.spec.rules:
            paths = []
            for path in rule.http.paths:
                backend = _backend(ns, path.backend)
                if backend is not None:
                    paths.append(IngressPath(path.path or "/", path.path_type or "Prefix",
                                             backend))
            rules.append(IngressRule(rule.host, tuple(paths)))
        default = (_backend(ns, ing.spec.default_backend)
                   if ing.spec.HasField("default_backend") else None)
        out.append(Ingress(ns, ing.metadata.name, tuple(rules), default))
    return tuple(sorted(out, key=lambda i: (i.namespace, i.name)))


def node_routes(nodes: Iterable[core_pb2.Node]) -> list[NodeRoute]:
    """Route inputs for every node that has an InternalIP and a pod CIDR."""
    out = []
    for node in nodes:
        address = next((a.address for a in node.status.addresses if a.type == "InternalIP"),
                       "")
        if address and node.spec.pod_cidr:
            out.append(NodeRoute(node.metadata.name, address, node.spec.pod_cidr))
    return sorted(out, key=lambda r: r.name)
