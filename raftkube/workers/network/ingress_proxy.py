"""HTTP/1.1 reverse proxy for Ingress (asyncio): host/path routing to Service endpoints.

    client --keep-alive--> IngressProxy --pooled keep-alive--> endpoint (round robin)
              read head -> match_route(host, path) -> BackendRef
              BackendRef -> ready endpoints of the Service (from update())
              head rewritten (X-Forwarded-For/Proto/Host, hop-by-hop removed)
              bodies streamed both ways (Content-Length, chunked, or until close)

Answers of its own, each with a text body saying why:
  404 no rule and no default backend; 503 the service has no ready endpoint;
  502 no endpoint could be reached or it broke the response; 400 malformed request.

Contract: `update()` swaps routes and backends atomically for new requests; requests in
flight finish on what they started with. `start()` binds; `close()` is idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from raftkube.logging_config import LoggingConfig, configure_logging, get_logger
from raftkube.workers.network.ingress_routes import (
    BackendRef,
    Ingress,
    IngressPath,
    IngressRule,
    RouteTable,
    build_route_table,
    match_route,
)
from raftkube.workers.network.model import Service, services_from_json

log = get_logger(__name__)

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
SMALL_BODY = 65536  # responses up to this size are relayed in one write
REASONS = {400: "Bad Request", 404: "Not Found", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class IngressProxyConfig:
    """Settings of one node's ingress proxy.

    listen_address / port: where clients connect (port 0 picks a free one).
    connect_timeout_s: limit to open a connection to an endpoint.
    response_timeout_s: limit for an endpoint's response head after the request was sent.
    client_idle_timeout_s: a kept-alive client connection idle this long is closed.
    max_idle_per_backend: idle pooled connections kept per endpoint.
    max_head_bytes: largest accepted request/response head.
    """

    listen_address: str = "0.0.0.0"
    port: int = 80
    connect_timeout_s: float = 3.0
    response_timeout_s: float = 60.0
    client_idle_timeout_s: float = 60.0
    max_idle_per_backend: int = 64
    max_head_bytes: int = 65536


class _BadRequest(Exception):
    pass


class _BackendFailed(Exception):
    pass


@dataclass(frozen=True)
class _State:
    routes: RouteTable
    backends: dict[tuple[str, str, str], tuple[tuple[str, int], ...]]


def backends_for(services: Iterable[Service]) -> dict[tuple[str, str, str],
                                                       tuple[tuple[str, int], ...]]:
    """Pure: (namespace, service, port number or name) -> ready (ip, port) endpoints."""
    out: dict[tuple[str, str, str], tuple[tuple[str, int], ...]] = {}
    for svc in services:
        for port in svc.ports:
            eps = tuple(sorted((e.ip, e.port_for(port)) for e in svc.endpoints))
            out[(svc.namespace, svc.name, str(port.port))] = eps
            if port.name:
                out[(svc.namespace, svc.name, port.name)] = eps
    return out


def _parse_head(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # latin-1 never fails; kept for clarity
        raise _BadRequest("head is not text") from exc
    lines = text.split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return start, headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _connection_tokens(headers: list[tuple[str, str]]) -> set[str]:
    tokens = set()
    for k, v in headers:
        if k.lower() == "connection":
            tokens |= {t.strip().lower() for t in v.split(",")}
    return tokens


def _framing(headers: list[tuple[str, str]]) -> tuple[str, int]:
    """("chunked", 0) | ("length", N) | ("none", 0)."""
    te = _get(headers, "transfer-encoding")
    if te is not None and "chunked" in te.lower():
        return "chunked", 0
    cl = _get(headers, "content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError as exc:
            raise _BadRequest(f"Content-Length {cl!r} is not a number") from exc
        if n < 0:
            raise _BadRequest(f"Content-Length {cl!r} is negative")
        return "length", n
    return "none", 0


async def _copy_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     kind: str, length: int) -> None:
    """Stream one body from reader to writer with the framing it came with."""
    if kind == "length":
        remaining = length
        while remaining:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise ConnectionError("body ended early")
            writer.write(data)
            remaining -= len(data)
            if writer.transport.get_write_buffer_size() > 262144:
                await writer.drain()
    elif kind == "chunked":
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        break
                break
            remaining = size + 2
            while remaining:
                data = await reader.read(min(remaining, 65536))
                if not data:
                    raise ConnectionError("chunked body ended early")
                writer.write(data)
                remaining -= len(data)
            await writer.drain()
    elif kind == "eof":
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    await writer.drain()


class IngressProxy:
    """Serves Ingress rules on one address; runs its own event loop thread or an existing
    loop (`serve()` coroutine)."""

    def __init__(self, config: IngressProxyConfig) -> None:
        self.config = config
        self._state = _State(build_route_table(()), {})
        self._rr = itertools.count()
        self._pool: dict[tuple[str, int], deque[tuple[asyncio.StreamReader,
                                                     asyncio.StreamWriter]]] = {}
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = config.port

    # ---- configuration -----------------------------------------------------------------
    def update(self, ingresses: Iterable[Ingress], services: Iterable[Service]) -> None:
        """Replace the routes and backends (atomic for new requests). Raises ModelError
        for bad Ingress input, leaving the previous routes in place."""
        self._state = _State(build_route_table(tuple(ingresses)), backends_for(services))

    # ---- lifecycle --------------------------------------------------------------------
    async def serve(self) -> None:
        """Bind and serve on the running loop until close()."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._handle_client, self.config.listen_address, self.config.port,
            limit=self.config.max_head_bytes, reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("ingress proxy listening", address=self.config.listen_address, port=self.port)

    def start(self) -> IngressProxy:
        """Serve in a background thread with its own loop; returns once bound."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.serve())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="ingress-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for conns in self._pool.values():
            for _, w in conns:
                w.close()
        self._pool.clear()

    def close(self) -> None:
        """Stop listening and drop pooled connections. Idempotent."""
        loop, thread = self._loop, self._thread
        if thread is not None and loop is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        self._thread = None

    # ---- request handling ----------------------------------------------------------------
    async def _handle_client(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        try:
            while True:
                try:
                    async with asyncio.timeout(self.config.client_idle_timeout_s):
                        head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                    return
                except asyncio.LimitOverrunError:
                    await self._reply(writer, 400, "request head too large", close=True)
                    return
                try:
                    keep = await self._one_request(head, reader, writer, client_ip)
                except _BadRequest as exc:
                    await self._reply(writer, 400, f"bad request: {exc}", close=True)
                    return
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, status: int, text: str,
                     close: bool) -> None:
        body = f"{status} {REASONS.get(status, '')}: {text}\n".encode()
        head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()

    async def _one_request(self, head: bytes, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter, client_ip: str) -> bool:
        """Serve one request; returns whether the client connection stays open."""
        start, headers = _parse_head(head[:-4])
        parts = start.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(f"request line {start[:100]!r}")
        method, target, version = parts
        tokens = _connection_tokens(headers)
        client_keep = ("close" not in tokens) if version == "HTTP/1.1" else (
            "keep-alive" in tokens)
        body_kind, body_len = _framing(headers)
        if body_kind == "none":
            body_kind = "length"
        host = _get(headers, "host") or ""
        state = self._state
        backend = match_route(state.routes, host, target)
        if backend is None:
            await self._drain_body(reader, body_kind, body_len)
            await self._reply(writer, 404, f"no ingress rule matches host {host!r} path "
                              f"{target.split('?', 1)[0]!r}", close=not client_keep)
            return client_keep
        endpoints = state.backends.get((backend.namespace, backend.service, str(backend.port)))
        if not endpoints:
            await self._drain_body(reader, body_kind, body_len)
            await self._reply(writer, 503, f"service {backend} has no ready endpoint",
                              close=not client_keep)
            return client_keep
        out_headers = [(k, v) for k, v in headers
                       if k.lower() not in HOP_BY_HOP and k.lower() not in tokens
                       and k.lower() != "expect" and not k.lower().startswith("x-forwarded-")]
        has_body = body_kind == "chunked" or body_len > 0
        if has_body and (_get(headers, "expect") or "").lower() == "100-continue":
            # answered here, so the client sends its body while we stream it on
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        prior = _get(headers, "x-forwarded-for")
        out_headers.append(("X-Forwarded-For", f"{prior}, {client_ip}" if prior else client_ip))
        out_headers.append(("X-Forwarded-Proto", _get(headers, "x-forwarded-proto") or "http"))
        out_headers.append(("X-Forwarded-Host", _get(headers, "x-forwarded-host") or host))
        if body_kind == "chunked":
            out_headers.append(("Transfer-Encoding", "chunked"))
        out_head = (f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in out_headers) + "\r\n").encode("latin-1")
        try:
            return await self._forward(backend, endpoints, method, out_head, has_body,
                                       body_kind, body_len, reader, writer, client_keep)
        except _BackendFailed as exc:
            await self._reply(writer, 502, str(exc), close=True)
            return False

    async def _drain_body(self, reader: asyncio.StreamReader, kind: str, length: int) -> None:
        sink = _NullWriter()
        await _copy_body(reader, sink, kind, length)  # type: ignore[arg-type]

    async def _connect(self, addr: tuple[str, int], allow_pooled: bool
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        idle = self._pool.get(addr)
        while allow_pooled and idle:
            r, w = idle.pop()
            if not r.at_eof() and not w.is_closing():
                return r, w
            w.close()
        async with asyncio.timeout(self.config.connect_timeout_s):
            r, w = await asyncio.open_connection(addr[0], addr[1],
                                                 limit=self.config.max_head_bytes)
        return r, w

    def _release(self, addr: tuple[str, int], conn: tuple[asyncio.StreamReader,
                                                          asyncio.StreamWriter]) -> None:
        idle = self._pool.setdefault(addr, deque())
        if len(idle) < self.config.max_idle_per_backend:
            idle.append(conn)
        else:
            conn[1].close()

    async def _forward(self, backend: BackendRef, endpoints: tuple[tuple[str, int], ...],
                       method: str, out_head: bytes, has_body: bool, body_kind: str,
                       body_len: int, creader: asyncio.StreamReader,
                       cwriter: asyncio.StreamWriter, client_keep: bool) -> bool:
        first = next(self._rr)
        errors = []
        body_sent = False
        for attempt in range(len(endpoints) + 1):
            addr = endpoints[(first + attempt) % len(endpoints)]
            # the last attempt always opens a fresh connection (pooled ones may be stale)
            try:
                br, bw = await self._connect(addr, allow_pooled=attempt < len(endpoints))
            except OSError as exc:
                errors.append(f"{addr[0]}:{addr[1]}: connect: {exc or type(exc).__name__}")
                continue
            try:
                bw.write(out_head)
                if has_body:
                    body_sent = True
                    await _copy_body(creader, bw, body_kind, body_len)
                else:
                    await bw.drain()
                status, rhead, rheaders = await self._read_response_head(br, cwriter)
            except (OSError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError) as exc:
                bw.close()
                errors.append(f"{addr[0]}:{addr[1]}: {type(exc).__name__}: {exc}")
                if body_sent:
                    break
                continue
            return await self._relay_response(addr, br, bw, method, status, rhead, rheaders,
                                              cwriter, client_keep)
        raise _BackendFailed(f"no endpoint of service {backend} answered: "
                             + "; ".join(errors[-3:]))

    async def _read_response_head(self, br: asyncio.StreamReader,
                                  cwriter: asyncio.StreamWriter
                                  ) -> tuple[int, str, list[tuple[str, str]]]:
        while True:
            async with asyncio.timeout(self.config.response_timeout_s):
                raw = await br.readuntil(b"\r\n\r\n")
            start, headers = _parse_head(raw[:-4])
            parts = start.split(" ", 2)
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                cwriter.write(raw)  # interim (100 Continue): pass through
                await cwriter.drain()
                continue
            return status, start, headers

    async def _relay_response(self, addr: tuple[str, int], br: asyncio.StreamReader,
                              bw: asyncio.StreamWriter, method: str, status: int,
                              start: str, headers: list[tuple[str, str]],
                              cwriter: asyncio.StreamWriter, client_keep: bool) -> bool:
        tokens = _connection_tokens(headers)
        backend_keep = "close" not in tokens and start.startswith("HTTP/1.1")
        no_body = method == "HEAD" or status in (204, 304)
        kind, length = ("length", 0) if no_body else _framing(headers)
        if kind == "none":
            kind = "eof"
            client_keep = False
            backend_keep = False
        out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP
               and k.lower() not in tokens]
        if kind == "chunked":
            out.append(("Transfer-Encoding", "chunked"))
        out.append(("Connection", "keep-alive" if client_keep else "close"))
        status_line = f"HTTP/1.1 {start.split(' ', 1)[1]}"
        head = (status_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in out)
                + "\r\n").encode("latin-1")
        try:
            if kind == "length" and length <= SMALL_BODY:
                # one write (one syscall) for head and a small body
                try:
                    body = await br.readexactly(length) if length else b""
                except (OSError, asyncio.IncompleteReadError) as exc:
                    bw.close()
                    await self._reply(cwriter, 502, f"endpoint {addr[0]}:{addr[1]} broke off "
                                      f"its response: {type(exc).__name__}", close=True)
                    return False
                cwriter.write(head + body)
                await cwriter.drain()
            else:
                cwriter.write(head)
                await _copy_body(br, cwriter, kind, length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            bw.close()
            return False  # the response is cut; the client sees the connection close
        if backend_keep:
            self._release(addr, (br, bw))
        else:
            bw.close()
        return client_keep


class _NullWriter:
    """Discards a body (used to skip a request body we answer ourselves)."""

    class _T:
        @staticmethod
        def get_write_buffer_size() -> int:
            return 0

    transport = _T()

    def write(self, data: bytes) -> None:
        return

    async def drain(self) -> None:
        return


def ingress_from_json(data: dict) -> tuple[list[Ingress], list[Service]]:
    """Ingresses and services from plain JSON (the --routes file of the command line).

    {"ingresses": [{"namespace", "name", "default_backend": {"namespace", "service",
    "port"}, "rules": [{"host", "paths": [{"path", "path_type", "backend": {...}}]}]}],
     "services": [see model.services_from_json]}
    """
    def ref(d: dict) -> BackendRef:
        return BackendRef(d["namespace"], d["service"], d["port"])

    ingresses = []
    for i, item in enumerate(data.get("ingresses", [])):
        try:
            ingresses.append(Ingress(
                namespace=item["namespace"], name=item["name"],
                default_backend=ref(item["default_backend"]) if item.get(
                    "default_backend") else None,
                rules=tuple(IngressRule(r.get("host", ""), tuple(
                    IngressPath(p["path"], p.get("path_type", "Prefix"), ref(p["backend"]))
                    for p in r.get("paths", []))) for r in item.get("rules", []))))
        except KeyError as exc:
            raise ValueError(f"ingresses[{i}]: missing field {exc}") from exc
    return ingresses, services_from_json(data.get("services", []))


def main(argv: list[str] | None = None) -> None:
    """Serve Ingress routes from a JSON file until killed (prints `ready PORT`)."""
    parser = argparse.ArgumentParser(description="raftkube ingress proxy")
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--routes", required=True, help="JSON file, see ingress_from_json")
    args = parser.parse_args(argv)
    configure_logging(LoggingConfig(component="ingress"))
    with open(args.routes, encoding="utf-8") as fh:
        ingresses, services = ingress_from_json(json.load(fh))
    proxy = IngressProxy(IngressProxyConfig(listen_address=args.listen, port=args.port))
    proxy.update(ingresses, services)
    proxy.start()
    print(f"ready {proxy.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
