"""Plain, immutable inputs of the node networking components (no protobuf here).

The agent translates API objects (Service, Endpoints, Ingress, Node) into these; the
service proxy, DNS server and ingress proxy read only these. `validate_services` names the
offending field of bad input (`services[ns/name].ports[0].port: ...`).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
AFFINITIES = ("None", "ClientIP")
DEFAULT_AFFINITY_TIMEOUT_S = 10800


class ModelError(ValueError):
    """Input that cannot be programmed; the message names the field path and the reason."""


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service.

    name: the port name ("" allowed when the service has a single port).
    protocol: "TCP", "UDP" or "SCTP".
    port: the port on the cluster IP.
    target_port: the port on the endpoints, unless an Endpoint overrides it by port name.
    node_port: the port on every node's addresses (NodePort/LoadBalancer); 0 = none.
    """

    port: int
    target_port: int
    protocol: str = "TCP"
    name: str = ""
    node_port: int = 0


@dataclass(frozen=True)
class Endpoint:
    """A ready backend of a Service.

    ip: the pod IP.
    ports: (service port name, port) pairs overriding ServicePort.target_port (named target
        ports resolved by the endpoints controller); empty = use target_port.
    hostname: the pod's hostname for `HOSTNAME.SERVICE.NS.svc.DOMAIN` (StatefulSet pods).
    node_name: the node the pod runs on (informational).
    """

    ip: str
    ports: tuple[tuple[str, int], ...] = ()
    hostname: str = ""
    node_name: str = ""

    def port_for(self, service_port: ServicePort) -> int:
        """The endpoint port serving `service_port`."""
        for name, port in self.ports:
            if name == service_port.name:
                return port
        return service_port.target_port


@dataclass(frozen=True)
class Service:
    """A Service with its ready endpoints.

    cluster_ip: the virtual IP; None for a headless service (clusterIP: None).
    type: "ClusterIP", "NodePort" or "LoadBalancer" (LoadBalancer is served as NodePort).
    session_affinity: "None" or "ClientIP".
    affinity_timeout_s: how long a client sticks to its endpoint (ClientIP only).
    endpoints: ready endpoints only; not-ready ones are left out by the caller.
    """

    namespace: str
    name: str
    cluster_ip: str | None
    ports: tuple[ServicePort, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    type: str = "ClusterIP"
    session_affinity: str = "None"
    affinity_timeout_s: int = DEFAULT_AFFINITY_TIMEOUT_S

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip is None


@dataclass(frozen=True)
class ProxyModel:
    """Everything the service proxy programs: all services with their ready endpoints."""

    services: tuple[Service, ...] = field(default_factory=tuple)


def _check_port(path: str, value: int, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 65535:
        raise ModelError(f"{path}: {value!r} is not a port number ({low}-65535)")


@functools.lru_cache(maxsize=65536)
def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError):
        return False
    return True


def _check_ipv4(path: str, value: str) -> None:
    if not isinstance(value, str) or not _is_ipv4(value):
        raise ModelError(f"{path}: {value!r} is not an IPv4 address")


def validate_services(services: Iterable[Service]) -> None:
    """Raise ModelError naming the first bad field; return None when all are usable.

    Checks addresses, port ranges, protocols, types, affinity, and that no two services
    claim the same (cluster IP, protocol, port) or (protocol, node port).
    """
    seen_vips: dict[tuple[str, str, int], str] = {}
    seen_nodeports: dict[tuple[str, int], str] = {}
    seen_keys: set[str] = set()
    for svc in services:
        base = f"services[{svc.key}]"
        if not svc.namespace or not svc.name:
            raise ModelError(f"{base}: namespace and name must be set")
        if svc.key in seen_keys:
            raise ModelError(f"{base}: listed twice")
        seen_keys.add(svc.key)
        if svc.cluster_ip is not None:
            _check_ipv4(f"{base}.cluster_ip", svc.cluster_ip)
        if svc.type not in SERVICE_TYPES:
            raise ModelError(f"{base}.type: {svc.type!r} is not one of {SERVICE_TYPES}")
        if svc.session_affinity not in AFFINITIES:
            raise ModelError(
                f"{base}.session_affinity: {svc.session_affinity!r} is not one of {AFFINITIES}")
        if svc.session_affinity == "ClientIP" and not 1 <= svc.affinity_timeout_s <= 86400:
            raise ModelError(
                f"{base}.affinity_timeout_s: {svc.affinity_timeout_s!r} not in 1-86400")
        names = set()
        for i, port in enumerate(svc.ports):
            path = f"{base}.ports[{i}]"
            if port.protocol not in PROTOCOLS:
                raise ModelError(f"{path}.protocol: {port.protocol!r} is not one of {PROTOCOLS}")
            _check_port(f"{path}.port", port.port)
            _check_port(f"{path}.target_port", port.target_port)
            _check_port(f"{path}.node_port", port.node_port, allow_zero=True)
            if port.name in names:
                raise ModelError(f"{path}.name: {port.name!r} used twice")
            names.add(port.name)
            if svc.cluster_ip is not None:
                vip = (svc.cluster_ip, port.protocol, port.port)
                if vip in seen_vips:
                    raise ModelError(f"{path}: {port.protocol} {svc.cluster_ip}:{port.port} "
                                     f"already used by services[{seen_vips[vip]}]")
                seen_vips[vip] = svc.key
            if port.node_port:
                if svc.type == "ClusterIP":
                    raise ModelError(f"{path}.node_port: set on a ClusterIP service")
                np = (port.protocol, port.node_port)
                if np in seen_nodeports:
                    raise ModelError(f"{path}.node_port: {port.protocol} {port.node_port} "
                                     f"already used by services[{seen_nodeports[np]}]")
                seen_nodeports[np] = svc.key
        for j, ep in enumerate(svc.endpoints):
            _check_ipv4(f"{base}.endpoints[{j}].ip", ep.ip)
            for name, p in ep.ports:
                _check_port(f"{base}.endpoints[{j}].ports[{name!r}]", p)


def services_from_json(data: Sequence[Mapping]) -> list[Service]:
    """Services from plain JSON (command-line state files and tests).

    Each item: {"namespace", "name", "cluster_ip" (null = headless), "type",
    "session_affinity", "affinity_timeout_s", "ports": [{"name", "port", "target_port",
    "protocol", "node_port"}], "endpoints": [{"ip", "hostname", "node_name",
    "ports": {"port name": number}}]}. Only namespace, name and port numbers are required.
    Raises ModelError naming the item and the missing field.
    """
    out = []
    for i, item in enumerate(data):
        try:
            out.append(Service(
                namespace=item["namespace"], name=item["name"],
                cluster_ip=item.get("cluster_ip"), type=item.get("type", "ClusterIP"),
                session_affinity=item.get("session_affinity", "None"),
                affinity_timeout_s=item.get("affinity_timeout_s",
                                            DEFAULT_AFFINITY_TIMEOUT_S),
                ports=tuple(ServicePort(
                    port=p["port"], target_port=p.get("target_port", p["port"]),
                    protocol=p.get("protocol", "TCP"), name=p.get("name", ""),
                    node_port=p.get("node_port", 0)) for p in item.get("ports", [])),
                endpoints=tuple(Endpoint(
                    ip=e["ip"], hostname=e.get("hostname", ""),
                    node_name=e.get("node_name", ""),
                    ports=tuple(sorted(e.get("ports", {}).items())))
                    for e in item.get("endpoints", []))))
        except KeyError as exc:
            raise ModelError(f"services[{i}]: missing field {exc}") from exc
    return out
