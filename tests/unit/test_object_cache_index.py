"""ObjectCache.list_controlled: the owner index follows every add, change and delete and
always equals filtering `list` by controller uid."""

from __future__ import annotations

import threading
import time

from raftkube.masters.object_cache import ObjectCache, controller_uid
from raftkube.masters.object_store import ObjectEvent
from tests.unit.controller_factories import pod


class ScriptedStore:
    """list() returns `initial`; watch() yields `events`, then waits for stop."""

    def __init__(self, initial, events) -> None:
        self.initial, self.events = initial, events
        self.delivered = threading.Event()

    def list(self, info, namespace="", **_):
        return list(self.initial), 1, ""

    def watch(self, info, namespace, start_revision, stop, idle_events=False):
        for i, (type_, obj) in enumerate(self.events):
            yield ObjectEvent(type_, obj, None, start_revision + i)
        self.delivered.set()
        stop.wait()


def _names(pods) -> set[str]:
    return {p.metadata.name for p in pods}


def _consistent(cache: ObjectCache, namespace: str, uid: str) -> None:
    expected = {p.metadata.name for p in cache.list("Pod", namespace)
                if controller_uid(p) == uid}
    assert _names(cache.list_controlled("Pod", namespace, uid)) == expected


def test_owner_index_follows_adds_releases_adoptions_and_deletes() -> None:
    released = pod("b", owner="")  # b loses its controller
    adopted = pod("c", owner="rs2")  # c (an orphan) is adopted by rs2
    events = [("ADDED", pod("d", owner="rs1")), ("MODIFIED", released),
              ("MODIFIED", adopted), ("DELETED", pod("a", owner="rs1")),
              ("ADDED", pod("e", owner="rs1", namespace="other"))]
    store = ScriptedStore([pod("a", owner="rs1"), pod("b", owner="rs1"), pod("c")], events)
    cache = ObjectCache(store, ["Pod"])  # type: ignore[arg-type]
    cache.start()
    try:
        assert store.delivered.wait(5)
        deadline = time.monotonic() + 5
        while cache.revision("Pod") < 1 + len(events) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _names(cache.list_controlled("Pod", "default", "uid-rs1")) == {"d"}
        assert _names(cache.list_controlled("Pod", "default", "uid-rs2")) == {"c"}
        assert _names(cache.list_controlled("Pod", "default", "")) == {"b"}
        assert _names(cache.list_controlled("Pod", "other", "uid-rs1")) == {"e"}
        for namespace, uid in (("default", "uid-rs1"), ("default", ""), ("other", "uid-rs1")):
            _consistent(cache, namespace, uid)
    finally:
        cache.stop()
