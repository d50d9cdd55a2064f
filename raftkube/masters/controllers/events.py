"""Core Event objects for what a user wants to see in `describe`.

`EventRecorder.record(obj, type, reason, message)` never blocks and never fails: it
queues the event; the recorder's own thread writes it. The same (object, reason, message)
seen again raises `count` and `lastTimestamp` of one Event instead of creating another
(the name is derived from those three, so even a new leader finds the same Event). When
more than `max_pending` distinct events wait, new ones are dropped (as Kubernetes does
under load): events are informative, never a source of truth.

Similar events are combined as client-go's EventAggregator does: once one object has had
`aggregate_max` distinct messages for the same (type, reason) within `aggregate_window`
seconds, later ones go into a single Event "(combined from similar events): <latest
message>" whose count grows (a ReplicaSet creating 1,000 pods gets 10 "Created pod" Events
and one combined Event, not 1,000 Events, each a write through Raft).

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
from collections.abc import Callable, Iterable
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
    aggregate_max / aggregate_window: distinct messages per (object, type, reason) written
      as Events of their own within the window (seconds) before similar ones are combined.
    """

    component: str = "raftkube-controller-manager"
    max_pending: int = 5000
    batch: int = 100
    aggregate_max: int = 10
    aggregate_window: float = 600.0


COMBINED = "(combined from similar events): "


@dataclass
class _Pending:
    ref: meta_pb2.ObjectReference
    type: str
    reason: str
    message: str
    repeats: int = 1
    identity: str = ""  # what names the Event ("" = the message itself)


def _shown(identity: str, message: str) -> str:
    return COMBINED + message if identity == COMBINED else message


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
    _similar: dict[tuple[str, str, str], tuple[float, set[str]]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    _written: set[str] = field(default_factory=set)

    def _remember(self, names: Iterable[str]) -> None:
        """Names of Events this recorder wrote (forgotten in bulk past 10 x max_pending)."""
        if len(self._written) > 10 * self.config.max_pending:
            self._written.clear()
        self._written.update(names)

    def record(self, obj: Message, type_: str, reason: str, message: str) -> None:
        """Queue an event about `obj` (Normal or Warning). Never blocks, never raises."""
        ref = reference_to(obj)
        self.record_ref(ref, type_, reason, message)

    def record_ref(self, ref: meta_pb2.ObjectReference, type_: str, reason: str,
                   message: str) -> None:
        subject = ref.uid or f"{ref.kind}/{ref.namespace}/{ref.name}"
        with self._cond:
            identity = message if self._distinct(subject, type_, reason, message) else COMBINED
            key = (subject, reason, identity)
            pending = self._pending.get(key)
            if pending is not None:
                pending.repeats += 1
                pending.message = _shown(identity, message)
                return
            if len(self._pending) >= self.config.max_pending:
                return
            self._pending[key] = _Pending(ref, type_, reason, _shown(identity, message),
                                          identity=identity)
            self._cond.notify()

    def _distinct(self, subject: str, type_: str, reason: str, message: str) -> bool:
        """True while `message` may have an Event of its own (see the module doc)."""
        now = self.clock()
        key = (subject, type_, reason)
        started, messages = self._similar.get(key, (now, set()))
        if now - started > self.config.aggregate_window:
            started, messages = now, set()
        self._similar[key] = (started, messages)
        if len(self._similar) > 4 * self.config.max_pending:
            horizon = now - self.config.aggregate_window
            self._similar = {k: v for k, v in self._similar.items() if v[0] >= horizon}
            self._similar[key] = (started, messages)
        if message in messages:
            return True
        if len(messages) < self.config.aggregate_max:
            messages.add(message)
            return True
        return False

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
        event.metadata.name = event_name(item.ref, item.reason,
                                         item.identity or item.message)
        event.metadata.namespace = item.ref.namespace or "default"
        event.involved_object.CopyFrom(item.ref)
        event.source.component = self.config.component
        return event

    def _write_batch(self, items: list[_Pending]) -> None:
        """New events in one transaction; events this recorder wrote before (repeats, the
        combined ones), and every event of a batch that fails, are written on their own
        (create, or count += repeats)."""
        events = [self._event(i) for i in items]
        fresh = [e for e in events if e.metadata.name not in self._written]
        again = [i for i, e in zip(items, events, strict=True) if e.metadata.name in self._written]
        try:
            if fresh:
                self.api.create_many(fresh)  # type: ignore[attr-defined]
            self._remember(e.metadata.name for e in fresh)
        except apierrors.ApiError:
            again = items
        for item in again:
            try:
                self._write(item)
                self._remember([event_name(item.ref, item.reason, item.identity or item.message)])
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
            updated.message = event.message
            try:
                self.api.update(updated)  # type: ignore[attr-defined]
                return
            except (apierrors.Conflict, apierrors.NotFound):
                continue
