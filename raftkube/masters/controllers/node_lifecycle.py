"""Node lifecycle: leases, NotReady, eviction and fencing.

Agents renew a Lease (namespace `raftkube-node-lease`, name = node) every
`LEASE_RENEW_SECONDS`. The controller measures staleness on its own monotonic clock from
the moment it *observed* a renewal (a new leader counts every lease as renewed when its
term starts), so clock skew between machines cannot make it early.

```
 stale >= node_monitor_grace ─> Ready=Unknown, taint unreachable:NoExecute, NodeNotReady;
        its pods' Ready condition set False (the Services' endpoints drop them at once)
 stale >= grace + toleration ─> ordinary pods evicted (graceful delete: replaced at once)
 stale >= FENCING_TIMEOUT_SECONDS + fencing_margin ─> StatefulSet pods and every pod stuck
        in Terminating on that node are force-deleted (grace 0)
 lease renewed again ─> taint removed (the agent reports Ready itself)
```
Before it acts on a node past the grace period, the controller reads that node's Lease
from the store: its cache follows each kind on its own watch, and may show an agent's new
Ready beside its old Lease.

Fencing contract with the agent (`FENCING_TIMEOUT_SECONDS`): an agent that has not renewed
its lease successfully for FENCING_TIMEOUT_SECONDS (counted from when it sent the last
successful renewal) kills its StatefulSet pods and the pods being deleted by itself; on
Podman a watchdog process does it when the agent process is dead, hung or stopped. The
controller force-deletes a pod of a stale node only after observing no renewal for longer
than that plus a margin, and the agent's last successful renewal happened before the
controller observed it; so when the replacement starts the old copy is already stopped:
two copies of a StatefulSet pod never run at once, and no pod hangs in Terminating.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from raftkube import apierrors
from raftkube.api.v1 import core_pb2, pod_pb2
from raftkube.logging_config import get_logger
from raftkube.masters.controllers.manager import ControllerContext
from raftkube.masters.controllers.objects_util import condition, controller_of, copy_of
from raftkube.masters.controllers.scheduling import UNREACHABLE_TAINT
from raftkube.masters.object_api import rfc3339_now, set_condition

log = get_logger(__name__)

LEASE_NAMESPACE = "raftkube-node-lease"
LEASE_RENEW_SECONDS = 2.0
"""How often an agent renews its node Lease."""
FENCING_TIMEOUT_SECONDS = 6.0
"""An agent that could not renew its Lease for this long stops all its pods itself."""


@dataclass(frozen=True)
class NodeLifecycleConfig:
    """MasterConfig.controllers.nodeLifecycle.

    node_monitor_grace_seconds: no observed lease renewal for this long -> NotReady.
    eviction_toleration_seconds: then ordinary pods are evicted after this long (a pod's
      own toleration of node.kubernetes.io/unreachable with tolerationSeconds wins).
    fencing_timeout_seconds: what agents use (FENCING_TIMEOUT_SECONDS); the controller
      must use the same value as the agents of the cluster.
    fencing_margin_seconds: extra wait beyond the fencing timeout before force deletion.
    interval_seconds: how often the controller looks.
    """

    node_monitor_grace_seconds: float = 6.0
    eviction_toleration_seconds: float = 2.0
    fencing_timeout_seconds: float = FENCING_TIMEOUT_SECONDS
    fencing_margin_seconds: float = 1.0
    interval_seconds: float = 0.5

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> NodeLifecycleConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"controllers.nodeLifecycle.{unknown[0]}: unknown field "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**{k: float(v) for k, v in options.items()})  # type: ignore[arg-type]

    @property
    def force_after(self) -> float:
        return self.fencing_timeout_seconds + self.fencing_margin_seconds


@dataclass(frozen=True)
class NodeLifecyclePlan:
    not_ready: tuple[str, ...] = ()
    taint: tuple[str, ...] = ()
    untaint: tuple[str, ...] = ()
    evict: tuple[pod_pb2.Pod, ...] = ()
    force_delete: tuple[pod_pb2.Pod, ...] = ()
    mark_not_ready: tuple[pod_pb2.Pod, ...] = ()


def has_unreachable_taint(node: core_pb2.Node) -> bool:
    return any(t.key == UNREACHABLE_TAINT and t.effect == "NoExecute" for t in node.spec.taints)


def toleration_seconds(pod: pod_pb2.Pod, default: float) -> float | None:
    """How long `pod` stays on an unreachable node; None = forever."""
    for tol in pod.spec.tolerations:
        if tol.effect not in ("", "NoExecute"):
            continue
        if (tol.operator == "Exists" and tol.key in ("", UNREACHABLE_TAINT)) or (
                tol.key == UNREACHABLE_TAINT):
            return float(tol.toleration_seconds) if tol.HasField("toleration_seconds") else None
    return default


def is_stateful_pod(pod: pod_pb2.Pod) -> bool:
    ref = controller_of(pod)
    return ref is not None and ref.kind == "StatefulSet"


def plan_node_lifecycle(nodes: Iterable[core_pb2.Node], pods: Iterable[pod_pb2.Pod],
                        stale_for: Mapping[str, float], config: NodeLifecycleConfig,
                        ) -> NodeLifecyclePlan:
    """Decide from how long each node's lease has gone unrenewed (`stale_for`, seconds;
    nodes that no longer exist may appear too)."""
    grace = config.node_monitor_grace_seconds
    not_ready, taint, untaint = [], [], []
    known = set()
    for node in nodes:
        name = node.metadata.name
        known.add(name)
        stale = stale_for.get(name, 0.0)
        if stale >= grace:
            ready = condition(node.status.conditions, "Ready")
            if ready is None or ready.status != "Unknown":
                not_ready.append(name)
            if not has_unreachable_taint(node):
                taint.append(name)
        elif has_unreachable_taint(node):
            untaint.append(name)
    evict, force, mark = [], [], []
    for pod in pods:
        node_name = pod.spec.node_name
        if not node_name:
            continue
        stale = stale_for.get(node_name, 0.0)
        if node_name not in known:
            if stale >= config.force_after:
                force.append(pod)
            continue
        if stale < grace:
            continue
        ready = condition(pod.status.conditions, "Ready")
        if ready is not None and ready.status == "True" and not pod.metadata.deletion_timestamp:
            mark.append(pod)
        if stale >= config.force_after and (
                pod.metadata.deletion_timestamp or is_stateful_pod(pod)):
            force.append(pod)
            continue
        if pod.metadata.deletion_timestamp or is_stateful_pod(pod):
            continue
        tolerated = toleration_seconds(pod, config.eviction_toleration_seconds)
        if tolerated is not None and stale >= grace + tolerated:
            evict.append(pod)
    return NodeLifecyclePlan(tuple(not_ready), tuple(taint), tuple(untaint), tuple(evict),
                             tuple(force), tuple(mark))


@dataclass
class NodeLifecycleController:
    """Applies `plan_node_lifecycle` every `interval_seconds`."""

    context: ControllerContext
    config: NodeLifecycleConfig = field(default_factory=NodeLifecycleConfig)
    name: str = "node-lifecycle"
    clock: object = time.monotonic
    _seen: dict[str, tuple[str, float]] = field(default_factory=dict)

    def on_change(self, kind: str, namespace: str, name: str) -> None:
        return None

    def observe(self, nodes: Iterable[core_pb2.Node]) -> dict[str, float]:
        """Seconds since a renewal of each node's lease was observed, for `nodes` (the
        cached Nodes) and every node the cache has pods on."""
        now = self.clock()  # type: ignore[operator]
        cache = self.context.cache
        names = {n.metadata.name for n in nodes}
        names.update(cache.nodes_with_pods())
        stale = {}
        for name in names:
            lease = cache.get("Lease", LEASE_NAMESPACE, name)
            version = lease.metadata.resource_version if lease is not None else ""
            seen = self._seen.get(name)
            if seen is None or (version and seen[0] != version):
                self._seen[name] = (version, now)
                seen = self._seen[name]
            stale[name] = now - seen[1]
        return stale

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.config.interval_seconds):
            try:
                self.step()
            except apierrors.ApiError as e:
                log.warning("node lifecycle step failed", error=str(e))

    def confirm_stale(self, stale: dict[str, float]) -> None:
        """Before anything is done to a node past the grace period, read its Lease from
        the store itself: the cache follows each kind on its own watch, so it can show an
        agent's fresh Ready status while still holding its old Lease. A renewal found this
        way counts as observed now (its entry in `stale` becomes 0)."""
        now = self.clock()  # type: ignore[operator]
        for name, seconds in stale.items():
            if seconds < self.config.node_monitor_grace_seconds:
                continue
            try:
                lease = self.context.api.get("Lease", LEASE_NAMESPACE, name)
            except apierrors.NotFound:
                continue
            version = lease.metadata.resource_version
            seen = self._seen.get(name)
            if seen is None or (version and seen[0] != version):
                self._seen[name] = (version, now)
                stale[name] = 0.0

    def step(self) -> NodeLifecyclePlan:
        cache = self.context.cache
        nodes = cache.list("Node")
        stale = self.observe(nodes)
        self.confirm_stale(stale)
        known = {n.metadata.name for n in nodes}
        # the plan acts only on pods of nodes that are gone or past the grace period: the
        # others are not even read (10,000 pods on healthy nodes cost nothing)
        grace = self.config.node_monitor_grace_seconds
        pods = [pod for name, seconds in stale.items()
                if name not in known or seconds >= grace
                for pod in cache.list_on_node(name)]
        plan = plan_node_lifecycle(nodes, pods, stale, self.config)
        api = self.context.api
        now = rfc3339_now()
        for name in plan.not_ready:
            node = cache.get("Node", "", name)
            if node is None:
                continue
            fresh = copy_of(node)
            set_condition(fresh.status.conditions, "Ready", "Unknown", now,
                          reason="NodeStatusUnknown",
                          message="Agent stopped renewing its lease.")
            _quietly(lambda f=fresh: api.update_status(f))
            self.context.record(node, "Normal", "NodeNotReady",
                                f"Node {name} status is now: NodeNotReady")
        for name in plan.taint + plan.untaint:
            node = cache.get("Node", "", name)
            if node is None:
                continue
            fresh = copy_of(node)
            keep = [t for t in fresh.spec.taints if t.key != UNREACHABLE_TAINT]
            del fresh.spec.taints[:]
            fresh.spec.taints.extend(keep)
            if name in plan.taint:
                fresh.spec.taints.add(key=UNREACHABLE_TAINT, effect="NoExecute", time_added=now)
            _quietly(lambda f=fresh: api.update(f))
        for pod in plan.mark_not_ready:
            fresh = copy_of(pod)
            set_condition(fresh.status.conditions, "Ready", "False", now,
                          reason="NodeNotReady", message="Node is not ready")
            if _quietly(lambda f=fresh: api.update_status(f)):
                self.context.record(pod, "Warning", "NodeNotReady", "Node is not ready")
        for pod in plan.evict:
            ns, pname = pod.metadata.namespace, pod.metadata.name
            if _quietly(lambda n=ns, p=pname, u=pod.metadata.uid: api.delete(
                    "Pod", n, p, precondition_uid=u)):
                self.context.record(pod, "Normal", "TaintManagerEviction",
                                    f"Marking for deletion Pod {ns}/{pname}: node "
                                    f"{pod.spec.node_name} is unreachable")
        for pod in plan.force_delete:
            ns, pname = pod.metadata.namespace, pod.metadata.name
            if _quietly(lambda n=ns, p=pname, u=pod.metadata.uid: api.delete(
                    "Pod", n, p, grace_period_seconds=0, precondition_uid=u)):
                self.context.record(pod, "Warning", "NodeFenced",
                                    f"Force-deleted pod {ns}/{pname}: node "
                                    f"{pod.spec.node_name} has not renewed its lease for "
                                    f"more than the fencing timeout")
        return plan


def _quietly(action) -> bool:
    try:
        action()
        return True
    except (apierrors.Conflict, apierrors.NotFound):
        return False
