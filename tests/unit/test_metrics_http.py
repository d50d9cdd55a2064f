"""The metrics endpoint: serves a registry at /metrics, binds without name lookups, and
closes cleanly (nothing listens afterwards)."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from raftkube.masters.metrics import MasterMetrics
from raftkube.metrics_http import serve_metrics


def test_serves_the_registry_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookups(*_args: object) -> str:
        raise AssertionError("the metrics server must not resolve names")

    monkeypatch.setattr(socket, "getfqdn", no_lookups)
    metrics = MasterMetrics()
    metrics.calls.labels("Create", "OK").inc(3)
    metrics.term.set(7)
    server = metrics.serve("127.0.0.1:0")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                      timeout=10).read().decode()
    finally:
        server.close()
    assert 'raftkube_api_calls_total{code="OK",method="Create"} 3.0' in text
    assert "raftkube_store_term 7.0" in text
    server.close()  # idempotent
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_a_bad_address_is_an_error() -> None:
    with pytest.raises(ValueError):
        serve_metrics(MasterMetrics().registry, "127.0.0.1:not-a-port")
