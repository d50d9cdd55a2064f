"""Pod network of one node: routes to other nodes' pod subnets, the no-masquerade
exception for pod-to-pod traffic, and the node's Podman network.

    nodes [(name, address, pod CIDR)] --desired_routes (pure)--> {pod CIDR: via address}
    current `ip -4 route show proto <P>` --plan_routes (pure)--> replace / delete
    RouteSyncer.sync --> ip route replace|del ... proto <P>   (only routes tagged <P>)

Contract: `RouteSyncer.sync` is idempotent and only touches routes carrying its own route
protocol number (so it never removes routes someone else made). Nodes without a pod CIDR
or address, and this node itself, get no route.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from raftkube.logging_config import get_logger

log = get_logger(__name__)


class RouteError(RuntimeError):
    """A route, nat or podman command failed; the message names it and its stderr."""


@dataclass(frozen=True)
class NodeRoute:
    """What the routes need to know about a node.

    name: node name. address: the node's address other nodes reach it at.
    pod_cidr: the node's pod subnet ("" when not assigned yet).
    """

    name: str
    address: str
    pod_cidr: str


@dataclass(frozen=True)
class RouteConfig:
    """Settings of a node's route syncer.

    node_name: this node (gets no route to itself).
    netns: run `ip` inside /run/netns/NETNS; None = current namespace.
    route_protocol: the `proto` number tagging routes this syncer owns (RFC-free range
        kept by iproute2 for local use: 200 by default).
    device: optional output device for the routes ("" = let the kernel pick by gateway).
    command_timeout_s: limit for each command.
    """

    node_name: str
    netns: str | None = None
    route_protocol: int = 200
    device: str = ""
    command_timeout_s: float = 15.0


@dataclass(frozen=True)
class RoutePlan:
    """Routes to add or change (CIDR -> gateway) and CIDRs to remove."""

    replace: tuple[tuple[str, str], ...]
    delete: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.replace and not self.delete


def desired_routes(nodes: Iterable[NodeRoute], this_node: str) -> dict[str, str]:
    """Pure: pod CIDR -> gateway address for every other node with both assigned.

    Raises ValueError naming the node when a CIDR or address is malformed, or when two
    nodes claim overlapping pod CIDRs.
    """
    out: dict[str, str] = {}
    seen: list[tuple[ipaddress.IPv4Network, str]] = []
    for node in sorted(nodes, key=lambda n: n.name):
        if not node.pod_cidr or not node.address:
            continue
        try:
            net = ipaddress.IPv4Network(node.pod_cidr)
        except ValueError as exc:
            raise ValueError(f"nodes[{node.name}].pod_cidr: {node.pod_cidr!r}: {exc}") from exc
        try:
            ipaddress.IPv4Address(node.address)
        except ValueError as exc:
            raise ValueError(f"nodes[{node.name}].address: {node.address!r}: {exc}") from exc
        for other, owner in seen:
            if net.overlaps(other):
                raise ValueError(f"nodes[{node.name}].pod_cidr: {net} overlaps "
                                 f"nodes[{owner}].pod_cidr {other}")
        seen.append((net, node.name))
        if node.name != this_node:
            out[str(net)] = node.address
    return out


def plan_routes(current: Mapping[str, str], desired: Mapping[str, str]) -> RoutePlan:
    """Pure: what to change so `current` (our routes in the kernel) becomes `desired`."""
    replace = tuple(sorted((c, g) for c, g in desired.items() if current.get(c) != g))
    delete = tuple(sorted(c for c in current if c not in desired))
    return RoutePlan(replace=replace, delete=delete)


def parse_routes(ip_json: str) -> dict[str, str]:
    """Pure: CIDR -> gateway from `ip -j -4 route show` output (routes with a gateway)."""
    out = {}
    for route in json.loads(ip_json or "[]"):
        dst, gw = route.get("dst", ""), route.get("gateway", "")
        if dst and gw and dst != "default":
            out[str(ipaddress.IPv4Network(dst))] = gw
    return out


class RouteSyncer:
    """Keeps this node's routes to other nodes' pod subnets."""

    def __init__(self, config: RouteConfig) -> None:
        self.config = config

    def _ip(self, args: Sequence[str], check: bool = True) -> str:
        prefix = [] if self.config.netns is None else [
            "nsenter", f"--net=/run/netns/{self.config.netns}"]
        proc = subprocess.run([*prefix, "ip", *args], capture_output=True, text=True,
                              timeout=self.config.command_timeout_s)
        if check and proc.returncode != 0:
            raise RouteError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def current(self) -> dict[str, str]:
        """Our routes in the kernel (those tagged with route_protocol)."""
        return parse_routes(self._ip(["-j", "-4", "route", "show", "proto",
                                      str(self.config.route_protocol)]))

    def sync(self, nodes: Iterable[NodeRoute]) -> RoutePlan:
        """Make our routes match the node list; returns the plan it applied."""
        plan = plan_routes(self.current(), desired_routes(nodes, self.config.node_name))
        proto = str(self.config.route_protocol)
        dev = ["dev", self.config.device] if self.config.device else []
        for cidr, gateway in plan.replace:
            self._ip(["route", "replace", cidr, "via", gateway, *dev, "proto", proto])
        for cidr in plan.delete:
            self._ip(["route", "del", cidr, "proto", proto], check=False)
        if not plan.empty:
            log.info("pod routes synced", node=self.config.node_name,
                     replaced=len(plan.replace), deleted=len(plan.delete))
        return plan

    def clear(self) -> None:
        """Remove every route this syncer owns. Idempotent."""
        for cidr in self.current():
            self._ip(["route", "del", cidr, "proto", str(self.config.route_protocol)],
                     check=False)


def _ns_prefix(netns: str | None) -> list[str]:
    return [] if netns is None else ["nsenter", f"--net=/run/netns/{netns}"]


def ensure_pod_to_pod_not_masqueraded(cluster_cidr: str, netns: str | None = None,
                                      timeout_s: float = 15.0) -> bool:
    """Put `-s CIDR -d CIDR -j RETURN` first in iptables nat POSTROUTING (where Podman's
    netavark puts its masquerade jumps), so pod-to-pod traffic keeps its pod source IP.

    Idempotent: returns True when it inserted the rule, False when it was there.
    """
    ipaddress.IPv4Network(cluster_cidr)
    rule = ["POSTROUTING", "-s", cluster_cidr, "-d", cluster_cidr, "-j", "RETURN"]
    prefix = _ns_prefix(netns)
    check = subprocess.run([*prefix, "iptables", "-w", "-t", "nat", "-C", *rule],
                           capture_output=True, text=True, timeout=timeout_s)
    if check.returncode == 0:
        return False
    proc = subprocess.run([*prefix, "iptables", "-w", "-t", "nat", "-I", rule[0], "1",
                           *rule[1:]], capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RouteError(f"iptables -t nat -I POSTROUTING 1 ... RETURN: {proc.stderr.strip()}")
    return True


def remove_pod_to_pod_exception(cluster_cidr: str, netns: str | None = None,
                                timeout_s: float = 15.0) -> None:
    """Delete the rule added by ensure_pod_to_pod_not_masqueraded. Idempotent."""
    rule = ["POSTROUTING", "-s", cluster_cidr, "-d", cluster_cidr, "-j", "RETURN"]
    prefix = _ns_prefix(netns)
    while subprocess.run([*prefix, "iptables", "-w", "-t", "nat", "-D", *rule],
                         capture_output=True, timeout=timeout_s).returncode == 0:
        pass


@dataclass(frozen=True)
class PodmanNetworkSpec:
    """The node's Podman network: name, pod CIDR and gateway (default: first address)."""

    name: str
    subnet: str
    gateway: str = ""

    def resolved_gateway(self) -> str:
        return self.gateway or str(ipaddress.IPv4Network(self.subnet).network_address + 1)


def ensure_podman_network(spec: PodmanNetworkSpec, netns: str | None = None,
                          env: Mapping[str, str] | None = None, podman: str = "podman",
                          timeout_s: float = 60.0) -> bool:
    """Create the Podman network if absent (through the podman CLI of that host: `netns`
    and `env`, e.g. CONTAINERS_CONF). Returns True when created, False when it existed
    with the same subnet. Raises RouteError when it exists with another subnet or gateway.

    Podman's own DNS (aardvark-dns on the gateway, port 53) is disabled: the node DNS
    server answers pods instead.
    """
    gateway = spec.resolved_gateway()
    prefix = _ns_prefix(netns)
    run_env = None if env is None else dict(env)

    def podman_cmd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, podman, *args], capture_output=True, text=True,
                              timeout=timeout_s, env=run_env)

    inspect = podman_cmd("network", "inspect", spec.name)
    if inspect.returncode == 0:
        info = json.loads(inspect.stdout)[0]
        subnets = [(s.get("subnet"), s.get("gateway")) for s in info.get("subnets", [])]
        if (spec.subnet, gateway) not in subnets:
            raise RouteError(f"podman network {spec.name} exists with subnets {subnets}, "
                             f"wanted {spec.subnet} gateway {gateway}")
        return False
    created = podman_cmd("network", "create", "--disable-dns", "--subnet", spec.subnet,
                         "--gateway", gateway, spec.name)
    if created.returncode != 0:
        raise RouteError(f"podman network create {spec.name}: {created.stderr.strip()}")
    return True
