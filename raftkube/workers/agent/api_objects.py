"""The agent's reads of the objects its pods reference (by name: that is all a node may do)
and its Events. Every read goes through the SDK Client.

    ApiObjectSource.configmap / secret / pvc / pv  -> object or None (NotFound)
    EventRecorder.emit(pod, type, reason, message) -> Event created in the background;
        the same (pod, reason, message) within `dedupe_seconds` is sent once
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from raftkube import apierrors
from raftkube.api.v1 import core_pb2, meta_pb2, pod_pb2, storage_pb2
from raftkube.client import Client
from raftkube.logging_config import get_logger

log = get_logger(__name__)


def now_rfc3339(micro: bool = False) -> str:
    """The current UTC time in RFC 3339 (with microseconds when `micro`)."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.now(UTC).strftime(fmt)


class ApiObjectSource:
    """ObjectSource / VolumeSource over the API (node restriction: get by name only)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _get(self, kind: str, name: str, namespace: str | None) -> object | None:
        try:
            return self.client.resource(kind).get(name, namespace)
        except apierrors.NotFound:
            return None

    def configmap(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return self._get("ConfigMap", name, namespace)  # type: ignore[return-value]

    def secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return self._get("Secret", name, namespace)  # type: ignore[return-value]

    def pvc(self, namespace: str, name: str) -> storage_pb2.PersistentVolumeClaim | None:
        return self._get("PersistentVolumeClaim", name, namespace)  # type: ignore[return-value]

    def pv(self, name: str) -> storage_pb2.PersistentVolume | None:
        return self._get("PersistentVolume", name, None)  # type: ignore[return-value]


class EventRecorder:
    """Creates Events about pods from a small background pool (never blocks the caller;
    failures are logged and dropped, as kubelet's recorder does)."""

    def __init__(self, client: Client, node: str, dedupe_seconds: float = 30.0,
                 component: str = "raftkube-agent",
                 pool: ThreadPoolExecutor | None = None) -> None:
        """pool: a shared executor (many hollow agents); by default a private one."""
        self.client = client
        self.node = node
        self.component = component
        self.dedupe_seconds = dedupe_seconds
        self._own_pool = pool is None
        self._pool = pool or ThreadPoolExecutor(max_workers=2, thread_name_prefix="events")
        self._recent: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        # the last (pod name, reason, message) sent, newest last, for tests and debugging
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=200)

    def emit(self, pod: pod_pb2.Pod, event_type: str, reason: str, message: str,
             field_path: str = "") -> None:
        key = (pod.metadata.uid, reason, message)
        now = time.monotonic()
        with self._lock:
            if now - self._recent.get(key, -1e9) < self.dedupe_seconds:
                return
            self._recent[key] = now
            if len(self._recent) > 10000:
                self._recent = {k: t for k, t in self._recent.items()
                                if now - t < self.dedupe_seconds}
        event = core_pb2.Event(api_version="v1", kind="Event", reason=reason,
                               message=message[:1024], type=event_type, count=1,
                               reporting_component=self.component,
                               reporting_instance=self.node)
        event.metadata.name = f"{pod.metadata.name}.{uuid.uuid4().hex[:12]}"
        event.metadata.namespace = pod.metadata.namespace
        event.involved_object.CopyFrom(meta_pb2.ObjectReference(
            kind="Pod", api_version="v1", name=pod.metadata.name,
            namespace=pod.metadata.namespace, uid=pod.metadata.uid, field_path=field_path))
        event.source.component = self.component
        event.source.host = self.node
        stamp = now_rfc3339()
        event.first_timestamp = event.last_timestamp = stamp
        event.event_time = now_rfc3339(micro=True)
        self.sent.append((pod.metadata.name, reason, message))
        with contextlib.suppress(RuntimeError):  # shut down
            self._pool.submit(self._create, event)

    def _create(self, event: core_pb2.Event) -> None:
        try:
            self.client.create(event)
        except apierrors.ApiError as exc:
            log.info("event not recorded", reason=event.reason, error=str(exc))

    def close(self) -> None:
        if self._own_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
