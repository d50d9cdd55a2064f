"""The ingress reverse proxy on loopback, with real HTTP backends."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from raftkube.testing.echo_http import make_handler
from raftkube.testing.ports import free_port
from raftkube.workers.network.ingress_proxy import IngressProxy, IngressProxyConfig
from raftkube.workers.network.ingress_routes import (
    BackendRef,
    Ingress,
    IngressPath,
    IngressRule,
    build_route_table,
    match_route,
)
from raftkube.workers.network.model import Endpoint, ModelError, Service, ServicePort

ROOT = str(Path(__file__).resolve().parents[2])


class Backend:
    def __init__(self, name: str) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(name))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def svc(name: str, *ports: int, ns: str = "default") -> Service:
    return Service(ns, name, "10.96.0.1", ports=(ServicePort(80, 80, name="http"),),
                   endpoints=tuple(Endpoint("127.0.0.1", ports=(("http", p),)) for p in ports))


def path(p: str, service: str, kind: str = "Prefix", port: int | str = 80) -> IngressPath:
    return IngressPath(p, kind, BackendRef("default", service, port))


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    made = {n: Backend(n) for n in ("api", "api2", "v2", "wild", "fallback")}
    try:
        yield made
    finally:
        for b in made.values():
            b.close()


@pytest.fixture
def proxy(backends: dict[str, Backend]) -> Iterator[IngressProxy]:
    p = IngressProxy(IngressProxyConfig(listen_address="127.0.0.1", port=0)).start()
    ingress = Ingress("default", "site", rules=(
        IngressRule("a.test", (path("/api", "api"), path("/api/v2", "v2", "Exact"))),
        IngressRule("*.wild.test", (path("/", "wild"),)),
        IngressRule("", (path("/down", "down"), path("/empty", "empty"))),
    ), default_backend=BackendRef("default", "fallback", "http"))
    p.update([ingress], [
        svc("api", backends["api"].port, backends["api2"].port),
        svc("v2", backends["v2"].port), svc("wild", backends["wild"].port),
        svc("fallback", backends["fallback"].port), svc("down", free_port()), svc("empty")])
    try:
        yield p
    finally:
        p.close()
        p.close()


def get(conn: http.client.HTTPConnection, host: str, target: str,
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn.request("GET", target, headers={"Host": host, **(headers or {})})
    resp = conn.getresponse()
    return resp.status, resp.read()


def pod(body: bytes) -> str:
    return json.loads(body)["pod"]


def test_host_and_path_rules_pick_the_backend(proxy: IngressProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    cases = [("a.test", "/api/v2", "v2"), ("a.test:8080", "/api/v2/", "api*"),
             ("a.test", "/api/v1/x?q=1", "api*"), ("A.TEST", "/api", "api*"),
             ("a.test", "/apix", "fallback"), ("x.wild.test", "/anything", "wild"),
             ("x.y.wild.test", "/", "fallback"), ("other", "/", "fallback")]
    for host, target, want in cases:
        status, body = get(conn, host, target)
        assert status == 200, (host, target, body)
        got = pod(body)
        assert got.startswith(want[:-1]) if want.endswith("*") else got == want, (host, target)


def test_round_robin_and_keep_alive_to_client_and_backends(proxy: IngressProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    seen: dict[str, set[int]] = {}
    for _ in range(20):
        status, body = get(conn, "a.test", "/api")
        assert status == 200
        data = json.loads(body)
        seen.setdefault(data["pod"], set()).add(data["peer_port"])
    assert set(seen) == {"api", "api2"}
    # backend connections are pooled: far fewer source ports than requests
    assert sum(len(ports) for ports in seen.values()) <= 4, seen
    assert conn.sock is not None  # the client connection stayed open for all 20


def test_forwarded_headers(proxy: IngressProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    _, body = get(conn, "a.test", "/api", {"X-Forwarded-For": "203.0.113.9"})
    headers = json.loads(body)["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "a.test"
    assert headers["host"] == "a.test"


def test_no_ready_endpoint_is_503_and_unreachable_is_502_with_clear_bodies(
        proxy: IngressProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    status, body = get(conn, "any", "/empty")
    assert status == 503
    assert b"service default/empty:80 has no ready endpoint" in body
    status, body = get(conn, "any", "/down")  # still the same kept-alive connection
    assert status == 502
    assert b"no endpoint of service default/down:80 answered" in body
    assert b"connect" in body


def test_request_and_response_bodies_stream(proxy: IngressProxy) -> None:
    payload = b"x" * (3 * 1024 * 1024 + 17)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("POST", "/api", body=payload, headers={"Host": "a.test"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["body_len"] == len(payload)

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b"y" * 10000

    conn.request("POST", "/api", body=chunks(), headers={"Host": "a.test"},
                 encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["body_len"] == 500000


def test_live_update_changes_routes(proxy: IngressProxy, backends: dict[str, Backend]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    proxy.update([Ingress("default", "site", rules=(
        IngressRule("a.test", (path("/api", "wild"),)),))], [svc("wild", backends["wild"].port)])
    status, body = get(conn, "a.test", "/api/x")
    assert status == 200 and pod(body) == "wild"
    status, body = get(conn, "b.test", "/")
    assert status == 404 and b"no ingress rule matches host 'b.test'" in body


def test_bad_ingress_is_refused_and_routes_stay() -> None:
    with pytest.raises(ModelError, match=r"ingresses\[default/x\]\.rules\[0\]\.http"
                                         r"\.paths\[0\]\.pathType"):
        build_route_table([Ingress("default", "x", rules=(
            IngressRule("a", (path("/", "s", "Regex"),)),))])


def test_match_prefers_exact_then_longest_prefix() -> None:
    table = build_route_table([Ingress("d", "i", rules=(IngressRule("", (
        path("/", "root"), path("/foo", "foo"), path("/foo", "foo-exact", "Exact"),
        path("/foo/bar/", "bar"))),))])

    def name(p: str) -> str | None:
        ref = match_route(table, "h", p)
        return ref.service if ref else None

    assert name("/foo") == "foo-exact"
    assert name("/foo/") == "foo"
    assert name("/foo/bar") == "bar"
    assert name("/foo/barn") == "foo"
    assert name("/foobar") == "root"


def test_backend_breaking_off_its_response_gives_502(proxy: IngressProxy,
                                                      backends: dict[str, Backend]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def broken() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..")
        conn.close()

    thread = threading.Thread(target=broken, daemon=True)
    thread.start()
    try:
        proxy.update([Ingress("default", "b", rules=(IngressRule("", (path("/", "half"),)),))],
                     [svc("half", listener.getsockname()[1])])
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        status, body = get(conn, "x", "/")
        assert status == 502
        assert b"broke off its response" in body
    finally:
        thread.join(5)
        listener.close()


def test_expect_100_continue_is_answered_by_the_proxy(proxy: IngressProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"POST /api HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        data = b""
        while not data.endswith(b"}"):
            chunk = s.recv(65536)
            assert chunk
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK")
        assert b'"body_len": 5' in data


def _echo_process(port: int, name: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "raftkube.testing.echo_http", "--bind",
                             "127.0.0.1", "--port", str(port), "--name", name],
                            stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def test_backend_restart_does_not_fail_requests_on_stale_pooled_connections(
        proxy: IngressProxy) -> None:
    port = free_port()
    first = _echo_process(port, "before")
    second: subprocess.Popen | None = None
    try:
        proxy.update([Ingress("default", "r", rules=(IngressRule("", (path("/", "r"),)),))],
                     [svc("r", port)])
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        for _ in range(3):
            status, body = get(conn, "x", "/")
            assert status == 200 and pod(body) == "before"
        first.kill()  # the proxy's pooled connections to it are now dead
        first.wait()
        second = _echo_process(port, "after")
        for _ in range(5):
            status, body = get(conn, "x", "/")
            assert status == 200, body
            assert pod(body) == "after"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
