"""A work queue of pod uids (keys, not objects) with a fixed pool of sync threads.

    add(uid)            -> queued once; a uid being synced is marked dirty and synced again
    add_after(uid, t)   -> added when the monotonic clock reaches t (back-off, probes...)
    sync(uid) -> float | None   the handler; returns when to sync again (None: on events)

A uid is never synced by two threads at once (the Kubernetes workqueue contract), so a
pod worker's state needs no lock against itself.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable

from raftkube.logging_config import get_logger

log = get_logger(__name__)


class SyncQueue:
    def __init__(self, sync: Callable[[str], float | None], workers: int,
                 clock: Callable[[], float] = time.monotonic, name: str = "pod-sync") -> None:
        self._sync = sync
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: list[tuple[float, str]] = []
        self._deadline: dict[str, float] = {}  # the one live timer per uid
        self._stopped = False
        self._started = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        self._threads.append(threading.Thread(target=self._timer_loop, name=f"{name}-timer",
                                              daemon=True))

    def start(self) -> SyncQueue:
        """Start the threads (idempotent)."""
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()
        return self

    def add(self, uid: str) -> None:
        with self._cond:
            if uid in self._processing:
                self._dirty.add(uid)
                return
            if uid not in self._queued:
                self._queued.add(uid)
                self._queue.append(uid)
                self._cond.notify_all()

    def add_after(self, uid: str, when: float) -> None:
        """Sync `uid` at `when` (an earlier pending time for it wins)."""
        with self._cond:
            if self._deadline.get(uid, float("inf")) > when:
                self._set_timer(uid, when)

    def forget(self, uid: str) -> None:
        """Drop the pending timer of `uid` (its worker is gone)."""
        with self._cond:
            self._deadline.pop(uid, None)

    def _set_timer(self, uid: str, when: float) -> None:
        self._deadline[uid] = when
        heapq.heappush(self._timers, (when, uid))
        self._cond.notify_all()

    def stop(self, timeout: float = 15.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._started:
            for thread in self._threads:
                thread.join(timeout)

    def _timer_loop(self) -> None:
        with self._cond:
            while not self._stopped:
                now = self._clock()
                while self._timers and self._timers[0][0] <= now:
                    when, uid = heapq.heappop(self._timers)
                    if self._deadline.get(uid) != when:
                        continue  # superseded
                    del self._deadline[uid]
                    if uid in self._processing:
                        self._dirty.add(uid)
                    elif uid not in self._queued:
                        self._queued.add(uid)
                        self._queue.append(uid)
                        self._cond.notify_all()
                wait = self._timers[0][0] - now if self._timers else 1.0
                self._cond.wait(max(0.01, min(1.0, wait)))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                uid = self._queue.popleft()
                self._queued.discard(uid)
                self._processing.add(uid)
            again: float | None = None
            try:
                again = self._sync(uid)
            except Exception:
                log.exception("pod sync failed", uid=uid)
                again = self._clock() + 2.0
            with self._cond:
                self._processing.discard(uid)
                if uid in self._dirty:
                    self._dirty.discard(uid)
                    if uid not in self._queued:
                        self._queued.add(uid)
                        self._queue.append(uid)
                        self._cond.notify_all()
                if again is not None:
                    self._set_timer(uid, again)  # the newest plan decides the next wake
                else:
                    self._deadline.pop(uid, None)
