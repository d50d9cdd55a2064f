"""`Informer`: a local, always-current cache of one kind, fed by a resuming Watch, with
event handlers — what controllers and agents build on.

    Watch (list + watch, resumes, relists) ──> cache {(ns, name): object}  ──> get / list
                                          └──> handlers: on_add(obj), on_update(old, new),
                                                         on_delete(obj)

Contract: handlers run one at a time on the informer's thread, in revision order; cached
objects are shared and must not be mutated (`get`/`list` return copies). A handler that
raises is logged and does not stop the informer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.client.watch_state import (
    ADDED,
    DELETED,
    MODIFIED,
    Key,
    WatchEvent,
    WatchTracker,
    key_of,
)
from raftkube.logging_config import get_logger

if TYPE_CHECKING:
    from raftkube.client.watch import Watch

log = get_logger(__name__)


@dataclass(frozen=True)
class Handlers:
    on_add: Callable[[Message], None] | None = None
    on_update: Callable[[Message, Message], None] | None = None
    on_delete: Callable[[Message], None] | None = None


def _copy(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


class InformerCache:
    """The thread-safe store behind an informer; `apply` turns an event into the
    (handler, arguments) to call. Pure apart from its lock."""

    def __init__(self) -> None:
        self._items: dict[Key, Message] = {}
        self._lock = threading.Lock()

    def apply(self, event: WatchEvent) -> tuple[str, tuple[Message, ...]] | None:
        """Update the cache; ("add", (obj,)) / ("update", (old, new)) / ("delete", (obj,))
        or None when the event changes nothing."""
        if event.object is None:
            return None
        key = key_of(event.object)
        with self._lock:
            old = self._items.get(key)
            if event.type == DELETED:
                if old is None:
                    return None
                del self._items[key]
                return "delete", (event.object,)
            if event.type not in (ADDED, MODIFIED):
                return None
            self._items[key] = event.object
        return ("update", (old, event.object)) if old is not None else ("add", (event.object,))

    def get(self, name: str, namespace: str = "") -> Message | None:
        with self._lock:
            obj = self._items.get((namespace, name))
        return _copy(obj) if obj is not None else None

    def list(self) -> list[Message]:
        with self._lock:
            items = [self._items[k] for k in sorted(self._items)]
        return [_copy(o) for o in items]

    def keys(self) -> list[Key]:
        with self._lock:
            return sorted(self._items)


class Informer:
    """List + watch cache of one kind (see module docstring).

        informer = client.pods.informer(label_selector="app=web")
        informer.add_handlers(on_add=lambda pod: print("new", pod.metadata.name))
        informer.start()
        informer.wait_for_sync(10)
        print([p.metadata.name for p in informer.list()])
        informer.stop()
    """

    def __init__(self, watch_factory: Callable[[Callable[[], None], WatchTracker], Watch],
                 ) -> None:
        self._watch_factory = watch_factory
        self._cache = InformerCache()
        self._handlers: list[Handlers] = []
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None
        # Kept across watch restarts, so a relist reports deletions that happened meanwhile.
        self._tracker = WatchTracker()
        self.error: BaseException | None = None

    def add_handlers(self, on_add: Callable[[Message], None] | None = None,
                     on_update: Callable[[Message, Message], None] | None = None,
                     on_delete: Callable[[Message], None] | None = None) -> Informer:
        """Register handlers (before start(); later ones see only later events)."""
        self._handlers.append(Handlers(on_add, on_update, on_delete))
        return self

    def start(self) -> Informer:
        """Start the watch thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="informer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and wait for the thread (idempotent)."""
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def has_synced(self) -> bool:
        """True once the initial list is in the cache (and its handlers ran)."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def get(self, name: str, namespace: str = "") -> Message | None:
        """A copy of the cached object, or None. Namespaced kinds need the namespace."""
        return self._cache.get(name, namespace)

    def list(self) -> list[Message]:
        """Copies of every cached object, sorted by (namespace, name)."""
        return self._cache.list()

    def object_keys(self) -> list[Key]:
        """(namespace, name) of every cached object, sorted."""
        return self._cache.keys()

    def __enter__(self) -> Informer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._watch = self._watch_factory(self._synced.set, self._tracker)
                for event in self._watch:
                    self._dispatch(event)
                return
            except apierrors.Unavailable as e:
                log.warning("informer: watch failed, restarting", error=str(e))
                self._stopped.wait(1.0)
            except apierrors.ApiError as e:
                self.error = e
                log.error("informer stopped", error=str(e))
                return

    def _dispatch(self, event: WatchEvent) -> None:
        change = self._cache.apply(event)
        if change is None:
            return
        what, args = change
        for handlers in list(self._handlers):
            handler = getattr(handlers, f"on_{what}")
            if handler is None:
                continue
            try:
                handler(*args)
            except Exception:
                log.exception("informer handler failed", handler=what)
