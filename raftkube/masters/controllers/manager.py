"""The controller manager: one leader-only loop that owns the object cache of a leadership
term and runs every controller against it.

```
 term starts ─> ObjectCache (list + watch) ─ synced ─> controller threads (one each)
            cache changes ─> controller.on_change(kind, ns, name) ─> its work queue
 term ends  ─> stop event ─> controllers return ─> cache stops
```
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message

from raftkube.logging_config import get_logger
from raftkube.masters.controllers.events import EventRecorder
from raftkube.masters.object_api import ObjectApi
from raftkube.masters.object_cache import ObjectCache
from raftkube.masters.object_store import ObjectStore

log = get_logger(__name__)

CACHED_KINDS = (
    "Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret",
    "PersistentVolume", "PersistentVolumeClaim", "Deployment", "ReplicaSet", "StatefulSet",
    "Ingress", "Lease",
)


@dataclass(frozen=True)
class ControllerContext:
    """What every controller gets: the API to write through (as the controller principal),
    the term's cache to read from, the term (for logs), the event recorder and the
    `controllers` options of the master config (each controller reads its own section)."""

    api: ObjectApi
    cache: ObjectCache
    term: int
    events: EventRecorder | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def record(self, obj: Message, type_: str, reason: str, message: str) -> None:
        """Queue an Event about `obj` (no-op without a recorder)."""
        if self.events is not None:
            self.events.record(obj, type_, reason, message)


T = TypeVar("T")


def submit_as_caller(pool: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
    """`pool.submit(fn, *args)`, run with the caller's context variables: a controller's
    helper threads act as the controller's principal (`acting_as`), which the API
    authorizes every write by."""
    return pool.submit(contextvars.copy_context().run, fn, *args)


class Controller(Protocol):
    """A control loop. `on_change` only queues (never blocks); `run` returns promptly once
    `stop` is set."""

    name: str

    def on_change(self, kind: str, namespace: str, name: str) -> None: ...

    def run(self, stop: threading.Event) -> None: ...


ControllerFactory = Callable[[ControllerContext], Controller]


class ControllerManager:
    """A LeaderLoop running `factories`' controllers over one shared cache."""

    name = "controller-manager"

    def __init__(self, api: ObjectApi, objects: ObjectStore,
                 factories: Sequence[ControllerFactory], term: int,
                 kinds: Sequence[str] = CACHED_KINDS,
                 options: Mapping[str, Any] | None = None) -> None:
        self._api = api
        self._objects = objects
        self._factories = tuple(factories)
        self._term = term
        self._kinds = tuple(kinds)
        self._options = dict(options or {})

    def run(self, stop: threading.Event) -> None:
        from raftkube.masters.bootstrap_loop import CONTROLLER_PRINCIPAL
        from raftkube.security.grpc_auth import acting_as

        cache = ObjectCache(self._objects, self._kinds)
        events = EventRecorder(self._api)
        context = ControllerContext(self._api, cache, self._term, events, self._options)
        controllers: list[Controller] = [events]
        controllers += [make(context) for make in self._factories]
        for controller in controllers:
            cache.add_handler(controller.on_change)
        cache.start()
        try:
            while not cache.wait_synced(0.5):
                if stop.is_set():
                    return
            threads = []
            for controller in controllers:
                def body(c: Controller = controller) -> None:
                    with acting_as(CONTROLLER_PRINCIPAL):
                        c.run(stop)

                thread = threading.Thread(target=body, name=f"ctl-{controller.name}",
                                          daemon=True)
                thread.start()
                threads.append(thread)
            log.info("controllers running", term=self._term,
                     controllers=[c.name for c in controllers])
            stop.wait()
            for thread in threads:
                thread.join(5)
        finally:
            cache.stop()
