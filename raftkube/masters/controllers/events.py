"""Core Event objects for what a user wants to see in `describe`.

`EventRecorder.record(obj, type, reason, message)` never blocks and never fails: it
queues the event; the recorder's own thread writes it. The same (object, reason, message)
seen again raises `count` and `lastTimestamp` of one Event instead of creating another
(the name is derived from those three, so even a new leader finds the same Event). When
more than `max_pending` distinct events wait, new ones are dropped (as Kubernetes does
under load): events are informative, never a source of truth.

```
 controller ─ record() ─> pending {key: (ref, type, reason, message, repeats)}
                                    │ recorder thread
                                    v
                     create Event ─ AlreadyExists ─> get, count += repeats, update (CAS)
```
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.api.v1 import core_pb2, meta_pb2
from raftkube.logging_config import get_logger
from raftkube.masters.controllers.objects_util import format_time
from raftkube.objects.registry import for_message

log = get_logger(__name__)


@dataclass(frozen=True)
class EventConfig:
    """component: source.component of the events written.
    max_pending: distinct events waiting to be written before new ones are dropped.
    batch: new events written per transaction.
    """

    component: str = "raftkube-controller-manager"
    max_pending: int = 5000
    batch: int = 100


@dataclass
class _Pending:
    ref: meta_pb2.ObjectReference
    type: str
    reason: str
    message: str
    repeats: int = 1


def event_name(ref: meta_pb2.ObjectReference, reason: str, message: str) -> str:
    """Deterministic Event name for (object, reason, message)."""
    digest = hashlib.sha256(f"{ref.uid}/{reason}/{message}".encode()).hexdigest()[:12]
    return f"{ref.name}.{digest}"


def reference_to(obj: Message) -> meta_pb2.ObjectReference:
    info = for_message(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    return meta_pb2.ObjectReference(kind=info.kind, namespace=meta.namespace, name=meta.name,
                                    uid=meta.uid, api_version=info.api_version,
                                    resource_version=meta.resource_version)


@dataclass
class EventRecorder:
    """Writes Events through `api` from its own thread (a controller: run/on_change)."""

    api: object
    config: EventConfig = field(default_factory=EventConfig)
    name: str = "event-recorder"
    _pending: dict[tuple[str, str, str], _Pending] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def record(self, obj: Message, type_: str, reason: str, message: str) -> None:
        """Queue an event about `obj` (Normal or Warning). Never blocks, never raises."""
        ref = reference_to(obj)
        self.record_ref(ref, type_, reason, message)

    def record_ref(self, ref: meta_pb2.ObjectReference, type_: str, reason: str,
                   message: str) -> None:
        key = (ref.uid or f"{ref.kind}/{ref.namespace}/{ref.name}", reason, message)
        with self._cond:
            pending = self._pending.get(key)
            if pending is not None:
                pending.repeats += 1
                return
            if len(self._pending) >= self.config.max_pending:
                return
            self._pending[key] = _Pending(ref, type_, reason, message)
            self._cond.notify()

    def on_change(self, kind: str, namespace: str, name: str) -> None:
        return None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                if not self._pending:
                    self._cond.wait(0.5)
                batch = list(self._pending.values())
                self._pending.clear()
            for start in range(0, len(batch), self.config.batch):
                if stop.is_set():
                    return
                self._write_batch(batch[start: start + self.config.batch])

    def _event(self, item: _Pending) -> core_pb2.Event:
        now = format_time(time.time())
        event = core_pb2.Event(api_version="v1", kind="Event", reason=item.reason,
                               message=item.message[:1024], type=item.type,
                               first_timestamp=now, last_timestamp=now, count=item.repeats,
                               reporting_component=self.config.component)
        event.metadata.name = event_name(item.ref, item.reason, item.message)
        event.metadata.namespace = item.ref.namespace or "default"
        event.involved_object.CopyFrom(item.ref)
        event.source.component = self.config.component
        return event

    def _write_batch(self, items: list[_Pending]) -> None:
        """New events in one transaction; when one exists already (a repeat) or the batch
        fails, each is written on its own (create, or count += repeats)."""
        try:
            self.api.create_many([self._event(i) for i in items])  # type: ignore[attr-defined]
            return
        except apierrors.ApiError:
            pass
        for item in items:
            try:
                self._write(item)
            except apierrors.ApiError as e:
                log.debug("event not written", reason=item.reason, error=str(e))

    def _write(self, item: _Pending) -> None:
        event = self._event(item)
        namespace, name, now = event.metadata.namespace, event.metadata.name, event.last_timestamp
        for _ in range(3):
            try:
                self.api.create(event)  # type: ignore[attr-defined]
                return
            except apierrors.AlreadyExists:
                pass
            try:
                current = self.api.get("Event", namespace, name)  # type: ignore[attr-defined]
            except apierrors.NotFound:
                continue
            updated = core_pb2.Event()
            updated.CopyFrom(current)
            updated.count = current.count + item.repeats
            updated.last_timestamp = now
            try:
                self.api.update(updated)  # type: ignore[attr-defined]
                return
            except (apierrors.Conflict, apierrors.NotFound):
                continue
