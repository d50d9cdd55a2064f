"""Prometheus metrics of a master: per-method call counts and latencies.

Contract: `MetricsInterceptor` never changes a call's outcome; it only observes it. Each
master process owns one `MasterMetrics` (its own registry, so tests can run several).
"""

from __future__ import annotations

import time

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from raftkube.metrics_http import MetricsServer, serve_metrics


class MasterMetrics:
    """The metrics of one master, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("raftkube_api_calls", "API calls by method and status code",
                             ["method", "code"], registry=self.registry)
        self.latency = Histogram(
            "raftkube_api_call_seconds", "API call latency by method", ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry)
        self.is_leader = Gauge("raftkube_store_is_leader", "1 when this master leads",
                               registry=self.registry)
        self.revision = Gauge("raftkube_store_revision", "store revision",
                              registry=self.registry)
        self.term = Gauge("raftkube_store_term", "Raft term", registry=self.registry)

    def serve(self, address: str) -> MetricsServer:
        """Serve /metrics on HOST:PORT; returns the server (close() stops it)."""
        return serve_metrics(self.registry, address)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts unary calls and times them (streams are counted when they start)."""

    def __init__(self, metrics: MasterMetrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is None:
            self._metrics.calls.labels(method, "STREAM").inc()
            return handler
        behavior = handler.unary_unary
        metrics = self._metrics

        def timed(request, context):
            start = time.perf_counter()
            code = "OK"
            try:
                return behavior(request, context)
            except Exception:
                code = "ERROR"
                raise
            finally:
                status = context.code() if hasattr(context, "code") else None
                if status is not None and status != grpc.StatusCode.OK:
                    code = status.name
                metrics.calls.labels(method, code).inc()
                metrics.latency.labels(method).observe(time.perf_counter() - start)

        return handler._replace(unary_unary=timed)
