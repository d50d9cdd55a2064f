"""SyncQueue: one sync per uid at a time, dirty re-syncs, timers that supersede."""

from __future__ import annotations

import threading
import time

from raftkube.workers.agent.sync_queue import SyncQueue


def test_a_uid_is_never_synced_concurrently_and_dirty_marks_resync() -> None:
    running: set[str] = set()
    overlap: list[str] = []
    counts: dict[str, int] = {}
    lock = threading.Lock()
    release = threading.Event()

    def sync(uid: str) -> float | None:
        with lock:
            if uid in running:
                overlap.append(uid)
            running.add(uid)
            counts[uid] = counts.get(uid, 0) + 1
        if counts[uid] == 1:
            release.wait(5)
        with lock:
            running.discard(uid)
        return None

    queue = SyncQueue(sync, workers=4).start()
    try:
        queue.add("a")
        time.sleep(0.1)
        for _ in range(5):
            queue.add("a")  # while "a" is being synced: one more sync afterwards, not five
        queue.add("b")
        time.sleep(0.2)
        release.set()
        time.sleep(0.3)
        assert overlap == []
        assert counts == {"a": 2, "b": 1}
    finally:
        queue.stop()


def test_timers_fire_and_the_newest_plan_supersedes() -> None:
    synced: list[tuple[str, float]] = []
    plans = {"a": [time.monotonic() + 0.2, None]}

    def sync(uid: str) -> float | None:
        synced.append((uid, time.monotonic()))
        return plans[uid].pop(0) if plans[uid] else None

    queue = SyncQueue(sync, workers=2).start()
    try:
        queue.add_after("a", time.monotonic() + 60)  # superseded by the sync's own plan
        queue.add("a")
        time.sleep(0.6)
        assert [u for u, _ in synced] == ["a", "a"], synced
    finally:
        queue.stop()
