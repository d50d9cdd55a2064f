"""Watch resume logic: a fake event source breaks streams at arbitrary points; the
tracker must deliver every change once, in order, and relist diffs after compaction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkube.api.v1 import core_pb2
from raftkube.client.informer import InformerCache
from raftkube.client.watch_state import (
    ADDED,
    BOOKMARK,
    DELETED,
    MODIFIED,
    WatchEvent,
    WatchTracker,
)


def cm(name: str, rv: int, value: str = "") -> core_pb2.ConfigMap:
    obj = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    obj.metadata.name, obj.metadata.namespace = name, "default"
    obj.metadata.resource_version = str(rv)
    obj.data["v"] = value
    return obj


def history() -> list[WatchEvent]:
    """Revisions 1..6; revision 4 is one transaction touching three objects."""
    return [
        WatchEvent(ADDED, cm("a", 1), "1"),
        WatchEvent(ADDED, cm("b", 2), "2"),
        WatchEvent(MODIFIED, cm("a", 3, "x"), "3"),
        WatchEvent(ADDED, cm("c", 4), "4"),
        WatchEvent(ADDED, cm("d", 4), "4"),
        WatchEvent(MODIFIED, cm("b", 4, "y"), "4"),
        WatchEvent(DELETED, cm("a", 3, "x"), "5"),
        WatchEvent(ADDED, cm("e", 6), "6"),
    ]


def serve(events: list[WatchEvent], after: int) -> list[WatchEvent]:
    """What a master sends for Watch(resource_version=after)."""
    return [e for e in events if int(e.resource_version) > after]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8), max_size=6))
def test_resume_at_any_break_point_delivers_each_event_once(breaks: list[int]) -> None:
    events = history()
    tracker = WatchTracker(0)
    delivered: list[WatchEvent] = []
    for cut in [*breaks, 10_000]:
        stream = serve(events, int(tracker.resume_version))
        for event in stream[:cut]:
            if tracker.accept(event):
                delivered.append(event)
    assert delivered == events


def test_bookmark_advances_resume_point_without_delivery() -> None:
    tracker = WatchTracker(0)
    assert tracker.accept(WatchEvent(ADDED, cm("a", 1), "1"))
    assert not tracker.accept(WatchEvent(BOOKMARK, None, "9"))
    assert tracker.resume_version == "9"
    assert not tracker.accept(WatchEvent(MODIFIED, cm("a", 5), "5"))  # older than bookmark


def test_relist_after_compaction_emits_the_difference() -> None:
    tracker = WatchTracker(0)
    for event in history()[:4]:  # a@3, b@2, c@4 known
        tracker.accept(event)
    events = tracker.relist([cm("b", 2), cm("c", 9, "z"), cm("f", 8)], 10)
    assert [(e.type, e.object.metadata.name, e.resource_version) for e in events] == [
        (DELETED, "a", "10"), (MODIFIED, "c", "9"), (ADDED, "f", "8")]
    assert tracker.resume_version == "10"
    assert set(tracker.known()) == {("default", "b"), ("default", "c"), ("default", "f")}


def test_informer_cache_turns_events_into_handler_calls() -> None:
    cache = InformerCache()
    assert cache.apply(WatchEvent(ADDED, cm("a", 1), "1"))[0] == "add"
    what, (old, new) = cache.apply(WatchEvent(MODIFIED, cm("a", 2, "x"), "2"))
    assert what == "update" and old.metadata.resource_version == "1"
    assert new.data["v"] == "x"
    copy = cache.get("a", "default")
    copy.data["v"] = "mutated"
    assert cache.get("a", "default").data["v"] == "x"  # the cache is never mutated
    assert cache.apply(WatchEvent(DELETED, cm("a", 2), "3"))[0] == "delete"
    assert cache.apply(WatchEvent(DELETED, cm("a", 2), "3")) is None
    assert cache.list() == []
