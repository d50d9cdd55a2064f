"""The scheduler loop: pending pods from the cache -> `scheduling.schedule` -> bindings
written in batches (one Raft transaction per `bind_chunk` pods through ObjectApi.bind_pods).

```
 pod change ─> index: pending keys, bound (node, requests) ─> dirty when a pod is
               pending or resources were freed
 cycle: pending pods (oldest first, minus assumed and backing-off ones)
        node states = PlacedPods.states(cache nodes): bound + assumed pods, rebuilt only
                      for nodes that changed ─> plan = schedule(...)
        bind_pods(chunk) ── Conflict ──> split the chunk, bind the halves
        failures ─> PodScheduled=False (Unschedulable) + FailedScheduling event
```

Chunks are bound in the background by up to 4 concurrent transactions (the Raft log
batches them; at most `BINDS_IN_FLIGHT` chunks wait), so the next cycle decides while the
last one's bindings commit, as Kubernetes' scheduler binds asynchronously. Assumed pods: a
pod is counted on its chosen node from the moment it is decided until the cache shows the
binding (or `assume_seconds` pass, or the binding fails), so no cycle double-books a node
or decides a pod twice. An unschedulable
pod is retried when a node, volume or claim changes, a pod goes away, or after
`retry_unschedulable_seconds`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from raftkube import apierrors
from raftkube.api.v1 import pod_pb2
from raftkube.logging_config import get_logger
from raftkube.masters.controllers.manager import ControllerContext, submit_as_caller
from raftkube.masters.controllers.objects_util import TERMINAL_PHASES, condition, copy_of
from raftkube.masters.controllers.placed_pods import PlacedPods
from raftkube.masters.controllers.scheduling import (
    PodNeeds,
    SchedulerConfig,
    pod_needs,
    schedule,
)
from raftkube.masters.object_api import rfc3339_now, set_condition

log = get_logger(__name__)

PodKey = tuple[str, str]
BINDS_IN_FLIGHT = 8  # bind transactions submitted and not finished; a cycle waits beyond


@dataclass
class Scheduler:
    """Leader-only scheduler (a controller of the controller manager)."""

    context: ControllerContext
    config: SchedulerConfig = field(default_factory=SchedulerConfig)
    assume_seconds: float = 30.0
    name: str = "scheduler"
    _dirty: threading.Event = field(default_factory=threading.Event)
    _epoch: int = 0
    _assumed: dict[PodKey, tuple[str, float, PodNeeds]] = field(default_factory=dict)
    _unschedulable: dict[PodKey, tuple[int, float, str]] = field(default_factory=dict)
    _start: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: set[PodKey] = field(default_factory=set)
    _placed: PlacedPods = field(default_factory=PlacedPods)
    # bound pods' (node, needs), kept here although PlacedPods knows the node: asking it
    # takes its lock on the cache thread for every bound pod's change (measured slower)
    _bound: dict[PodKey, tuple[str, PodNeeds]] = field(default_factory=dict)
    _binders: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="scheduler-bind"))
    _in_flight: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(BINDS_IN_FLIGHT))
    bound_total: int = 0

    def on_change(self, kind: str, namespace: str, name: str) -> None:
        """Keep the index of pending and bound pods current (cheap: one pod per call)."""
        if kind == "Pod":
            key = (namespace, name)
            pod = self.context.cache.get("Pod", namespace, name)
            with self._lock:
                if pod is None or pod.status.phase in TERMINAL_PHASES or (
                        not pod.spec.node_name and pod.metadata.deletion_timestamp):
                    self._pending.discard(key)
                    self._assumed.pop(key, None)
                    self._placed.remove(key)
                    if self._bound.pop(key, None) is not None or pod is None:
                        self._epoch += 1  # resources were freed
                        self._dirty.set()
                    return
                if pod.spec.node_name:
                    node = pod.spec.node_name
                    self._pending.discard(key)
                    assumed = self._assumed.pop(key, None)
                    known = self._bound.get(key)
                    if known is None or known[0] != node:
                        # what this scheduler extracted when it placed the pod, if it did
                        needs = (assumed[2] if assumed is not None and assumed[0] == node
                                 else pod_needs(pod, {}, {}))
                        self._bound[key] = (node, needs)
                        # counted already when this scheduler placed it there
                        self._placed.place(key, node, needs,
                                           counted=assumed is not None and assumed[0] == node)
                    return
                if self._bound.pop(key, None) is not None:
                    self._placed.remove(key)
                self._pending.add(key)
            self._dirty.set()
        elif kind in ("Node", "PersistentVolume", "PersistentVolumeClaim"):
            self._epoch += 1
            self._dirty.set()

    def run(self, stop: threading.Event) -> None:
        self._dirty.set()
        try:
            while not stop.is_set():
                if not self._dirty.wait(1.0) and not self._unschedulable:
                    continue
                self._dirty.clear()
                try:
                    if self.cycle():
                        self._dirty.set()
                except apierrors.ApiError as e:
                    log.warning("scheduling cycle failed", error=str(e))
                    stop.wait(0.2)
                    self._dirty.set()
        finally:
            self._binders.shutdown(wait=True)

    # -- one cycle ------------------------------------------------------------------------
    def cycle(self) -> bool:
        """Schedule one batch; True when more pending pods remain."""
        cache = self.context.cache
        now = time.monotonic()
        with self._lock:
            pending_keys = list(self._pending)
            for key in [k for k, a in self._assumed.items() if now - a[1] >= self.assume_seconds]:
                self._assumed.pop(key)
                if key not in self._bound:
                    self._placed.remove(key)
            assumed = set(self._assumed)
        pending: list[pod_pb2.Pod] = []
        for key in pending_keys:
            if key in assumed:
                continue
            pod = cache.get("Pod", *key)
            if pod is None or pod.spec.node_name or pod.metadata.deletion_timestamp:
                continue
            failed = self._unschedulable.get(key)
            if failed is not None and failed[0] == self._epoch and (
                    now - failed[1] < self.config.retry_unschedulable_seconds):
                continue
            pending.append(pod)
        for key in [k for k in self._unschedulable if k not in self._pending]:
            self._unschedulable.pop(key, None)
        if not pending:
            return False
        pending.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
        batch = pending[: self.config.batch_size]
        claims = {(c.metadata.namespace, c.metadata.name): c
                  for c in cache.list("PersistentVolumeClaim")}
        volumes = {v.metadata.name: v for v in cache.list("PersistentVolume")}
        nodes = self._placed.states(cache.list("Node"))
        by_key = {(p.metadata.namespace, p.metadata.name): p for p in batch}
        needs = {(p.metadata.namespace, p.metadata.name): pod_needs(p, claims, volumes)
                 for p in batch}
        plan = schedule(list(needs.values()), nodes, self.config, self._start)
        self._start += len(batch) * max(1, self.config.nodes_to_score)
        epoch = self._epoch
        assumed_at = time.monotonic()
        with self._lock:
            for ns, name, node in plan.bindings:
                self._assumed[(ns, name)] = (node, assumed_at, needs[(ns, name)])
                self._placed.place((ns, name), node, needs[(ns, name)], counted=True)
        for start in range(0, len(plan.bindings), self.config.bind_chunk):
            chunk = [(by_key[(ns, name)], node, needs[(ns, name)])
                     for ns, name, node in plan.bindings[start: start + self.config.bind_chunk]]
            self._in_flight.acquire()  # at most BINDS_IN_FLIGHT chunks; the next cycle waits
            submit_as_caller(self._binders, self._bind_in_background, chunk)
        for key, message in plan.failures.items():
            self._unschedulable[key] = (epoch, time.monotonic(), message)
            self._report_unschedulable(by_key[key], message)
        return len(pending) > len(batch)

    def _bind_in_background(self, chunk: list[tuple[pod_pb2.Pod, str, PodNeeds]]) -> None:
        """A binder thread's job: bind `chunk`; when that fails, the pods are no longer
        assumed and the next cycle decides about them again."""
        try:
            self._bind(chunk)
        except apierrors.ApiError as e:
            log.warning("binding failed", pods=len(chunk), error=str(e))
            self._forget([pod for pod, _, _ in chunk])
        except Exception:  # nobody waits on this thread's future: log, never lose it
            log.exception("binding failed", pods=len(chunk))
            self._forget([pod for pod, _, _ in chunk])
        finally:
            self._in_flight.release()

    def _forget(self, pods: list[pod_pb2.Pod]) -> None:
        with self._lock:
            for pod in pods:
                key = (pod.metadata.namespace, pod.metadata.name)
                self._assumed.pop(key, None)
                if key not in self._bound:
                    self._placed.remove(key)
        self._dirty.set()

    def _bind(self, chunk: list[tuple[pod_pb2.Pod, str, PodNeeds]]) -> None:
        """Bind all of `chunk` in one transaction; on a conflict bind the halves apart so
        one changed pod does not hold back the others (a pod that cannot be bound is
        forgotten: the cache shows why, and the next cycle decides again)."""
        if not chunk:
            return
        try:
            self.context.api.bind_pods([(p.metadata.namespace, p.metadata.name,
                                         p.metadata.resource_version, node)
                                        for p, node, _ in chunk])
        except (apierrors.Conflict, apierrors.NotFound, apierrors.Invalid) as e:
            if len(chunk) == 1:
                log.debug("binding skipped", pod=chunk[0][0].metadata.name, reason=str(e))
                self._forget([chunk[0][0]])
                return
            middle = len(chunk) // 2
            self._bind(chunk[:middle])
            self._bind(chunk[middle:])
            return
        for pod, node, _ in chunk:
            key = (pod.metadata.namespace, pod.metadata.name)
            self._unschedulable.pop(key, None)
            self.context.record(pod, "Normal", "Scheduled",
                                f"Successfully assigned {key[0]}/{key[1]} to {node}")
        self.bound_total += len(chunk)

    def _report_unschedulable(self, pod: pod_pb2.Pod, message: str) -> None:
        self.context.record(pod, "Warning", "FailedScheduling", message)
        current = condition(pod.status.conditions, "PodScheduled")
        if current is not None and current.status == "False" and current.message == message:
            return
        updated = copy_of(pod)
        set_condition(updated.status.conditions, "PodScheduled", "False", rfc3339_now(),
                      reason="Unschedulable", message=message)
        with contextlib.suppress(apierrors.Conflict, apierrors.NotFound):
            self.context.api.update_status(updated)
