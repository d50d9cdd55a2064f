"""Prometheus metrics of a worker: the node's and each container's usage, and the agent's
own health (pods run, Lease age, fencing).

Contract: figures are read when scraped (nothing is copied in between), from the
UsageSampler's latest sample and from callables the agent provides; a scrape never blocks
on the runtime or the API. Each agent owns its registry, so a process may run several.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from raftkube.metrics_http import MetricsServer, serve_metrics
from raftkube.workers.agent.usage import NodeUsage

_NANOCORES = 1e9
_CONTAINER_LABELS = ["namespace", "pod", "container"]


@dataclass(frozen=True)
class AgentFacts:
    """What the agent reports about itself: the pods it runs, the seconds since its Lease
    was last renewed, and whether it is fenced."""

    pods: int
    lease_age_seconds: float
    fenced: bool


class WorkerCollector(Collector):
    """Yields the worker's metrics at scrape time."""

    def __init__(self, node_name: str, usage: Callable[[], NodeUsage | None],
                 facts: Callable[[], AgentFacts]) -> None:
        self._node = node_name
        self._usage = usage
        self._facts = facts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        facts = self._facts()
        yield _gauge("raftkube_agent_pods", "pods this agent runs", facts.pods, self._node)
        yield _gauge("raftkube_agent_lease_age_seconds",
                     "seconds since the node Lease was last renewed", facts.lease_age_seconds,
                     self._node)
        yield _gauge("raftkube_agent_fenced", "1 while the agent is fenced (Lease lost)",
                     1 if facts.fenced else 0, self._node)
        usage = self._usage()
        if usage is None:
            return
        yield _gauge("raftkube_node_cpu_usage_cores", "CPU in use on the machine (cores)",
                     usage.cpu_nanocores / _NANOCORES, self._node)
        yield _gauge("raftkube_node_memory_usage_bytes", "memory in use on the machine",
                     usage.memory_bytes, self._node)
        yield _gauge("raftkube_usage_window_seconds", "seconds the usage rates cover",
                     usage.window_seconds, self._node)
        cpu = GaugeMetricFamily("raftkube_container_cpu_usage_cores",
                                "CPU used by a container (cores)", labels=_CONTAINER_LABELS)
        memory = GaugeMetricFamily("raftkube_container_memory_usage_bytes",
                                   "memory charged to a container", labels=_CONTAINER_LABELS)
        for c in usage.containers:
            labels = [c.namespace, c.pod, c.container]
            cpu.add_metric(labels, c.cpu_nanocores / _NANOCORES)
            memory.add_metric(labels, c.memory_bytes)
        yield cpu
        yield memory


def _gauge(name: str, documentation: str, value: float, node: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["node"])
    family.add_metric([node], value)
    return family


class WorkerMetrics:
    """A registry holding one WorkerCollector, served over HTTP on demand."""

    def __init__(self, collector: WorkerCollector) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self._server: MetricsServer | None = None

    def serve(self, address: str) -> int:
        """Serve /metrics on HOST:PORT (port 0 = any); returns the port."""
        self._server = serve_metrics(self.registry, address)
        return self._server.port

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
