"""Serve a Prometheus registry over HTTP (`GET /metrics`) on HOST:PORT, on a thread.

Why not prometheus_client.start_http_server: its server looks up the bind address's host
name (socket.getfqdn) before listening, and inside a network namespace without DNS that
lookup hangs for minutes. This server never resolves names.

Contract: `serve_metrics` returns once the socket listens; `MetricsServer.close()` stops
the thread and closes the socket (idempotent).
"""

from __future__ import annotations

import http.server
import socketserver
import threading

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no getfqdn
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class MetricsServer:
    """A running metrics endpoint; `port` is the bound port."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self.port = server.server_port
        self._thread = threading.Thread(target=server.serve_forever, name="metrics-http",
                                        daemon=True)
        self._thread.start()
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)


def serve_metrics(registry: CollectorRegistry, address: str) -> MetricsServer:
    """Serve `registry` on HOST:PORT (port 0 = any free port; empty host = 127.0.0.1)."""
    host, _, port = address.rpartition(":")
    server = _Server((host.strip("[]") or "127.0.0.1", int(port)),
                     MetricsHandler.factory(registry))
    return MetricsServer(server)
