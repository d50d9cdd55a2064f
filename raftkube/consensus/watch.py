"""Watches: ordered change streams read from the state's bounded history.

A Watch pulls from history (no per-watch queue that could overflow): it remembers the
next revision it needs and waits on its own event, which the state sets after each apply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from raftkube.consensus.errors import StoreClosedError
from raftkube.consensus.model import WatchEvent
from raftkube.consensus.state import KVState


class Watch:
    """Iterator over batches of WatchEvent for keys in [key, range_end) (etcd range
    semantics), starting at `start_revision` (0: changes after the current revision).

    Each batch holds the matching events of one or more consecutive revisions, in order.
    Raises CompactedError (with the oldest available revision) if the history it needs
    is gone. Iteration ends after `cancel()` or when the store stops.
    """

    def __init__(self, state: KVState, key: bytes, range_end: bytes | None,
                 start_revision: int, closed: threading.Event) -> None:
        self._state = state
        self.key = key
        self.range_end = range_end
        self._closed = closed
        self._cancelled = False
        self._wake = threading.Event()
        with state.cond:
            self.next_revision = start_revision if start_revision > 0 else state.revision + 1
        # Fail fast on a compacted start revision.
        state.history_since(self.next_revision, key, range_end, max_revisions=0)

    def cancel(self) -> None:
        """Stop the watch; a blocked `next_batch`/iteration returns. Idempotent."""
        self._cancelled = True
        self._wake.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def next_batch(self, timeout: float | None = None) -> list[WatchEvent] | None:
        """The next non-empty batch, or None on timeout / cancel / store stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        state = self._state
        while not self._cancelled:
            if self._closed.is_set():
                raise StoreClosedError("store stopped")
            # scans without the state lock (see KVState.history_since)
            entries, next_rev = state.history_since(self.next_revision, self.key,
                                                    self.range_end)
            self.next_revision = next_rev
            if entries:
                return [event for entry in entries for event in entry.events]
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            # Registered before looking at the revision, so an apply after the look
            # sets the event (no lost wake-up).
            self._wake.clear()
            state.add_waiter(self._wake)
            try:
                if next_rev <= state.revision or self._cancelled or self._closed.is_set():
                    continue
                self._wake.wait(0.5 if remaining is None else min(remaining, 0.5))
            finally:
                state.remove_waiter(self._wake)
        return None

    def __iter__(self) -> Iterator[list[WatchEvent]]:
        return self

    def __next__(self) -> list[WatchEvent]:
        while True:
            try:
                batch = self.next_batch(timeout=1.0)
            except StoreClosedError:
                raise StopIteration from None
            if batch is not None:
                return batch
            if self._cancelled:
                raise StopIteration
