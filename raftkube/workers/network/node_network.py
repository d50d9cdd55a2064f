"""One node's whole network data path behind one call: routes, service proxy, DNS, ingress.

    agent (informers) --update(ClusterNetworkState)--> NodeNetwork
        RouteSyncer.sync(nodes)          routes to other nodes' pod CIDRs
        ServiceProxy.sync(services)      nftables ClusterIP / NodePort
        DnsServer.update(services)       names for pods (listens on the node address)
        IngressProxy.update(ingresses)   HTTP on the ingress port (when enabled)

Contract: `update` is idempotent; each part is applied even when another fails, then
the first failure is raised (NetworkUpdateError naming every failed part). `close`
removes the routes and the nft table it made and stops the servers; it is idempotent.
The DNS and ingress servers bind in the namespace of this process (run the agent inside
the node's namespace); `netns` only directs the nft/ip commands.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from raftkube.logging_config import LoggingConfig, configure_logging, get_logger
from raftkube.workers.network.dns_server import DnsConfig, DnsServer
from raftkube.workers.network.ingress_proxy import (
    IngressProxy,
    IngressProxyConfig,
    ingress_from_json,
)
from raftkube.workers.network.ingress_routes import Ingress
from raftkube.workers.network.model import ProxyModel, Service, services_from_json
from raftkube.workers.network.nft_rules import RulesConfig
from raftkube.workers.network.pod_routes import (
    NodeRoute,
    RouteConfig,
    RouteSyncer,
    ensure_pod_to_pod_not_masqueraded,
)
from raftkube.workers.network.service_proxy import ServiceProxy, ServiceProxyConfig

log = get_logger(__name__)


class NetworkUpdateError(RuntimeError):
    """Some parts failed to apply; `failures` maps part name to its error."""

    def __init__(self, failures: dict[str, Exception]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"{part}: {exc}" for part, exc in failures.items()))


@dataclass(frozen=True)
class NodeNetworkConfig:
    """Settings of a node's network data path.

    node_name: this node's name (no route to its own pod CIDR).
    node_address: the node's address: DNS listens here, and pods use it as nameserver.
    cluster_cidr: all pod addresses (not masqueraded between pods).
    service_cidr: the Service virtual IP range (unassigned addresses are rejected).
    cluster_domain: DNS domain served from memory.
    dns_port: DNS port on node_address; None = no DNS server on this node.
    dns_upstreams: resolvers for other names; empty = NXDOMAIN for them.
    ingress_port: HTTP port of the ingress proxy; None = no ingress on this node.
    ingress_address: address the ingress proxy binds (default: every address).
    proxy_table: name of the nft table of the service proxy.
    node_ports_on_localhost: NodePorts also on 127.0.0.1 (sets route_localnet).
    masquerade_exception: add the iptables rule keeping pod sources between pods.
    netns: run nft/ip/iptables in /run/netns/NETNS (tests); None = this namespace.
    """

    node_name: str
    node_address: str
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    cluster_domain: str = "cluster.local"
    dns_port: int | None = 53
    dns_upstreams: tuple[tuple[str, int], ...] = ()
    ingress_port: int | None = 80
    ingress_address: str = "0.0.0.0"
    proxy_table: str = "raftkube_proxy"
    node_ports_on_localhost: bool = False
    masquerade_exception: bool = True
    netns: str | None = None


@dataclass(frozen=True)
class ClusterNetworkState:
    """What the node programs: every node, every Service (with ready endpoints), every
    Ingress."""

    nodes: tuple[NodeRoute, ...] = ()
    services: tuple[Service, ...] = ()
    ingresses: tuple[Ingress, ...] = field(default_factory=tuple)


class NodeNetwork:
    """Owns the four parts for one node."""

    def __init__(self, config: NodeNetworkConfig) -> None:
        self.config = config
        self.routes = RouteSyncer(RouteConfig(node_name=config.node_name, netns=config.netns))
        self.proxy = ServiceProxy(ServiceProxyConfig(netns=config.netns, rules=RulesConfig(
            table=config.proxy_table, cluster_cidr=config.cluster_cidr,
            service_cidr=config.service_cidr,
            node_ports_on_localhost=config.node_ports_on_localhost)))
        self.dns = None if config.dns_port is None else DnsServer(DnsConfig(
            listen_address=config.node_address, port=config.dns_port,
            cluster_domain=config.cluster_domain, upstreams=config.dns_upstreams))
        self.ingress = None if config.ingress_port is None else IngressProxy(
            IngressProxyConfig(listen_address=config.ingress_address, port=config.ingress_port))

    def start(self) -> NodeNetwork:
        """Start the DNS and ingress servers and the masquerade exception."""
        if self.config.masquerade_exception:
            ensure_pod_to_pod_not_masqueraded(self.config.cluster_cidr, self.config.netns)
        if self.dns is not None:
            self.dns.start()
        if self.ingress is not None:
            self.ingress.start()
        return self

    def update(self, state: ClusterNetworkState) -> None:
        """Apply `state` to every part; raises NetworkUpdateError if any part failed."""
        failures: dict[str, Exception] = {}
        steps = [("routes", lambda: self.routes.sync(state.nodes)),
                 ("service_proxy", lambda: self.proxy.sync(ProxyModel(state.services)))]
        if self.dns is not None:
            dns = self.dns
            steps.append(("dns", lambda: dns.update(state.services)))
        if self.ingress is not None:
            ingress = self.ingress
            steps.append(("ingress", lambda: ingress.update(state.ingresses, state.services)))
        for name, step in steps:
            try:
                step()
            except Exception as exc:
                failures[name] = exc
                log.error("node network part failed", part=name, error=str(exc))
        if failures:
            raise NetworkUpdateError(failures)

    def close(self) -> None:
        """Stop servers, delete the nft table and our routes. Idempotent."""
        if self.ingress is not None:
            self.ingress.close()
        if self.dns is not None:
            self.dns.close()
        self.proxy.close()
        self.routes.clear()


def state_from_json(data: dict) -> ClusterNetworkState:
    """A ClusterNetworkState from plain JSON: {"nodes": [{"name", "address", "pod_cidr"}],
    "services": [...], "ingresses": [...]} (formats of services_from_json and
    ingress_from_json)."""
    try:
        nodes = tuple(NodeRoute(n["name"], n["address"], n.get("pod_cidr", ""))
                      for n in data.get("nodes", []))
    except KeyError as exc:
        raise ValueError(f"nodes: missing field {exc}") from exc
    ingresses, _ = ingress_from_json({"ingresses": data.get("ingresses", [])})
    return ClusterNetworkState(nodes=nodes,
                               services=tuple(services_from_json(data.get("services", []))),
                               ingresses=tuple(ingresses))


def main(argv: Sequence[str] | None = None) -> None:
    """Run a node's network from a JSON state file; SIGHUP reloads it, SIGTERM cleans up.
    Prints `ready` once the first state is applied and `applied N` after each reload."""
    parser = argparse.ArgumentParser(description="raftkube node network data path")
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--node-address", required=True)
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
    parser.add_argument("--service-cidr", default="10.96.0.0/16")
    parser.add_argument("--dns-port", type=int, default=53)
    parser.add_argument("--ingress-port", type=int, default=80)
    parser.add_argument("--table", default="raftkube_proxy")
    parser.add_argument("--state", required=True, help="JSON file, see state_from_json")
    args = parser.parse_args(argv)
    configure_logging(LoggingConfig(component="node-network"))
    network = NodeNetwork(NodeNetworkConfig(
        node_name=args.node_name, node_address=args.node_address,
        cluster_cidr=args.cluster_cidr, service_cidr=args.service_cidr,
        dns_port=args.dns_port, ingress_port=args.ingress_port, proxy_table=args.table))
    reload = threading.Event()
    stop = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    network.start()
    applied = 0
    try:
        while True:
            try:
                with open(args.state, encoding="utf-8") as fh:
                    network.update(state_from_json(json.load(fh)))
                applied += 1
                print("ready" if applied == 1 else f"applied {applied}", flush=True)
            except (OSError, ValueError, NetworkUpdateError) as exc:
                print(f"error {exc}", flush=True)
            while not reload.is_set() and not stop.is_set():
                stop.wait(0.1)
            if stop.is_set():
                break
            reload.clear()
    finally:
        network.close()


if __name__ == "__main__":
    main()
