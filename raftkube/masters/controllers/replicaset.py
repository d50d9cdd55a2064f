"""ReplicaSet -> Pods.

Pure part, `plan_replica_set(rs, pods, now)`:
- pods are the ReplicaSet's (controller reference to its uid) plus orphans matching its
  selector (adopted); owned pods that stop matching the selector are released;
- failed or succeeded pods are deleted (and so replaced);
- active pods (not terminal, not being deleted) are brought to spec.replicas: missing ones
  created from the template, extra ones deleted preferring unscheduled, then pending, then
  not ready, then the most recently ready, then the newest;
- status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for
  minReadySeconds), observedGeneration.

The loop creates pods in batches, one transaction each (slow start 1, 2, 4, ... like
Kubernetes, then `CREATE_PARALLEL` full batches at a time), and waits for the cache to
show its own creations and deletions before deciding again (expectations).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from raftkube import apierrors
from raftkube.api.v1 import apps_pb2, pod_pb2
from raftkube.masters.controllers.keyed_loop import KeyedController
from raftkube.masters.controllers.manager import ControllerContext, submit_as_caller
from raftkube.masters.controllers.objects_util import (
    TERMINAL_PHASES,
    condition,
    controller_of,
    controller_ref,
    copy_of,
    pod_is_active,
    pod_is_available,
    pod_is_ready,
    pod_ready_since,
)
from raftkube.objects.selectors import selector_from_proto

MAX_CREATES_PER_SYNC = 2000
CREATE_BATCH = 100  # pods per transaction (a compare and a put each; the store takes 256)
CREATE_PARALLEL = 4  # transactions in flight per sync once slow start reached CREATE_BATCH
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class ReplicaSetPlan:
    """create: how many pods to create; delete/adopt/release: pods; status: the new status
    (None when unchanged); recheck_after: seconds until a pod becomes available."""

    create: int = 0
    delete: tuple[pod_pb2.Pod, ...] = ()
    adopt: tuple[pod_pb2.Pod, ...] = ()
    release: tuple[pod_pb2.Pod, ...] = ()
    status: apps_pb2.ReplicaSetStatus | None = None
    recheck_after: float | None = None


def deletion_rank(pod: pod_pb2.Pod) -> tuple:
    """Sort key: pods to delete first come first."""
    ready_since = pod_ready_since(pod)
    return (
        0 if not pod.spec.node_name else 1,
        0 if pod.status.phase == "Pending" else 1,
        0 if not pod_is_ready(pod) else 1,
        -(ready_since or 0.0),
        _negated(pod.metadata.creation_timestamp),
        pod.metadata.name,
    )


def _negated(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def owned_and_orphans(owner_uid: str, selector, pods: Iterable[pod_pb2.Pod],
                      ) -> tuple[list[pod_pb2.Pod], list[pod_pb2.Pod], list[pod_pb2.Pod]]:
    """(owned and matching, orphans to adopt, owned but no longer matching)."""
    owned, orphans, release = [], [], []
    for pod in pods:
        ref = controller_of(pod)
        matches = selector.matches(pod.metadata.labels)
        if ref is not None and ref.uid == owner_uid:
            (owned if matches else release).append(pod)
        elif ref is None and matches and not pod.metadata.deletion_timestamp:
            orphans.append(pod)
    return owned, orphans, release


def plan_replica_set(rs: apps_pb2.ReplicaSet, pods: Sequence[pod_pb2.Pod],
                     now: float) -> ReplicaSetPlan:
    """The plan for one ReplicaSet given the pods of its namespace (see module doc)."""
    selector = selector_from_proto(rs.spec.selector)
    if selector.empty():
        return ReplicaSetPlan()
    owned, orphans, release = owned_and_orphans(rs.metadata.uid, selector, pods)
    deleting = bool(rs.metadata.deletion_timestamp)
    adopt = [] if deleting else orphans
    mine = owned + adopt
    finished = [p for p in mine if p.status.phase in TERMINAL_PHASES
                and not p.metadata.deletion_timestamp]
    active = [p for p in mine if pod_is_active(p)]
    desired = rs.spec.replicas if rs.spec.HasField("replicas") else 1
    create = 0
    delete = list(finished)
    if not deleting:
        if len(active) < desired:
            create = min(desired - len(active), MAX_CREATES_PER_SYNC)
        elif len(active) > desired:
            delete += sorted(active, key=deletion_rank)[: len(active) - desired]
    template_labels = rs.spec.template.metadata.labels
    min_ready = rs.spec.min_ready_seconds
    status = apps_pb2.ReplicaSetStatus()
    status.CopyFrom(rs.status)
    status.replicas = len(active)
    status.fully_labeled_replicas = sum(
        1 for p in active if all(p.metadata.labels.get(k) == v for k, v in template_labels.items()))
    ready = [p for p in active if pod_is_ready(p)]
    status.ready_replicas = len(ready)
    # Without minReadySeconds every ready pod is available: skip parsing each pod's
    # Ready transition time (this ran for every pod on every sync).
    status.available_replicas = len(ready) if min_ready <= 0 else sum(
        1 for p in ready if pod_is_available(p, min_ready, now))
    status.observed_generation = rs.metadata.generation
    recheck = None
    if min_ready > 0:
        waits = [min_ready - (now - since) for p in active
                 if (since := pod_ready_since(p)) is not None and now - since < min_ready]
        if waits:
            recheck = max(0.1, min(waits))
    return ReplicaSetPlan(create, tuple(delete), tuple(adopt), tuple(release),
                          None if status == rs.status else status, recheck)


def replicaset_view(pod: pod_pb2.Pod) -> tuple:
    """Everything of a pod that `plan_replica_set` reads: uid, labels, owner references,
    deletion, phase and the Ready condition (status and since when). Two versions of a
    pod with the same view lead to the same plan."""
    ready = condition(pod.status.conditions, "Ready")
    return (pod.metadata.uid, tuple(sorted(pod.metadata.labels.items())),
            tuple((r.uid, r.kind, r.name, r.controller)
                  for r in pod.metadata.owner_references),
            pod.metadata.deletion_timestamp, pod.status.phase,
            (ready.status, ready.last_transition_time) if ready is not None else None)


def pod_from_template(rs: apps_pb2.ReplicaSet, name: str) -> pod_pb2.Pod:
    """A new pod of `rs` (template labels, annotations and spec; controller reference)."""
    pod = pod_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = rs.metadata.namespace
    pod.metadata.labels.update(rs.spec.template.metadata.labels)
    pod.metadata.annotations.update(rs.spec.template.metadata.annotations)
    pod.metadata.owner_references.append(controller_ref(rs))
    pod.spec.CopyFrom(rs.spec.template.spec)
    return pod


def random_suffix(length: int = 5) -> str:
    """`length` characters of NAME_ALPHABET from one read of the system's randomness
    (a character comes up 10 or 9 times in 256 by modulo bias: names only need to differ)."""
    return "".join(NAME_ALPHABET[b % len(NAME_ALPHABET)] for b in secrets.token_bytes(length))


class Expectations:
    """Names a controller created or deleted that the cache does not show yet, per key."""

    def __init__(self, timeout: float = 15.0) -> None:
        self._lock = threading.Lock()
        self._items: dict[Hashable, tuple[set[str], set[str], float]] = {}
        self._timeout = timeout

    def expect(self, key: Hashable, creates: Iterable[str] = (), deletes: Iterable[str] = ()
               ) -> None:
        with self._lock:
            add, remove, _ = self._items.get(key, (set(), set(), 0.0))
            self._items[key] = (add | set(creates), remove | set(deletes),
                                time.monotonic() + self._timeout)

    def forget(self, key: Hashable, name: str) -> None:
        """A write for `name` failed: do not wait for it."""
        with self._lock:
            if key in self._items:
                self._items[key][0].discard(name)
                self._items[key][1].discard(name)

    def deletes(self, key: Hashable) -> set[str]:
        """Names whose deletion is still expected."""
        with self._lock:
            item = self._items.get(key)
            return set(item[1]) if item else set()

    def satisfied(self, key: Hashable, present: set[str], gone_or_terminating: set[str]) -> bool:
        """True when every expected creation is in `present` and every expected deletion
        in `gone_or_terminating` (or the expectations timed out)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return True
            add, remove, deadline = item
            add -= present
            remove -= gone_or_terminating
            if (not add and not remove) or time.monotonic() > deadline:
                self._items.pop(key, None)
                return True
            return False


class ReplicaSetController(KeyedController):
    """Keeps each ReplicaSet's pods at spec.replicas (keys: (namespace, name))."""

    name = "replicaset"
    workers = 4

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.expectations = Expectations()
        self._pod_views: dict[tuple[str, str], tuple] = {}  # last view enqueued, per pod

    def keys_for(self, kind: str, namespace: str, name: str) -> Iterable[Hashable]:
        """A Pod change counts only when what a ReplicaSet's plan reads of the pod changed
        (`replicaset_view`): a binding or an IP changes nothing here, and 10,000 of them
        would be 10,000 syncs each reading all of a ReplicaSet's pods."""
        if kind == "ReplicaSet":
            return [(namespace, name)]
        if kind != "Pod":
            return []
        cache = self.context.cache
        pod = cache.get("Pod", namespace, name)
        if pod is None:
            self._pod_views.pop((namespace, name), None)
            # Gone: any ReplicaSet of the namespace may have lost it.
            return [(namespace, rs.metadata.name) for rs in cache.list("ReplicaSet", namespace)]
        view = replicaset_view(pod)
        if self._pod_views.get((namespace, name)) == view:
            return []
        self._pod_views[(namespace, name)] = view
        ref = controller_of(pod)
        if ref is not None:
            return [(namespace, ref.name)] if ref.kind == "ReplicaSet" else []
        return [(namespace, rs.metadata.name) for rs in cache.list("ReplicaSet", namespace)
                if selector_from_proto(rs.spec.selector).matches(pod.metadata.labels)]

    def sync(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        cache = self.context.cache
        rs = cache.get("ReplicaSet", namespace, name)
        if rs is None:
            return None
        uid = rs.metadata.uid
        pods = (cache.list_controlled("Pod", namespace, uid)
                + cache.list_controlled("Pod", namespace, ""))
        present = {p.metadata.name for p in pods}
        terminating = {p.metadata.name for p in pods if p.metadata.deletion_timestamp}
        gone = terminating | (self.expectations.deletes(key) - present)
        if not self.expectations.satisfied(key, present, gone):
            return 0.5
        plan = plan_replica_set(rs, pods, time.time())
        api = self.context.api
        for pod in plan.adopt:
            adopted = copy_of(pod)
            adopted.metadata.owner_references.append(controller_ref(rs))
            api.update(adopted)
        for pod in plan.release:
            released = copy_of(pod)
            keep = [r for r in released.metadata.owner_references if r.uid != rs.metadata.uid]
            del released.metadata.owner_references[:]
            released.metadata.owner_references.extend(keep)
            api.update(released)
        if plan.delete:
            self.expectations.expect(key, deletes=[p.metadata.name for p in plan.delete])
            for pod in plan.delete:
                try:
                    api.delete("Pod", namespace, pod.metadata.name,
                               precondition_uid=pod.metadata.uid)
                    self.context.record(rs, "Normal", "SuccessfulDelete",
                                        f"Deleted pod: {pod.metadata.name}")
                except (apierrors.NotFound, apierrors.Conflict):
                    self.expectations.forget(key, pod.metadata.name)
        if plan.create:
            self._create(key, rs, plan.create)
        if plan.status is not None:
            fresh = copy_of(rs)
            fresh.status.CopyFrom(plan.status)
            api.update_status(fresh)
        return plan.recheck_after


    def _create(self, key: Hashable, rs: apps_pb2.ReplicaSet, count: int) -> None:
        """Create `count` pods in waves of 1, 2, 4, ... up to `CREATE_BATCH` pods, each wave
        one store transaction (a wave that fails stops the rest: a broken template costs
        one failed write, not hundreds). After the slow start, the rest go in waves of
        `CREATE_BATCH`, `CREATE_PARALLEL` transactions at a time (the Raft log commits
        them together); the first failing group stops the rest."""
        created = 0
        wave = 1
        while created < count and wave <= CREATE_BATCH:
            size = min(wave, count - created)
            self._create_wave(key, rs, size)
            created += size
            wave *= 2
        sizes = [min(CREATE_BATCH, count - start) for start in range(created, count,
                                                                         CREATE_BATCH)]
        if not sizes:
            return
        with ThreadPoolExecutor(CREATE_PARALLEL, thread_name_prefix="replicaset-create") as pool:
            for start in range(0, len(sizes), CREATE_PARALLEL):
                group = [submit_as_caller(pool, self._create_wave, key, rs, size)
                         for size in sizes[start: start + CREATE_PARALLEL]]
                errors = [f.exception() for f in group]
                failed = next((e for e in errors if e is not None), None)
                if failed is not None:
                    raise failed

    def _fresh_names(self, rs: apps_pb2.ReplicaSet, count: int) -> list[str]:
        """`count` distinct pod names NAME-xxxxx taken by no pod the cache knows: one
        duplicate would fail the whole transaction (27^5 suffixes: two alike in a wave of
        100 happen about once in 3,000 waves)."""
        namespace = rs.metadata.namespace
        names: dict[str, None] = {}
        while len(names) < count:
            name = f"{rs.metadata.name}-{random_suffix()}"
            if name not in names and self.context.cache.get("Pod", namespace, name) is None:
                names[name] = None
        return list(names)

    def _create_wave(self, key: Hashable, rs: apps_pb2.ReplicaSet, size: int) -> None:
        """One transaction creating `size` pods (expected before, forgotten on failure)."""
        names = self._fresh_names(rs, size)
        pods = [pod_from_template(rs, name) for name in names]
        self.expectations.expect(key, creates=names)
        try:
            self.context.api.create_many(pods)
        except BaseException as e:  # whatever failed, these pods will not show up
            for name in names:
                self.expectations.forget(key, name)
            if isinstance(e, apierrors.ApiError):
                self.context.record(rs, "Warning", "FailedCreate", f"Error creating: {e}")
            raise
        for name in names:
            self.context.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {name}")
