"""Hollow nodes (the kubemark idea): one process plays many worker nodes through the real
API. Each hollow node really registers its Node (allocatable, Ready, images), renews its
Lease in `raftkube-node-lease` every `renew_seconds`, and reports the pods bound to it as
Running and Ready (a fake IP, container statuses) through status updates; a pod being
deleted is finished (deleted with grace 0) as an agent does once its containers stopped.

```
           ┌ registrar ─ Create Node + Lease (per node)
 HollowNodes ─ renewer threads ─ Update Lease (CAS with the last resourceVersion)
           └ pod watcher (WatchBatched, all pods) ─> queue ─> reporters ─ UpdateStatus / Delete
```

`kill(node)` makes a node silent (no renewals, no reports) as if its machine died; its
pods keep their last status. `revive(node)` resumes it. The real agent replaces this class
node by node: it does the same API calls, with a real runtime behind them.

One Watch for all nodes (rather than one per node with a nodeName field selector) is the
one shortcut: it keeps 1,000 hollow nodes from opening 1,000 streams on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from raftkube import apierrors
from raftkube.api.v1 import coordination_pb2, core_pb2, pod_pb2, resources_pb2
from raftkube.masters.controllers.node_lifecycle import LEASE_NAMESPACE, LEASE_RENEW_SECONDS
from raftkube.masters.controllers.objects_util import format_time
from raftkube.objects import registry

StubFactory = Callable[[], object]


@dataclass(frozen=True)
class HollowNodeConfig:
    """count: how many nodes; prefix: node names are `<prefix>-<i>`.
    cpu / memory / pods: allocatable of every node; labels: node labels (plus
    kubernetes.io/hostname); images: names reported in node.status.images.
    renew_seconds: lease renewal period; lease_seconds: leaseDurationSeconds written.
    workers: threads for renewals and status reports.
    """

    count: int = 10
    prefix: str = "hollow"
    cpu: str = "8"
    memory: str = "32Gi"
    pods: str = "110"
    labels: tuple[tuple[str, str], ...] = ()
    images: tuple[str, ...] = ("localhost/busybox:latest",)
    renew_seconds: float = LEASE_RENEW_SECONDS
    lease_seconds: int = 6
    workers: int = 16


def _call(fn, request, timeout: float = 10.0):
    try:
        return fn(request, timeout=timeout)
    except grpc.RpcError as e:
        raise apierrors.from_rpc_error(e) from None


@dataclass
class HollowNodes:
    """A fleet of hollow nodes talking to the API through `stub()` (a Resources stub)."""

    stub: StubFactory
    config: HollowNodeConfig = field(default_factory=HollowNodeConfig)
    _stop: threading.Event = field(default_factory=threading.Event)
    _silent: set[str] = field(default_factory=set)
    _lease_rv: dict[str, str] = field(default_factory=dict)
    _renewed: dict[str, float] = field(default_factory=dict)
    _reported: dict[tuple[str, str], str] = field(default_factory=dict)
    _work: queue.Queue = field(default_factory=queue.Queue)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    reports: int = 0

    @property
    def names(self) -> list[str]:
        return list(self._index)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        """Node name -> position (built once: reports look nodes up for every pod)."""
        return {f"{self.config.prefix}-{i}": i for i in range(self.config.count)}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> HollowNodes:
        """Register every node (idempotent) and start renewing and reporting."""
        with ThreadPoolExecutor(self.config.workers) as pool:
            list(pool.map(self.register_with_retry, self.names))
        self._spawn(self._watch_pods, "hollow-watch")
        for i in range(self.config.workers):
            self._spawn(self._report_loop, f"hollow-report-{i}")
        renewers = max(1, min(self.config.workers, self.config.count // 50 + 1))
        for i in range(renewers):
            self._spawn(lambda i=i, n=renewers: self._renew_loop(i, n), f"hollow-renew-{i}")
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def __enter__(self) -> HollowNodes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self, name: str) -> None:
        """The node goes silent: no lease renewal, no pod reports."""
        with self._lock:
            self._silent.add(name)

    def revive(self, name: str) -> None:
        with self._lock:
            self._silent.discard(name)

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- registration and leases ----------------------------------------------------------
    def node_object(self, name: str) -> core_pb2.Node:
        node = core_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = name
        node.metadata.labels.update(dict(self.config.labels))
        node.metadata.labels["kubernetes.io/hostname"] = name
        node.metadata.labels["raftkube.io/hollow"] = "true"
        resources = {"cpu": self.config.cpu, "memory": self.config.memory,
                     "pods": self.config.pods}
        node.status.capacity.update(resources)
        node.status.allocatable.update(resources)
        node.status.conditions.add(type="Ready", status="True", reason="AgentReady",
                                   message="hollow agent is posting ready status",
                                   last_transition_time=format_time(time.time()))
        node.status.addresses.add(type="InternalIP", address=self._node_ip(name))
        if self.config.images:
            node.status.images.add(names=list(self.config.images), size_bytes=1_000_000)
        return node

    def _node_ip(self, name: str) -> str:
        index = self._index.get(name, 0)
        return f"10.{200 + index // 65536}.{(index // 256) % 256}.{index % 256}"

    def register_with_retry(self, name: str, timeout: float = 60.0) -> None:
        """`register`, retried as an agent does while the cluster is still starting (the
        lease namespace not created yet, no leader); the last error after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.register(name)
                return
            except apierrors.ApiError:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                time.sleep(0.5)

    def register(self, name: str) -> None:
        """Create the Node (status included) and its Lease; existing ones are reused and
        the node marked Ready again."""
        stub = self.stub()
        node = self.node_object(name)
        try:
            created = registry.unwrap(_call(stub.Create, resources_pb2.CreateRequest(
                object=registry.wrap(node))))
            node.metadata.resource_version = created.metadata.resource_version
        except apierrors.AlreadyExists:
            current = registry.unwrap(_call(stub.Get, resources_pb2.GetRequest(
                kind="Node", name=name)))
            node.metadata.resource_version = current.metadata.resource_version
        _call(stub.UpdateStatus, resources_pb2.UpdateRequest(object=registry.wrap(node)))
        self._renew(name)

    def _lease(self, name: str) -> coordination_pb2.Lease:
        lease = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
        lease.metadata.name = name
        lease.metadata.namespace = LEASE_NAMESPACE
        lease.spec.holder_identity = name
        lease.spec.lease_duration_seconds = self.config.lease_seconds
        lease.spec.renew_time = format_time(time.time())
        return lease

    def last_renewal(self, name: str) -> float:
        """time.monotonic() of the last successful lease renewal of `name` (0 if none)."""
        return self._renewed.get(name, 0.0)

    def _renew(self, name: str) -> None:
        self._renew_once(name)
        self._renewed[name] = time.monotonic()

    def _renew_once(self, name: str) -> None:
        stub = self.stub()
        lease = self._lease(name)
        rv = self._lease_rv.get(name)
        if rv:
            lease.metadata.resource_version = rv
            try:
                out = _call(stub.Update, resources_pb2.UpdateRequest(
                    object=registry.wrap(lease)))
                self._lease_rv[name] = registry.unwrap(out).metadata.resource_version
                return
            except (apierrors.Conflict, apierrors.NotFound):
                self._lease_rv.pop(name, None)
        try:
            out = _call(stub.Create, resources_pb2.CreateRequest(object=registry.wrap(lease)))
        except apierrors.AlreadyExists:
            current = registry.unwrap(_call(stub.Get, resources_pb2.GetRequest(
                kind="Lease", namespace=LEASE_NAMESPACE, name=name)))
            lease.metadata.resource_version = current.metadata.resource_version
            out = _call(stub.Update, resources_pb2.UpdateRequest(object=registry.wrap(lease)))
        self._lease_rv[name] = registry.unwrap(out).metadata.resource_version

    def _renew_loop(self, part: int, parts: int) -> None:
        """Renew this thread's share of the leases, spread evenly over each period (as
        independent kubelets would be), not all at its start."""
        mine = self.names[part::parts]
        step = self.config.renew_seconds / max(1, len(mine))
        while not self._stop.is_set():
            started = time.monotonic()
            for i, name in enumerate(mine):
                if self._stop.wait(max(0.0, started + i * step - time.monotonic())):
                    return
                with self._lock:
                    if name in self._silent:
                        continue
                with contextlib.suppress(apierrors.ApiError):  # next round tries again
                    self._renew(name)
            self._stop.wait(max(0.0, self.config.renew_seconds - (time.monotonic() - started)))

    # -- pods -----------------------------------------------------------------------------
    def _watch_pods(self) -> None:
        mine = self._index
        rv = ""
        while not self._stop.is_set():
            try:
                stream = self.stub().WatchBatched(resources_pb2.WatchRequest(
                    kind="Pod", resource_version=rv, allow_bookmarks=True))
                stopper = threading.Thread(target=lambda s=stream: (self._stop.wait(),
                                                                    s.cancel()), daemon=True)
                stopper.start()
                for batch in stream:
                    for event in batch.events:
                        rv = event.resource_version or rv
                        if event.type not in ("ADDED", "MODIFIED"):
                            continue
                        pod = registry.unwrap(event.object)
                        if pod.spec.node_name in mine:
                            self._work.put(pod)
            except grpc.RpcError as e:
                if self._stop.is_set():
                    return
                if e.code() == grpc.StatusCode.OUT_OF_RANGE or "compacted" in str(e.details()):
                    rv = ""
                self._stop.wait(0.5)

    def _report_loop(self) -> None:
        while not self._stop.is_set():
            try:
                pod = self._work.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._lock:
                if pod.spec.node_name in self._silent:
                    continue
            self._handle_with_retry(pod)

    def _handle_with_retry(self, pod: pod_pb2.Pod, attempts: int = 8) -> None:
        """`handle`, retried from a fresh read after a failure: the master that serves
        the write may lag the one that served the watch (a Conflict on a version it has
        not applied yet), or be unavailable for a moment."""
        key = (pod.metadata.namespace, pod.metadata.name)
        for attempt in range(attempts):
            try:
                self.handle(pod)
                return
            except apierrors.NotFound:
                return
            except apierrors.ApiError:
                if self._stop.wait(min(2.0, 0.1 * 2 ** attempt)):
                    return
            try:
                pod = registry.unwrap(_call(self.stub().Get, resources_pb2.GetRequest(
                    kind="Pod", namespace=key[0], name=key[1])))
            except apierrors.ApiError:
                continue

    def handle(self, pod: pod_pb2.Pod) -> None:
        """What an agent does for one pod event: finish a deletion, or report Running."""
        stub = self.stub()
        key = (pod.metadata.namespace, pod.metadata.name)
        if pod.metadata.deletion_timestamp:
            with contextlib.suppress(apierrors.NotFound):
                _call(stub.Delete, resources_pb2.DeleteRequest(
                    kind="Pod", namespace=key[0], name=key[1], grace_period_seconds=0,
                    precondition_uid=pod.metadata.uid))
            return
        if pod.status.phase == "Running" or self._reported.get(key) == pod.metadata.uid:
            return
        now = format_time(time.time())
        status = pod_pb2.Pod()
        status.CopyFrom(pod)
        status.status.phase = "Running"
        status.status.host_ip = self._node_ip(pod.spec.node_name)
        status.status.pod_ip = self._pod_ip(pod)
        del status.status.pod_ips[:]
        status.status.pod_ips.add(ip=status.status.pod_ip)
        status.status.start_time = now
        del status.status.container_statuses[:]
        for container in pod.spec.containers:
            cs = status.status.container_statuses.add(name=container.name,
                                                      image=container.image, ready=True,
                                                      started=True)
            cs.state.running.started_at = now
            cs.container_id = f"hollow://{pod.metadata.uid[:12]}-{container.name}"
        for kind in ("Initialized", "ContainersReady", "Ready"):
            _set_condition(status.status.conditions, kind, now)
        _call(stub.UpdateStatus, resources_pb2.UpdateRequest(object=registry.wrap(status)))
        self._reported[key] = pod.metadata.uid
        self.reports += 1

    def _pod_ip(self, pod: pod_pb2.Pod) -> str:
        digest = abs(hash(pod.metadata.uid)) % (250 * 250)
        index = self._index.get(pod.spec.node_name, 0)
        return f"10.{64 + index // 256}.{index % 256}.{digest % 250 + 2}"


def _set_condition(conditions, kind: str, now: str) -> None:
    for cond in conditions:
        if cond.type == kind:
            if cond.status != "True":
                cond.last_transition_time = now
            cond.status = "True"
            return
    conditions.add(type=kind, status="True", last_transition_time=now)


def running_pods(pods: Iterable[pod_pb2.Pod]) -> int:
    return sum(1 for p in pods if p.status.phase == "Running")
