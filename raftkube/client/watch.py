"""`Watch`: a blocking iterator of changes that survives reconnects, master failover and
compaction.

    list (all pages) at R ──> ADDED for each object ──> synced
        │
        └─> WatchBatched(rv = tracker.resume_version) on the current master ──> events
               (several per message; plain Watch on a master that lacks WatchBatched)
               stream breaks / master hangs (no message for watch_idle_timeout)
                 └─> next master, back-off, reopen from the resume point
               Compacted
                 └─> relist, emit the difference, reopen from the new revision

Every event is delivered once, in revision order, with no gap (see watch_state.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from raftkube import apierrors
from raftkube.api.v1 import resources_pb2
from raftkube.client.core import list_op
from raftkube.client.retry import Failure, backoff, classify
from raftkube.client.watch_state import BOOKMARK, WatchEvent, WatchTracker
from raftkube.objects import registry

if TYPE_CHECKING:
    from raftkube.client.transport import SyncTransport


class WatchSpec:
    """What to watch: kind, namespace ("" = all), selectors, starting resourceVersion
    ("" = list first), whether to deliver BOOKMARK events to the caller."""

    def __init__(self, info: registry.KindInfo, namespace: str = "", label_selector: str = "",
                 field_selector: str = "", resource_version: str = "",
                 bookmarks: bool = False) -> None:
        self.info = info
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resource_version = resource_version
        self.bookmarks = bookmarks

    def request(self, resource_version: str) -> resources_pb2.WatchRequest:
        return resources_pb2.WatchRequest(
            kind=self.info.kind, namespace=self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, resource_version=resource_version,
            allow_bookmarks=True)


def unimplemented(error: grpc.RpcError | None) -> bool:
    """The master does not know the method (an older version)."""
    return error is not None and error.code() == grpc.StatusCode.UNIMPLEMENTED


def event_from_pb(event: Any) -> WatchEvent:
    obj = registry.unwrap(event.object) if event.object.WhichOneof("object") else None
    return WatchEvent(event.type, obj, event.resource_version)


class _IdleWatchdog:
    """Cancels a streaming call that receives nothing for `timeout` seconds while the
    reader waits for it (time the consumer spends on an event does not count)."""

    def __init__(self, call: Any, timeout: float) -> None:
        self._call = call
        self._timeout = timeout
        self._last = time.monotonic()
        self._held = False
        self._done = threading.Event()
        self.fired = False
        threading.Thread(target=self._run, name="watch-idle", daemon=True).start()

    def touch(self) -> None:
        self._last = time.monotonic()

    def hold(self, held: bool) -> None:
        """The consumer has (True) or has returned (False) an event: pause the clock."""
        self._held = held
        self._last = time.monotonic()

    def _run(self) -> None:
        while not self._done.wait(min(1.0, self._timeout / 4)):
            if not self._held and time.monotonic() - self._last > self._timeout:
                self.fired = True
                self._call.cancel()
                return

    def close(self) -> None:
        self._done.set()


class Watch:
    """Iterate `WatchEvent`s until `stop()` (from any thread) or a definite API error
    (Forbidden, Invalid selector, ...). Raise Unavailable when no master could be reached
    for `give_up` seconds.

        for event in client.pods.watch(label_selector="app=web"):
            print(event.type, event.object.metadata.name)
    """

    def __init__(self, transport: SyncTransport, spec: WatchSpec, page_size: int,
                 idle_timeout: float, give_up: float,
                 on_synced: Callable[[], None] | None = None,
                 tracker: WatchTracker | None = None) -> None:
        self._transport = transport
        self._spec = spec
        self._page_size = page_size
        self._idle_timeout = idle_timeout
        self._give_up = give_up
        self._on_synced = on_synced
        self._stopped = threading.Event()
        self._call: Any = None
        self._lock = threading.Lock()
        self.tracker = tracker or WatchTracker(int(spec.resource_version or 0))
        self._batched = True  # WatchBatched until a master answers UNIMPLEMENTED
        self._events = self._run()

    def __iter__(self) -> Iterator[WatchEvent]:
        return self

    def __next__(self) -> WatchEvent:
        return next(self._events)

    @property
    def resource_version(self) -> str:
        """The revision through which every change has been delivered."""
        return self.tracker.resume_version

    def stop(self) -> None:
        """End the iteration (idempotent; safe from another thread)."""
        self._stopped.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _relist(self) -> list[WatchEvent]:
        # Linearizable: a lagging master must never hand back a state older than what the
        # watch has already delivered.
        spec = self._spec
        items: list[Any] = []
        token = ""
        revision = ""
        while True:
            page = self._transport.run(list_op(
                spec.info, spec.namespace, spec.label_selector, spec.field_selector,
                self._page_size, token, linearizable=True))
            items.extend(page.items)
            revision = revision or page.resource_version
            token = page.continue_token
            if not token:
                break
        return self.tracker.relist(items, int(revision))

    def _run(self) -> Iterator[WatchEvent]:
        if not self._spec.resource_version:
            yield from self._relist()
        if self._on_synced is not None:
            self._on_synced()
        failures = 0
        failing_since: float | None = None
        while not self._stopped.is_set():
            address = self._transport.endpoints.current()
            stub = self._transport.stub(address, "Resources")
            batched = self._batched
            request = self._spec.request(self.tracker.resume_version)
            call = stub.WatchBatched(request) if batched else stub.Watch(request)
            with self._lock:
                self._call = call
            if self._stopped.is_set():
                call.cancel()
            watchdog = _IdleWatchdog(call, self._idle_timeout)
            try:
                for pb in call:
                    watchdog.touch()
                    failures, failing_since = 0, None
                    for event_pb in (pb.events if batched else (pb,)):
                        event = event_from_pb(event_pb)
                        if self.tracker.accept(event) or (
                                event.type == BOOKMARK and self._spec.bookmarks):
                            watchdog.hold(True)
                            yield event
                            watchdog.hold(False)
                ended: grpc.RpcError | None = None
            except grpc.RpcError as e:
                ended = e
            finally:
                watchdog.close()
                with self._lock:
                    self._call = None
            if self._stopped.is_set():
                return
            if batched and unimplemented(ended):
                self._batched = False  # a master older than WatchBatched: plain Watch
                continue
            if ended is not None and not watchdog.fired:
                error = apierrors.from_rpc_error(ended)
                if isinstance(error, apierrors.Compacted):
                    yield from self._relist()
                    continue
                if classify(ended) is Failure.ANSWERED:
                    raise error
            failures += 1
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > self._give_up:
                raise apierrors.Unavailable(
                    f"watch {self._spec.info.plural}: no master reachable for "
                    f"{self._give_up:.0f}s")
            self._transport.endpoints.failed(address)
            self._stopped.wait(backoff(failures + 1, self._transport.retry, self._transport.rng))
