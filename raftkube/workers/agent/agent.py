"""The agent: one node's kubelet role.

    Agent.start()
      runtime + VolumeManager + EventRecorder
      NodeHeartbeat.register() (Lease, then status)
      heartbeat thread (Lease every lease_interval)
      pod Informer (spec.nodeName=<node>, all namespaces)
           on add/update -> PodWorker(uid).update(pod)   (one thread per pod)
           on delete     -> PodWorker(uid).removed()
      after the informer synced: adopt / clean up
           a runtime sandbox or container whose pod uid the API does not know -> removed
      relister (every relist_interval): runtime.list_containers() -> poke the workers of
           pods whose containers changed (exits are seen within ~relist_interval)
      fencing: no Lease renewal for fencing_timeout -> workers kill StatefulSet pods and
           pods being deleted (facts.terminating); renewals resume -> normal again;
           on Podman also a watchdog process (fence_link.py / fence_watchdog.py) that does
           the same for StatefulSet pods when this process is dead, hung or stopped
      usage sampler (every stats_interval): NodeAgent.Stats (`top`) and /metrics
    Agent.stop(): stops threads; containers keep running (a restarted agent adopts them).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from raftkube.api.v1 import pod_pb2
from raftkube.client import Client, ClientOptions
from raftkube.client.retry import RetryConfig
from raftkube.logging_config import get_logger
from raftkube.workers.agent.api_objects import ApiObjectSource, EventRecorder
from raftkube.workers.agent.config import WorkerConfig
from raftkube.workers.agent.fence_link import FenceLink
from raftkube.workers.agent.heartbeat import NodeHeartbeat, detect_node_ip
from raftkube.workers.agent.masters_wait import until_masters_answer
from raftkube.workers.agent.metrics import AgentFacts, WorkerCollector, WorkerMetrics
from raftkube.workers.agent.node_agent_service import NodeAgentServer, NodeAgentServicer
from raftkube.workers.agent.node_status import machine_facts
from raftkube.workers.agent.pod_worker import PodWorker, WorkerDeps
from raftkube.workers.agent.sync_queue import SyncQueue
from raftkube.workers.agent.usage import UsageSampler
from raftkube.workers.agent.volumes import VolumeManager
from raftkube.workers.runtime.interface import ContainerRuntimeError, Runtime

log = get_logger(__name__)


class PodFeed(Protocol):
    """What the agent needs of its pod source (an SDK Informer, or a hollow fleet's view)."""

    error: BaseException | None

    def add_handlers(self, on_add=None, on_update=None, on_delete=None) -> object: ...

    def start(self) -> PodFeed: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def wait_for_sync(self, timeout: float | None = None) -> bool: ...

    def get(self, name: str, namespace: str = "") -> pod_pb2.Pod | None: ...

    def list(self) -> list: ...


@dataclass(frozen=True)
class AgentClients:
    """The SDK clients the agent uses: `api` for pods/status/objects, `lease` with short
    deadlines for the Lease (so an unreachable cluster is noticed within seconds)."""

    api: Client
    lease: Client

    @classmethod
    def from_config(cls, config: WorkerConfig) -> AgentClients:
        interval = config.lease_interval_seconds
        lease_options = ClientOptions(retry=RetryConfig(
            max_attempts=3, deadline=max(1.0, interval), base_backoff=0.05,
            max_backoff=0.3, call_timeout=max(0.5, interval * 0.75)))
        api = Client.from_config(config.client_config)
        lease = Client.from_config(config.client_config, options=lease_options)
        return cls(api, lease)

    def close(self) -> None:
        self.api.close()
        self.lease.close()


class Agent:
    """See the module docstring. Not restartable: make a new Agent after stop()."""

    def __init__(self, config: WorkerConfig, runtime: Runtime, clients: AgentClients, *,
                 runtime_version: str = "", agent_port: int = 0,
                 pod_feed: PodFeed | None = None, queue: SyncQueue | None = None,
                 event_pool: ThreadPoolExecutor | None = None) -> None:
        """pod_feed / queue / event_pool: shared by many hollow agents in one process
        (testing/hollow_agents.py); by default each agent has its own informer (field
        selector spec.nodeName), sync queue and event pool."""
        self.config = config
        self.runtime = runtime
        self.clients = clients
        self.server: NodeAgentServer | None = None
        self.usage = UsageSampler(runtime, config.stats_interval_seconds)
        self.metrics = WorkerMetrics(WorkerCollector(config.node_name, self.usage.latest,
                                                     self.facts))
        service = config.node_agent
        if service.listen:
            assert service.cert_file and service.key_file and service.ca_file
            self.server = NodeAgentServer(
                NodeAgentServicer(runtime, self.lookup_pod, service.allowed_groups,
                                  node_name=config.node_name, usage=self.usage.latest),
                service.listen, service.cert_file.read_bytes(),
                service.key_file.read_bytes(), service.ca_file.read_bytes())
            agent_port = agent_port or self.server.port
        masters = clients.api.masters
        self.node_ip = config.node_ip or detect_node_ip(masters)
        self.objects = ApiObjectSource(clients.api)
        self.volumes = VolumeManager(config.data_dir, self.objects)
        self.events = EventRecorder(clients.api, config.node_name, pool=event_pool)
        self.heartbeat = NodeHeartbeat(
            config, clients.api, clients.lease, runtime, machine_facts(config.data_dir),
            self.node_ip, runtime_version or type(runtime).__name__, agent_port,
            on_renewed=self._renewed)
        self.fence_link: FenceLink | None = None
        if config.fence_watchdog and config.runtime.kind == "podman":
            self.fence_link = FenceLink(config, self.heartbeat.last_renewal)
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_pool = ThreadPoolExecutor(max_workers=max(2, config.pod_workers),
                                             thread_name_prefix="stop")
        self._threads: list[threading.Thread] = []
        self._informer: PodFeed | None = None
        self._was_fenced = False
        self._relist_previous: dict[str, tuple] = {}
        self.synced = threading.Event()
        self.metrics_port = 0
        self._own_queue = queue is None
        self.queue = queue or SyncQueue(self._sync_pod, config.pod_workers,
                                        name=f"pods-{config.node_name}")
        self._pod_feed = pod_feed
        self.deps = WorkerDeps(config=config, client=clients.api, runtime=runtime,
                               volumes=self.volumes, objects=self.objects, events=self.events,
                               node_ip=self.node_ip, fenced=self.fenced,
                               stop_pool=self._stop_pool, on_exit=self._worker_exited,
                               schedule=self.queue.add)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, background: bool = True) -> Agent:
        """Register the Node (its Lease renewed before its status), watch pods.
        `background=False` starts no per-agent loops: the owner calls heartbeat.tick(),
        relist_once() and check_fence() (hollow fleets drive thousands of agents from a few
        threads)."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if self.fence_link is not None:
            self.fence_link.start()  # before any pod of ours can start
        until_masters_answer(self.heartbeat.register, self._stop, "node registration")
        if self._own_queue:
            self.queue.start()
        feed = self._pod_feed or self.clients.api.pods.informer(
            all_namespaces=True, field_selector=f"spec.nodeName={self.config.node_name}")
        feed.add_handlers(on_add=self._pod_changed,
                          on_update=lambda _old, new: self._pod_changed(new),
                          on_delete=self._pod_deleted)
        self._informer = feed.start()
        if background:
            self._spawn(self.adopt_when_synced, "agent-adopt")
            self.heartbeat.start()
            self._spawn(self._relist_loop, "agent-relist")
            self._spawn(self._fence_loop, "agent-fence")
            if self._pod_feed is None:
                self._spawn(self._informer_guard, "agent-informer-guard")
            self.usage.start()
        if self.config.metrics_address:
            self.metrics_port = self.metrics.serve(self.config.metrics_address)
        if self.server is not None:
            self.server.start()
        return self

    def facts(self) -> AgentFacts:
        """The agent's own health, for its metrics."""
        with self._lock:
            pods = len(self._workers)
        return AgentFacts(pods, self.heartbeat.since_renewal(), self.fenced())

    def sync_pod(self, uid: str) -> float | None:
        """Sync one pod of this agent (the SyncQueue handler)."""
        return self._sync_pod(uid)

    def has_pod(self, uid: str) -> bool:
        with self._lock:
            return uid in self._workers

    def lookup_pod(self, namespace: str, name: str) -> pod_pb2.Pod | None:
        """The pod bound to this node with that name, from the informer's cache."""
        informer = self._informer
        return informer.get(name, namespace) if informer is not None else None

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop the agent; pods keep running (idempotent)."""
        self._stop.set()
        if self.server is not None:
            self.server.stop()
        if self.fence_link is not None:
            self.fence_link.stop()
        self.usage.stop()
        self.metrics.close()
        if self._informer is not None:
            self._informer.stop()
        self.heartbeat.stop()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.shutdown()
        if self._own_queue:
            self.queue.stop()
        for worker in workers:
            worker.shutdown()  # probes a sync in flight may have started meanwhile
        for thread in self._threads:
            thread.join(10)
        self._stop_pool.shutdown(wait=False, cancel_futures=True)
        self.events.close()

    # -- fencing --------------------------------------------------------------------------
    def fenced(self) -> bool:
        """No successful Lease renewal for longer than fencing_timeout."""
        return self.heartbeat.since_renewal() > self.config.fencing_timeout_seconds

    def _renewed(self, sent_at: float) -> None:
        if self.fence_link is not None:
            self.fence_link.renewed(sent_at)

    def _fence_loop(self) -> None:
        looks = 0
        while not self._stop.wait(0.25):
            self.check_fence()
            looks += 1
            if self.fence_link is not None and looks % 4 == 0:
                self.fence_link.ensure()

    def check_fence(self) -> None:
        """Poke every pod worker when fencing starts or ends (they re-plan with it)."""
        now = self.fenced()
        if now != self._was_fenced:
            log.warning("fencing " + ("on: stopping StatefulSet pods" if now else "off"),
                        node=self.config.node_name,
                        since_renewal=round(self.heartbeat.since_renewal(), 1))
            self._poke_all()
            self._was_fenced = now

    # -- pods ------------------------------------------------------------------------------
    def _pod_changed(self, pod: pod_pb2.Pod) -> None:
        uid = pod.metadata.uid
        with self._lock:
            worker = self._workers.get(uid)
            if worker is None:
                worker = PodWorker(uid, pod, self.deps)
                self._workers[uid] = worker
                worker.start()
                return
        worker.update(pod)

    def _pod_deleted(self, pod: pod_pb2.Pod) -> None:
        with self._lock:
            worker = self._workers.get(pod.metadata.uid)
        if worker is not None:
            worker.removed()

    def _worker_exited(self, uid: str) -> None:
        with self._lock:
            worker = self._workers.get(uid)
            if worker is not None and worker.finished:
                self._workers.pop(uid, None)
        self.queue.forget(uid)

    def _sync_pod(self, uid: str) -> float | None:
        with self._lock:
            worker = self._workers.get(uid)
        return worker.sync_once() if worker is not None else None

    def _poke_all(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.poke()

    def pod_uids(self) -> list[str]:
        with self._lock:
            return sorted(self._workers)

    # -- adoption and cleanup ----------------------------------------------------------------
    def adopt_when_synced(self) -> None:
        """Wait for the pod feed's first full list, then remove what no pod owns."""
        assert self._informer is not None
        while not self._stop.is_set() and not self._informer.wait_for_sync(1.0):
            pass
        if self._stop.is_set():
            return
        self.synced.set()
        try:
            self.remove_orphans()
        except ContainerRuntimeError as exc:
            log.warning("orphan cleanup failed", error=str(exc))

    def remove_orphans(self) -> list[str]:
        """Remove sandboxes, containers and volume dirs of pod uids the API does not bind
        to this node. Only after the informer synced (never on a partial view)."""
        if not self.synced.is_set():
            return []
        assert self._informer is not None
        known = {p.metadata.uid for p in self._informer.list()}
        uids = {s.uid for s in self.runtime.list_pod_sandboxes()}
        uids |= {c.pod_uid for c in self.runtime.list_containers()}
        uids |= set(self.volumes.known_pod_uids())
        orphans = sorted(u for u in uids - known if u)
        with self._lock:
            orphans = [u for u in orphans if u not in self._workers]
        for uid in orphans:
            log.info("removing what no pod owns", pod_uid=uid)
            self.runtime.remove_pod_sandbox(uid, 0)
            self.volumes.cleanup(uid)
        return orphans

    # -- relist (PLEG) -------------------------------------------------------------------------
    def _relist_loop(self) -> None:
        while not self._stop.wait(self.config.relist_interval_seconds):
            self.relist_once()

    def relist_once(self) -> None:
        """List the runtime's containers once; poke the workers of pods whose containers
        changed since the previous relist (exits are noticed here)."""
        try:
            containers = self.runtime.list_containers()
        except ContainerRuntimeError as exc:
            log.warning("relist failed", error=str(exc))
            return
        current: dict[str, list] = {}
        for c in containers:
            current.setdefault(c.pod_uid, []).append((c.container_id, c.state.value,
                                                      c.exit_code))
        snapshot = {uid: tuple(sorted(items)) for uid, items in current.items()}
        previous, self._relist_previous = self._relist_previous, snapshot
        changed = {uid for uid in set(snapshot) | set(previous)
                   if snapshot.get(uid) != previous.get(uid)}
        with self._lock:
            workers = [self._workers[u] for u in changed if u in self._workers]
        for worker in workers:
            worker.poke()

    def _informer_guard(self) -> None:
        """An informer that stopped on an error is replaced (the agent never goes deaf)."""
        while not self._stop.wait(2.0):
            informer = self._informer
            if informer is not None and informer.error is not None:
                log.warning("pod informer stopped; starting a new one",
                            error=str(informer.error))
                informer.stop()
                replacement = self.clients.api.pods.informer(
                    all_namespaces=True,
                    field_selector=f"spec.nodeName={self.config.node_name}")
                replacement.add_handlers(on_add=self._pod_changed,
                                         on_update=lambda _o, n: self._pod_changed(n),
                                         on_delete=self._pod_deleted)
                self._informer = replacement.start()


def with_overrides(config: WorkerConfig, **changes: object) -> WorkerConfig:
    """A copy of `config` with fields replaced (tests, hollow nodes)."""
    return replace(config, **changes)  # type: ignore[arg-type]


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    """Poll `predicate` until true or `timeout` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
