"""The controllers' work queue: dedup, no concurrent processing of a key, back-off."""

from __future__ import annotations

import threading
import time

from raftkube.masters.controllers.work_queue import WorkQueue


def test_keys_are_deduplicated_and_ordered() -> None:
    q = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert [q.get(0.1) for _ in range(3)] == ["a", "b", "c"]
    assert q.get(0.05) is None


def test_key_added_while_processing_comes_back_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.get(0.1) == "a"
    q.add("a")
    assert q.get(0.05) is None  # not handed to a second worker while in progress
    q.done("a")
    assert q.get(0.1) == "a"


def test_retry_backs_off_exponentially_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.05, max_delay=1.0)
    q.retry("k")
    start = time.monotonic()
    assert q.get(1) == "k"
    q.done("k")
    q.retry("k")
    assert q.get(1) == "k"
    elapsed = time.monotonic() - start
    assert elapsed >= 0.05 + 0.1 - 0.02
    q.done("k")
    q.forget("k")
    q.retry("k")
    t0 = time.monotonic()
    assert q.get(1) == "k" and time.monotonic() - t0 < 0.5


def test_shutdown_wakes_getters() -> None:
    q = WorkQueue()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shutdown()
    t.join(2)
    assert got == [None]
