"""The node's DNS server (dnslib, UDP and TCP): cluster names from memory, the rest
forwarded to the node's resolver or refused with NXDOMAIN.

    caller --update(services)--> build_records (pure) --> RecordSet (immutable, swapped)
    query --> answer_query (pure, against the current RecordSet)
                 name under cluster domain: A / SRV / NODATA / NXDOMAIN, at once
                 other names: forward to upstream (UDP, TCP when truncated) | NXDOMAIN

Names served (DOMAIN = cluster domain, default cluster.local):
  SERVICE.NS.svc.DOMAIN                 A: cluster IP; headless: every ready endpoint IP
  _PORT._PROTO.SERVICE.NS.svc.DOMAIN    SRV per named port (headless: one per endpoint)
  HOSTNAME.SERVICE.NS.svc.DOMAIN        A: endpoint with that hostname (StatefulSet pod)
  IP-WITH-DASHES.SERVICE.NS.svc.DOMAIN  A: headless endpoint without a hostname

Contract: `update` is atomic for readers (a query sees the old or the new set, never a
mix) and idempotent. `close` is idempotent.
"""

from __future__ import annotations

import argparse
import json
import socketserver
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from raftkube.logging_config import LoggingConfig, configure_logging, get_logger
from raftkube.workers.network.model import (
    Endpoint,
    Service,
    ServicePort,
    services_from_json,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class DnsConfig:
    """Settings of one node's DNS server.

    listen_address: address to bind (UDP and TCP).
    port: port to bind; 0 picks a free one (see `DnsServer.port`).
    cluster_domain: the domain served from memory.
    upstreams: (address, port) resolvers for names outside the cluster domain; empty =
        answer NXDOMAIN for them.
    ttl_s: TTL of cluster answers.
    negative_ttl_s: TTL in the SOA of NXDOMAIN/NODATA answers.
    upstream_timeout_s: how long to wait for an upstream before answering SERVFAIL.
    """

    listen_address: str = "0.0.0.0"
    port: int = 53
    cluster_domain: str = "cluster.local"
    upstreams: tuple[tuple[str, int], ...] = ()
    ttl_s: int = 5
    negative_ttl_s: int = 5
    upstream_timeout_s: float = 2.0


@dataclass(frozen=True)
class RecordSet:
    """Immutable answers for the cluster domain (lower-case names without trailing dot)."""

    a: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    srv: Mapping[str, tuple[tuple[int, int, int, str], ...]] = field(default_factory=dict)
    names: frozenset[str] = frozenset()


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def _endpoint_label(ep: Endpoint) -> str:
    return ep.hostname.lower() if ep.hostname else ep.ip.replace(".", "-")


def build_records(services: Iterable[Service], cluster_domain: str) -> RecordSet:
    """Pure: every name the cluster domain answers for these services.

    `names` also holds the intermediate names (e.g. `NS.svc.DOMAIN`), which answer NODATA
    rather than NXDOMAIN.
    """
    domain = _norm(cluster_domain)
    a: dict[str, list[str]] = {}
    srv: dict[str, list[tuple[int, int, int, str]]] = {}
    for svc in services:
        base = f"{svc.name}.{svc.namespace}.svc.{domain}".lower()
        if svc.headless:
            eps = sorted(svc.endpoints, key=lambda e: e.ip)
            a.setdefault(base, []).extend(e.ip for e in eps)
            for ep in eps:
                a.setdefault(f"{_endpoint_label(ep)}.{base}", []).append(ep.ip)
        else:
            assert svc.cluster_ip is not None
            a.setdefault(base, []).append(svc.cluster_ip)
        for port in svc.ports:
            if not port.name:
                continue
            name = f"_{port.name}._{port.protocol.lower()}.{base}".lower()
            srv[name] = _srv_targets(svc, port, base)
    names: set[str] = set()
    for full in [*a, *srv]:
        labels = full.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            names.add(suffix)
            if suffix == domain:
                break
    names.add(domain)
    return RecordSet(a={k: tuple(dict.fromkeys(v)) for k, v in a.items()},
                     srv={k: tuple(v) for k, v in srv.items()}, names=frozenset(names))


def _srv_targets(svc: Service, port: ServicePort, base: str
                 ) -> list[tuple[int, int, int, str]]:
    if not svc.headless:
        return [(0, 100, port.port, base)]
    eps = sorted(svc.endpoints, key=lambda e: e.ip)
    weight = max(1, 100 // max(1, len(eps)))
    return [(0, weight, ep.port_for(port), f"{_endpoint_label(ep)}.{base}") for ep in eps]


def pod_resolv_conf(namespace: str, nameserver: str, cluster_domain: str = "cluster.local",
                    ndots: int = 5) -> str:
    """The /etc/resolv.conf a pod in `namespace` gets: this node's DNS, the Kubernetes
    search path (so `web` resolves inside the same namespace) and ndots."""
    d = _norm(cluster_domain)
    return (f"nameserver {nameserver}\n"
            f"search {namespace}.svc.{d} svc.{d} {d}\n"
            f"options ndots:{ndots}\n")


@dataclass(frozen=True)
class PodDnsSettings:
    """The resolver settings of a pod, as container runtimes take them (Podman:
    dns_server, dns_search, dns_option); same content as `pod_resolv_conf`."""

    servers: tuple[str, ...]
    searches: tuple[str, ...]
    options: tuple[str, ...]


def pod_dns_settings(namespace: str, nameserver: str, cluster_domain: str = "cluster.local",
                     ndots: int = 5) -> PodDnsSettings:
    """Resolver settings for a pod in `namespace` using the node DNS at `nameserver`."""
    d = _norm(cluster_domain)
    return PodDnsSettings(servers=(nameserver,),
                          searches=(f"{namespace}.svc.{d}", f"svc.{d}", d),
                          options=(f"ndots:{ndots}",))


def answer_query(request: DNSRecord, records: RecordSet, config: DnsConfig
                 ) -> DNSRecord | None:
    """Pure: the reply for a cluster-domain question, or None when the name is outside the
    cluster domain (to be forwarded)."""
    domain = _norm(config.cluster_domain)
    reply = request.reply()
    qname = _norm(str(request.q.qname))
    if qname != domain and not qname.endswith("." + domain):
        return None
    qtype = request.q.qtype
    if qname not in records.names:
        reply.header.rcode = RCODE.NXDOMAIN
        _add_soa(reply, domain, config)
        return reply
    ttl = config.ttl_s
    if qtype in (QTYPE.A, QTYPE.ANY):
        for ip in records.a.get(qname, ()):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=ttl))
    if qtype in (QTYPE.SRV, QTYPE.ANY):
        for prio, weight, port, target in records.srv.get(qname, ()):
            reply.add_answer(RR(request.q.qname, QTYPE.SRV, ttl=ttl,
                                rdata=SRV(prio, weight, port, target + ".")))
            for ip in records.a.get(target, ()):
                reply.add_ar(RR(target + ".", QTYPE.A, rdata=A(ip), ttl=ttl))
    if not reply.rr:
        _add_soa(reply, domain, config)
    return reply


def _add_soa(reply: DNSRecord, domain: str, config: DnsConfig) -> None:
    reply.add_auth(RR(domain + ".", QTYPE.SOA, ttl=config.negative_ttl_s, rdata=SOA(
        f"ns.dns.{domain}.", f"hostmaster.{domain}.",
        (1, 7200, 1800, 86400, config.negative_ttl_s))))


class _Resolver(BaseResolver):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        answer = answer_query(request, self.server.records, self.server.config)
        if answer is not None:
            return answer
        return self.server.forward(request, handler.protocol == "tcp")


class _QuietLogger(DNSLogger):
    def __init__(self) -> None:
        super().__init__(log="-request,-reply,-truncated,-recv,-send,-data", prefix=False)

    def log_error(self, handler: DNSHandler, e: Exception) -> None:
        log.warning("dns request error", client=str(handler.client_address), error=str(e))


class _UDPServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    allow_reuse_address = True
    daemon_threads = True


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


_EPHEMERAL_PORT_ATTEMPTS = 20


class DnsServer:
    """One node's DNS server on UDP and TCP. Start with `start()`, stop with `close()`."""

    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self.records = build_records((), config.cluster_domain)
        self._servers: list[DNSServer] = []
        self._lock = threading.Lock()
        self.port = config.port

    def update(self, services: Iterable[Service]) -> None:
        """Replace the served names with those of `services` (atomic for readers)."""
        records = build_records(services, self.config.cluster_domain)
        with self._lock:
            self.records = records

    def start(self) -> DnsServer:
        """Bind UDP and TCP (same port) and serve in background threads.

        With port 0 the kernel picks a free UDP port; that port may already be taken
        for TCP by another process, so a few fresh picks are tried before giving up.
        A fixed port that cannot be bound raises OSError at once.
        """
        resolver = _Resolver(self)
        attempts = _EPHEMERAL_PORT_ATTEMPTS if self.config.port == 0 else 1
        for attempt in range(1, attempts + 1):
            udp = DNSServer(resolver, address=self.config.listen_address,
                            port=self.config.port, logger=_QuietLogger(), server=_UDPServer)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(resolver, address=self.config.listen_address, port=port,
                                tcp=True, logger=_QuietLogger(), server=_TCPServer)
                break
            except OSError:
                udp.server.server_close()
                if attempt == attempts:
                    raise
        self.port = port
        self._servers = [udp, tcp]
        for srv in self._servers:
            threading.Thread(target=srv.server.serve_forever, kwargs={"poll_interval": 0.05},
                             name=f"dns-{self.port}", daemon=True).start()
        log.info("dns server listening", address=self.config.listen_address, port=self.port)
        return self

    def forward(self, request: DNSRecord, tcp: bool) -> DNSRecord:
        """Ask the upstreams in order; NXDOMAIN without upstreams, SERVFAIL if none answer."""
        if not self.config.upstreams:
            reply = request.reply()
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        packet = request.pack()
        for address, port in self.config.upstreams:
            try:
                raw = request.send(address, port, tcp=tcp,
                                   timeout=self.config.upstream_timeout_s)
                reply = DNSRecord.parse(raw)
                if reply.header.tc and not tcp:
                    reply = DNSRecord.parse(DNSRecord.parse(packet).send(
                        address, port, tcp=True, timeout=self.config.upstream_timeout_s))
                return reply
            except (OSError, ValueError) as exc:
                log.warning("dns upstream failed", upstream=f"{address}:{port}", error=str(exc))
        reply = request.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return reply

    def close(self) -> None:
        """Stop serving and release the sockets. Idempotent."""
        servers, self._servers = self._servers, []
        for srv in servers:
            srv.server.shutdown()
            srv.server.server_close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run a DNS server from a JSON records file until killed (prints `ready PORT`)."""
    parser = argparse.ArgumentParser(description="raftkube node DNS server")
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--domain", default="cluster.local")
    parser.add_argument("--upstream", action="append", default=[],
                        help="IP:PORT of a resolver for other names (repeatable)")
    parser.add_argument("--records", required=True, help="JSON file of services")
    args = parser.parse_args(argv)
    configure_logging(LoggingConfig(component="dns"))
    upstreams = tuple((u.rsplit(":", 1)[0], int(u.rsplit(":", 1)[1])) for u in args.upstream)
    server = DnsServer(DnsConfig(listen_address=args.listen, port=args.port,
                                 cluster_domain=args.domain, upstreams=upstreams))
    with open(args.records, encoding="utf-8") as fh:
        server.update(services_from_json(json.load(fh)))
    server.start()
    print(f"ready {server.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
