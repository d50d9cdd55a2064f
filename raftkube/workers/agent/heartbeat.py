"""Node registration, Lease renewal and Node status: the agent's liveness signal.

    register()   create the Node (or update labels/taints/podCIDR of ours), renew the
                 Lease, then write our status (alive before Ready)
    loop, every lease_interval:
        renew Lease raftkube-node-lease/<node> (holderIdentity, renewTime with µs)
           success -> last_renewal = monotonic time the request was sent (the masters
                      saw it commit after that: fencing counted from it, `since_renewal()`,
                      is never later than the masters' count); on_renewed(last_renewal)
        Node status: written when it changed (images, readiness...) or every
           node_status_interval (heartbeat-light: the Lease is the liveness signal),
           and at once when a renewal succeeds after one was missed (the masters may
           have marked the Node NotReady meanwhile: our Ready must replace theirs)

The lease client has short deadlines so that a cluster that cannot be reached shows as a
growing `since_renewal()` quickly.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable

from raftkube import apierrors
from raftkube.api.v1 import coordination_pb2, core_pb2
from raftkube.client import Client
from raftkube.logging_config import get_logger
from raftkube.workers.agent.api_objects import now_rfc3339
from raftkube.workers.agent.config import LEASE_NAMESPACE, WorkerConfig
from raftkube.workers.agent.node_status import (
    MachineFacts,
    build_node,
    carry_transition_times,
    node_status_differs,
)
from raftkube.workers.runtime.interface import ContainerRuntimeError, Runtime

log = get_logger(__name__)


def detect_node_ip(masters: tuple[str, ...]) -> str:
    """The local address that routes to the first master (no packet is sent)."""
    host = masters[0].rsplit(":", 1)[0].strip("[]") if masters else "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, 9))
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class NodeHeartbeat:
    """Registers the Node and keeps its Lease fresh (see module docstring)."""

    def __init__(self, config: WorkerConfig, client: Client, lease_client: Client,
                 runtime: Runtime, facts: MachineFacts, node_ip: str,
                 runtime_version: str, agent_port: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 on_renewed: Callable[[float], None] | None = None) -> None:
        self.config = config
        self.client = client
        self.lease_client = lease_client
        self.runtime = runtime
        self.facts = facts
        self.node_ip = node_ip
        self.runtime_version = runtime_version
        self.agent_port = agent_port
        self.clock = clock
        self.on_renewed = on_renewed
        self.last_renewal = clock()
        self.renewals = 0
        self._last_status: core_pb2.NodeStatus | None = None
        self._last_status_at = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticks = 0

    def since_renewal(self) -> float:
        """Seconds since the last successful Lease renewal (or since start)."""
        return self.clock() - self.last_renewal

    def _desired(self) -> core_pb2.Node:
        try:
            images = self.runtime.list_images()
            ready = True
        except ContainerRuntimeError:
            images, ready = [], False
        return build_node(self.config, self.facts, images, self.node_ip, ready,
                          now_rfc3339(), self.runtime_version, self.agent_port)

    def register(self) -> core_pb2.Node:
        """Create or update our Node, renew the Lease, then write our status (idempotent);
        raises ApiError when the API refuses the Node."""
        desired = self._desired()
        nodes = self.client.nodes
        try:
            # read first: a create of an existing Node may be refused for its podCIDR
            # (already claimed: by this very Node) before AlreadyExists is considered
            current = nodes.get(self.config.node_name)
        except apierrors.NotFound:
            current = None
        if current is None:
            try:
                stored = self._create_node(desired)
            except apierrors.AlreadyExists:
                current = nodes.get(self.config.node_name)
        if current is not None:
            current.metadata.labels.update(desired.metadata.labels)
            if not current.spec.pod_cidr and desired.spec.pod_cidr:
                # podCIDR is set once (by us or the masters' allocator), never changed
                current.spec.pod_cidr = desired.spec.pod_cidr
                current.spec.pod_cidrs.append(desired.spec.pod_cidr)
            elif desired.spec.pod_cidr and desired.spec.pod_cidr != current.spec.pod_cidr:
                log.warning("configured podCIDR differs from the Node's; keeping the Node's",
                            configured=desired.spec.pod_cidr, node=current.spec.pod_cidr)
            present = {(t.key, t.effect) for t in current.spec.taints}
            # config taints are added; taints others put (e.g. unreachable) are kept
            current.spec.taints.extend(t for t in desired.spec.taints
                                       if (t.key, t.effect) not in present)
            stored = nodes.update(current)
        # Alive before Ready: a Node the masters marked NotReady while we were gone must
        # not show Ready beside a stale Lease, or the masters mark it NotReady again.
        self.renew_lease()
        for attempt in range(20):
            try:
                # the same (sticky) client as the create: another master's replica may not
                # have the new Node yet
                self._write_status(desired, stored.status, self.client)
                break
            except apierrors.NotFound:
                if attempt == 19:
                    raise
                time.sleep(0.1)
        return stored

    def _create_node(self, desired: core_pb2.Node, attempts: int = 20) -> core_pb2.Node:
        """Create the Node; Conflict (the masters' pod-subnet allocation raced another
        registration) is retried after a short jittered pause."""
        for attempt in range(attempts):
            try:
                return self.client.nodes.create(desired)
            except apierrors.Conflict:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 + random.random() * 0.2)
        raise AssertionError("unreachable")

    def _write_status(self, desired: core_pb2.Node, previous: core_pb2.NodeStatus,
                      client: Client | None = None) -> None:
        carry_transition_times(desired.status, previous)
        node = core_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = self.config.node_name
        node.status.CopyFrom(desired.status)
        # by default the short-deadline client: a slow cluster must not hold up renewals
        (client or self.lease_client).nodes.update_status(node)
        self._last_status = desired.status
        self._last_status_at = self.clock()

    def renew_lease(self) -> bool:
        """One renewal (creating the Lease when missing); True on success."""
        leases = self.lease_client.resource("Lease")
        lease = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
        lease.metadata.name = self.config.node_name
        lease.metadata.namespace = LEASE_NAMESPACE
        lease.spec.holder_identity = self.config.node_name
        lease.spec.lease_duration_seconds = self.config.lease_duration_seconds
        lease.spec.renew_time = now_rfc3339(micro=True)
        sent_at = self.clock()
        try:
            try:
                leases.update(lease)
            except apierrors.NotFound:
                lease.spec.acquire_time = lease.spec.renew_time
                leases.create(lease)
        except apierrors.ApiError as exc:
            log.warning("lease renewal failed", node=self.config.node_name, error=str(exc),
                        since_renewal=round(self.since_renewal(), 1))
            return False
        self.last_renewal = max(self.last_renewal, sent_at)
        self.renewals += 1
        if self.on_renewed is not None:
            self.on_renewed(self.last_renewal)
        return True

    def maybe_update_status(self, force: bool = False) -> None:
        """Write Node status when it changed, when node_status_interval has passed, or
        when `force`d."""
        desired = self._desired()
        due = force or (self.clock() - self._last_status_at
                        >= self.config.node_status_interval_seconds)
        if self._last_status is not None and not due and not node_status_differs(
                desired.status, self._last_status):
            return
        try:
            self._write_status(desired, self._last_status or core_pb2.NodeStatus())
        except apierrors.NotFound:
            self.register()  # our Node was deleted: register again

    def start(self) -> NodeHeartbeat:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """Check Node status now (e.g. an image was loaded)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def tick(self) -> None:
        """One heartbeat: renew the Lease; every ~10 s (or when poked) check Node status;
        after a renewal that follows a missed one, write Node status at once."""
        # long enough that the masters may have counted the node out (their grace is the
        # fencing timeout by default); shorter hiccups write nothing extra
        missed = self.since_renewal() > max(1.5 * self.config.lease_interval_seconds,
                                            self.config.fencing_timeout_seconds / 2)
        back = self.renew_lease() and missed
        status_every = max(1, int(10 / self.config.lease_interval_seconds))
        if self._ticks % status_every == 0 or self._wake.is_set() or back:
            self._wake.clear()
            try:
                self.maybe_update_status(force=back)
            except apierrors.ApiError as exc:
                log.warning("node status update failed", error=str(exc))
        self._ticks += 1

    def _run(self) -> None:
        interval = self.config.lease_interval_seconds
        while not self._stop.is_set():
            started = self.clock()
            self.tick()
            self._wake.wait(max(0.0, interval - (self.clock() - started)))
