"""ObjectCache.list_controlled and list_on_node: the owner and node indexes follow every
add, change and delete and always equal filtering `list` by controller uid / node."""

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

    def watch(self, info, namespace, start_revision, stop, idle_events=False,
              with_previous=True):
        for i, (type_, obj) in enumerate(self.events):
            yield ObjectEvent(type_, obj, None, start_revision + i)
        self.delivered.set()
        stop.wait()


def _replayed(store: ScriptedStore, events: int) -> ObjectCache:
    """A started Pod cache that has applied the store's list and all `events`."""
    cache = ObjectCache(store, ["Pod"])  # type: ignore[arg-type]
    cache.start()
    assert store.delivered.wait(5)
    deadline = time.monotonic() + 5
    while cache.revision("Pod") < 1 + events and time.monotonic() < deadline:
        time.sleep(0.01)
    return cache


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
    cache = _replayed(store, len(events))
    try:
        assert _names(cache.list_controlled("Pod", "default", "uid-rs1")) == {"d"}
        assert _names(cache.list_controlled("Pod", "default", "uid-rs2")) == {"c"}
        assert _names(cache.list_controlled("Pod", "default", "")) == {"b"}
        assert _names(cache.list_controlled("Pod", "other", "uid-rs1")) == {"e"}
        for namespace, uid in (("default", "uid-rs1"), ("default", ""), ("other", "uid-rs1")):
            _consistent(cache, namespace, uid)
    finally:
        cache.stop()


def test_node_index_follows_binding_moves_and_deletes() -> None:
    events = [("MODIFIED", pod("a", node_name="n1")),  # bound
              ("ADDED", pod("d", node_name="n2")),
              ("MODIFIED", pod("b", node_name="n2")),  # moved (recreated elsewhere)
              ("DELETED", pod("c", node_name="n1"))]
    store = ScriptedStore([pod("a"), pod("b", node_name="n1"), pod("c", node_name="n1")],
                          events)
    cache = _replayed(store, len(events))
    try:
        assert _names(cache.list_on_node("n1")) == {"a"}
        assert _names(cache.list_on_node("n2")) == {"b", "d"}
        assert _names(cache.list_on_node("n3")) == set()
        assert sorted(cache.nodes_with_pods()) == ["n1", "n2"]
        for node in ("n1", "n2"):
            assert _names(cache.list_on_node(node)) == {
                p.metadata.name for p in cache.list("Pod") if p.spec.node_name == node}
    finally:
        cache.stop()
