"""The node DNS server answering real DNS queries (dnslib client) over UDP and TCP."""

from __future__ import annotations

import socket
import socketserver
import time
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from raftkube.workers.network import dns_server
from raftkube.workers.network.dns_server import (
    DnsConfig,
    DnsServer,
    build_records,
    pod_dns_settings,
    pod_resolv_conf,
)
from raftkube.workers.network.model import Endpoint, Service, ServicePort

WEB = Service("default", "web", "10.96.0.10",
              ports=(ServicePort(80, 8080, name="http"),),
              endpoints=(Endpoint("10.244.1.2"), Endpoint("10.244.2.3")))
DB = Service("prod", "db", None, ports=(ServicePort(5432, 5432, name="pg"),),
             endpoints=(Endpoint("10.244.1.7", hostname="db-0"),
                        Endpoint("10.244.2.8", hostname="db-1")))
RAW = Service("prod", "raw", None, ports=(ServicePort(9000, 9000),),
              endpoints=(Endpoint("10.244.3.4"),))


def ask(server: DnsServer, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    raw = DNSRecord.question(name, qtype).send("127.0.0.1", server.port, tcp=tcp, timeout=3)
    return DNSRecord.parse(raw)


def a_values(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


@pytest.fixture
def upstream() -> Iterator[DnsServer]:
    """Stands in for the node's resolver: serves its own zone, on loopback."""
    server = DnsServer(DnsConfig(listen_address="127.0.0.1", port=0,
                                 cluster_domain="upstream.test")).start()
    server.update([Service("x", "outside", "192.0.2.77", ports=(ServicePort(80, 80),))])
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def dns(upstream: DnsServer) -> Iterator[DnsServer]:
    server = DnsServer(DnsConfig(listen_address="127.0.0.1", port=0,
                                 upstreams=(("127.0.0.1", upstream.port),))).start()
    server.update([WEB, DB, RAW])
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("tcp", [False, True])
def test_service_a_record_is_the_cluster_ip(dns: DnsServer, tcp: bool) -> None:
    reply = ask(dns, "web.default.svc.cluster.local", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR
    assert a_values(reply) == ["10.96.0.10"]


def test_srv_record_names_port_and_service(dns: DnsServer) -> None:
    reply = ask(dns, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr] == [
        (80, "web.default.svc.cluster.local.")]
    assert [str(rr.rdata) for rr in reply.ar] == ["10.96.0.10"]


def test_headless_service_answers_every_ready_endpoint_and_pod_names(dns: DnsServer) -> None:
    assert a_values(ask(dns, "db.prod.svc.cluster.local")) == ["10.244.1.7", "10.244.2.8"]
    assert a_values(ask(dns, "db-1.db.prod.svc.cluster.local")) == ["10.244.2.8"]
    assert a_values(ask(dns, "DB-0.DB.prod.svc.cluster.local.")) == ["10.244.1.7"]
    srv = ask(dns, "_pg._tcp.db.prod.svc.cluster.local", "SRV")
    assert sorted(str(rr.rdata.target) for rr in srv.rr) == [
        "db-0.db.prod.svc.cluster.local.", "db-1.db.prod.svc.cluster.local."]
    assert a_values(ask(dns, "10-244-3-4.raw.prod.svc.cluster.local")) == ["10.244.3.4"]


def test_unknown_cluster_names_get_a_fast_nxdomain(dns: DnsServer) -> None:
    started = time.monotonic()
    reply = ask(dns, "nope.default.svc.cluster.local")
    assert time.monotonic() - started < 1
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert ask(dns, "web.other.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
    nodata = ask(dns, "web.default.svc.cluster.local", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    assert ask(dns, "default.svc.cluster.local").header.rcode == RCODE.NOERROR


def test_outside_names_are_forwarded_to_the_upstream(dns: DnsServer) -> None:
    for tcp in (False, True):
        reply = ask(dns, "outside.x.svc.upstream.test", tcp=tcp)
        assert a_values(reply) == ["192.0.2.77"]
    assert ask(dns, "missing.upstream.test").header.rcode == RCODE.NXDOMAIN


def test_without_upstream_outside_names_are_nxdomain() -> None:
    server = DnsServer(DnsConfig(listen_address="127.0.0.1", port=0)).start()
    try:
        assert ask(server, "example.com").header.rcode == RCODE.NXDOMAIN
    finally:
        server.close()
        server.close()


def test_update_replaces_names_and_custom_domain_works() -> None:
    server = DnsServer(DnsConfig(listen_address="127.0.0.1", port=0,
                                 cluster_domain="corp.internal")).start()
    try:
        server.update([WEB])
        assert a_values(ask(server, "web.default.svc.corp.internal")) == ["10.96.0.10"]
        assert ask(server, "web.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN
        server.update([])
        assert ask(server, "web.default.svc.corp.internal").header.rcode == RCODE.NXDOMAIN
    finally:
        server.close()


def test_resolv_conf_for_pods() -> None:
    assert pod_resolv_conf("prod", "10.0.0.10") == (
        "nameserver 10.0.0.10\n"
        "search prod.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n")


def test_pod_dns_settings_match_resolv_conf() -> None:
    settings = pod_dns_settings("prod", "10.0.0.10", "corp.internal")
    assert settings.servers == ("10.0.0.10",)
    assert settings.searches == ("prod.svc.corp.internal", "svc.corp.internal",
                                 "corp.internal")
    assert settings.options == ("ndots:5",)


def test_records_are_pure_and_hold_intermediate_names() -> None:
    records = build_records([WEB], "cluster.local")
    assert "svc.cluster.local" in records.names
    assert records == build_records([WEB], "cluster.local.")


def test_dead_upstream_gives_servfail_within_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))  # bound, never answers
        server = DnsServer(DnsConfig(listen_address="127.0.0.1", port=0,
                                     upstreams=(hole.getsockname(),),
                                     upstream_timeout_s=0.5)).start()
        try:
            started = time.monotonic()
            reply = ask(server, "example.com")
            assert reply.header.rcode == RCODE.SERVFAIL
            assert time.monotonic() - started < 2.5
            # cluster names do not wait for the upstream
            server.update([WEB])
            assert a_values(ask(server, "web.default.svc.cluster.local")) == ["10.96.0.10"]
        finally:
            server.close()


def test_a_picked_port_taken_for_tcp_is_replaced_by_another(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 0: when the UDP port the kernel picked is already held for TCP, pick again."""
    squatters: list[socket.socket] = []
    bind_udp = dns_server._UDPServer.server_bind

    def bind_and_squat_tcp(self: socketserver.UDPServer) -> None:
        bind_udp(self)
        if not squatters:
            squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            squatter.bind(("127.0.0.1", self.server_address[1]))
            squatter.listen()
            squatters.append(squatter)

    monkeypatch.setattr(dns_server._UDPServer, "server_bind", bind_and_squat_tcp)
    server = DnsServer(DnsConfig(listen_address="127.0.0.1", port=0)).start()
    try:
        assert squatters and server.port != squatters[0].getsockname()[1]
        server.update([WEB])
        for tcp in (False, True):
            assert a_values(ask(server, "web.default.svc.cluster.local", tcp=tcp)) == [
                "10.96.0.10"]
    finally:
        server.close()
        for squatter in squatters:
            squatter.close()


def test_a_fixed_port_taken_for_tcp_is_an_error_and_releases_udp() -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        with pytest.raises(OSError):
            DnsServer(DnsConfig(listen_address="127.0.0.1", port=port)).start()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", port))
        udp.close()
    finally:
        squatter.close()
