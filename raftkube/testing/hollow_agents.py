"""Hollow nodes with the real agent (the kubemark idea): many `Agent`s on `FakeRuntime`s in
one process, for scale tests and benchmarks. Every node registers, renews its Lease and runs
the real pod workers, decisions, status reports and events; only the containers are fake.

    HollowFleet.start()
      one SDK Client (shared)  ──  one pod Informer over all pods ─┐ dispatch by spec.nodeName
      Agent(node i, FakeRuntime) x count  <── NodeFeed(i) <───────┘
      shared: SyncQueue (pod syncs), event pool, heartbeat pool
      loops: heartbeats every lease interval, relist every relist interval, fencing checks

    python -m raftkube.testing.hollow_agents --count 1000 --config ADMIN.yaml
    (1,000 nodes registered in ~10 s here, ~40 threads; it can replace the controllers'
    stand-in raftkube.testing.hollow_nodes, which only imitates an agent's API calls)

The one shortcut against a real node: one Watch over all pods (admin credentials) instead of
one field-selected Watch per node, so 1,000 nodes do not hold 1,000 streams on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from raftkube.api.v1 import pod_pb2
from raftkube.client import Client, ClientOptions, RetryConfig
from raftkube.logging_config import LoggingConfig, configure_logging, get_logger
from raftkube.workers.agent.agent import Agent, AgentClients
from raftkube.workers.agent.config import BackoffConfig, RuntimeConfig, WorkerConfig
from raftkube.workers.agent.sync_queue import SyncQueue
from raftkube.workers.runtime.fake_runtime import FakeRuntime, FakeRuntimeConfig

log = get_logger(__name__)


@dataclass(frozen=True)
class HollowFleetConfig:
    """count: nodes; prefix: node names `<prefix>-<i>`; client_config: a ClientConfig with
    rights over every node (admin); data_dir: volumes of all hollow pods ("" = a temp dir
    that stop() removes); lease_interval_seconds / relist_interval_seconds: as
    WorkerConfig; sync_workers / heartbeat_workers: threads shared by the fleet; labels:
    extra node labels; capacity: node capacity overrides (cpu/memory/pods)."""

    count: int
    client_config: Path
    prefix: str = "hollow"
    data_dir: str = ""
    lease_interval_seconds: float = 2.0
    relist_interval_seconds: float = 2.0
    sync_workers: int = 16
    heartbeat_workers: int = 16
    labels: dict[str, str] = field(default_factory=dict)
    capacity: dict[str, str] = field(default_factory=lambda: {"cpu": "8", "memory": "32Gi"})


class NodeFeed:
    """One node's pods out of the fleet's shared informer (the PodFeed protocol)."""

    def __init__(self, synced: threading.Event) -> None:
        self._pods: dict[tuple[str, str], pod_pb2.Pod] = {}
        self._handlers: list[tuple[Callable | None, Callable | None, Callable | None]] = []
        self._lock = threading.Lock()
        self._synced = synced
        self.error: BaseException | None = None

    def add_handlers(self, on_add=None, on_update=None, on_delete=None) -> NodeFeed:
        self._handlers.append((on_add, on_update, on_delete))
        return self

    def start(self) -> NodeFeed:
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._handlers.clear()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def get(self, name: str, namespace: str = "") -> pod_pb2.Pod | None:
        with self._lock:
            return self._pods.get((namespace, name))

    def list(self) -> list[pod_pb2.Pod]:
        with self._lock:
            return list(self._pods.values())

    def deliver(self, kind: str, pod: pod_pb2.Pod, old: pod_pb2.Pod | None = None) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        with self._lock:
            if kind == "delete":
                self._pods.pop(key, None)
            else:
                self._pods[key] = pod
        for on_add, on_update, on_delete in list(self._handlers):
            handler = {"add": on_add, "update": on_update, "delete": on_delete}[kind]
            if handler is None:
                continue
            if kind == "update":
                handler(old, pod)
            else:
                handler(pod)


class HollowFleet:
    def __init__(self, config: HollowFleetConfig) -> None:
        self.config = config
        self.names = [f"{config.prefix}-{i}" for i in range(config.count)]
        retry = RetryConfig(max_attempts=3, deadline=max(1.0, config.lease_interval_seconds),
                            base_backoff=0.05, max_backoff=0.3,
                            call_timeout=max(0.5, config.lease_interval_seconds * 0.75))
        self.client = Client.from_config(config.client_config)
        self.lease_client = Client.from_config(config.client_config,
                                               options=ClientOptions(retry=retry))
        self.clients = AgentClients(self.client, self.lease_client)
        root = Path(config.data_dir or tempfile.mkdtemp(prefix="rk-hollow-"))
        self._own_root = None if config.data_dir else root  # stop() removes it; a given one stays
        self.synced = threading.Event()
        self.feeds = {name: NodeFeed(self.synced) for name in self.names}
        self.queue = SyncQueue(self._sync, config.sync_workers, name="hollow-pods")
        self.event_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hollow-events")
        self.agents: dict[str, Agent] = {}
        for name in self.names:
            worker = WorkerConfig(
                node_name=name, client_config=config.client_config,
                runtime=RuntimeConfig(kind="fake"), node_ip="127.0.0.1",
                labels={"raftkube.io/hollow": "true", **config.labels},
                capacity=dict(config.capacity), data_dir=root / name,
                lease_interval_seconds=config.lease_interval_seconds,
                relist_interval_seconds=config.relist_interval_seconds,
                backoff=BackoffConfig(initial_seconds=10, max_seconds=300))
            runtime = FakeRuntime(FakeRuntimeConfig(node=name))
            self.agents[name] = Agent(worker, runtime, self.clients, runtime_version="fake://0",
                                      pod_feed=self.feeds[name], queue=self.queue,
                                      event_pool=self.event_pool)
        self._uid_node: dict[str, str] = {}
        self._silent: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._informer = None

    # -- pods ------------------------------------------------------------------------------
    def kill(self, name: str) -> None:
        """Node `name` goes silent as if its machine died: no Lease renewals, no pod syncs
        or status reports (its pods keep their last status)."""
        self._silent.add(name)

    def revive(self, name: str) -> None:
        """Node `name` renews and reconciles again."""
        self._silent.discard(name)
        agent = self.agents[name]
        agent.heartbeat.tick()
        for uid in agent.pod_uids():
            self.queue.add(uid)

    def _live(self) -> list[Agent]:
        return [a for n, a in self.agents.items() if n not in self._silent]

    def _sync(self, uid: str) -> float | None:
        node = self._uid_node.get(uid)
        if node in self._silent:
            return None
        agent = self.agents.get(node) if node else None
        return agent.sync_pod(uid) if agent is not None else None

    def _route(self, kind: str, pod: pod_pb2.Pod, old: pod_pb2.Pod | None = None) -> None:
        node = pod.spec.node_name
        if node not in self.feeds:
            return
        self._uid_node[pod.metadata.uid] = node
        if kind == "update" and (old is None or old.spec.node_name != node):
            kind = "add"
        self.feeds[node].deliver(kind, pod, old)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> HollowFleet:
        """Register every node (in parallel), then watch pods and start the shared loops."""
        self.queue.start()
        with ThreadPoolExecutor(self.config.heartbeat_workers) as pool:
            list(pool.map(lambda a: a.start(background=False), self.agents.values()))
        informer = self.client.pods.informer(all_namespaces=True)
        informer.add_handlers(on_add=lambda p: self._route("add", p),
                              on_update=lambda o, n: self._route("update", n, o),
                              on_delete=lambda p: self._route("delete", p))
        self._informer = informer.start()
        self._spawn(self._after_sync, "hollow-sync")
        self._spawn(self._heartbeats, "hollow-heartbeats")
        self._spawn(self._relists, "hollow-relist")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _after_sync(self) -> None:
        assert self._informer is not None
        while not self._stop.is_set() and not self._informer.wait_for_sync(1.0):
            pass
        self.synced.set()
        for agent in self.agents.values():
            agent.adopt_when_synced()

    def _heartbeats(self) -> None:
        interval = self.config.lease_interval_seconds
        with ThreadPoolExecutor(self.config.heartbeat_workers,
                                thread_name_prefix="hollow-hb") as pool:
            while not self._stop.is_set():
                began = time.monotonic()
                list(pool.map(lambda a: (a.heartbeat.tick(), a.check_fence()),
                              self._live()))
                self._stop.wait(max(0.0, interval - (time.monotonic() - began)))

    def _relists(self) -> None:
        while not self._stop.wait(self.config.relist_interval_seconds):
            for agent in self._live():
                agent.relist_once()

    def stop(self) -> None:
        self._stop.set()
        if self._informer is not None:
            self._informer.stop()
        for thread in self._threads:
            thread.join(30)
        for agent in self.agents.values():
            agent.stop()
        self.queue.stop()
        self.event_pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
        self.lease_client.close()
        if self._own_root is not None:
            shutil.rmtree(self._own_root, ignore_errors=True)

    def __enter__(self) -> HollowFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run hollow nodes (real agent, fake runtime)")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--config", type=Path, required=True,
                        help="client config with admin rights (raftkube init's config.yaml)")
    parser.add_argument("--prefix", default="hollow")
    parser.add_argument("--lease-interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    configure_logging(LoggingConfig(level="warning", component="hollow"))
    fleet = HollowFleet(HollowFleetConfig(count=args.count, client_config=args.config,
                                          prefix=args.prefix,
                                          lease_interval_seconds=args.lease_interval))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    began = time.monotonic()
    fleet.start()
    print(f"{args.count} hollow nodes registered in {time.monotonic() - began:.1f}s",
          flush=True)
    stop.wait()
    fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
