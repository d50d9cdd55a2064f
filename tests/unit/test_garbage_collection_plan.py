"""The garbage collector's pure plan."""

from __future__ import annotations

from raftkube.api.v1 import apps_pb2, core_pb2, pod_pb2
from raftkube.masters.controllers.garbage_collector import plan_collection


def meta(obj, name: str, uid: str, namespace: str = "default", owners=(), deleting=False,
         finalizers=()):
    obj.metadata.name = name
    obj.metadata.uid = uid
    obj.metadata.namespace = namespace
    for kind, owner_name, owner_uid in owners:
        obj.metadata.owner_references.add(kind=kind, name=owner_name, uid=owner_uid,
                                          controller=True)
    if deleting:
        obj.metadata.deletion_timestamp = "2026-01-01T00:00:00Z"
    obj.metadata.finalizers.extend(finalizers)
    return obj


def rs(name, uid, **kw):
    return meta(apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet"), name, uid, **kw)


def pod(name, uid, **kw):
    return meta(pod_pb2.Pod(api_version="v1", kind="Pod"), name, uid, **kw)


def ns(name, uid, **kw):
    return meta(core_pb2.Namespace(api_version="v1", kind="Namespace"), name, uid,
                namespace="", **kw)


def test_nothing_to_do_when_owners_exist() -> None:
    plan = plan_collection([rs("a", "u-rs"),
                            pod("a-1", "u-p1", owners=[("ReplicaSet", "a", "u-rs")])])
    assert plan.empty()


def test_orphaned_dependent_is_deleted_in_background() -> None:
    plan = plan_collection([pod("a-1", "u-p1", owners=[("ReplicaSet", "a", "gone")])])
    assert plan.delete == (("Pod", "default", "a-1", "Background"),)


def test_dangling_reference_is_dropped_when_another_owner_remains() -> None:
    plan = plan_collection([rs("a", "u-rs"), pod("p", "u-p", owners=[
        ("ReplicaSet", "a", "u-rs"), ("ReplicaSet", "b", "gone")])])
    assert plan.delete == () and plan.drop_owner == (("Pod", "default", "p", "gone"),)


def test_foreground_deletes_dependents_first_then_finishes() -> None:
    owner = rs("a", "u-rs", deleting=True, finalizers=["foregroundDeletion"])
    child = pod("a-1", "u-p1", owners=[("ReplicaSet", "a", "u-rs")])
    plan = plan_collection([owner, child])
    assert plan.delete == (("Pod", "default", "a-1", "Foreground"),)
    assert plan.finish == ()
    plan = plan_collection([owner])
    assert plan.finish == (("ReplicaSet", "default", "a", "foregroundDeletion"),)


def test_orphan_releases_dependents() -> None:
    owner = rs("a", "u-rs", deleting=True, finalizers=["orphan"])
    child = pod("a-1", "u-p1", owners=[("ReplicaSet", "a", "u-rs")])
    plan = plan_collection([owner, child])
    assert plan.delete == ()
    assert plan.drop_owner == (("Pod", "default", "a-1", "u-rs"),)
    assert plan.finish == (("ReplicaSet", "default", "a", "orphan"),)


def test_objects_of_a_deleted_namespace_go_then_the_namespace() -> None:
    terminating = ns("team", "u-ns", deleting=True, finalizers=["kubernetes"])
    plan = plan_collection([terminating, pod("p", "u-p", namespace="team")])
    assert plan.delete == (("Pod", "team", "p", "Background"),) and plan.finish == ()
    plan = plan_collection([terminating])
    assert plan.finish == (("Namespace", "", "team", "kubernetes"),)


class _Cache:
    """The part of ObjectCache the collector's on_change reads (a unit-test double)."""

    def __init__(self) -> None:
        self.items: dict = {}

    def put(self, kind: str, obj) -> tuple[str, str, str]:
        key = (kind, obj.metadata.namespace, obj.metadata.name)
        self.items[key] = obj
        return key

    def get(self, kind, namespace, name):
        return self.items.get((kind, namespace, name))


def test_only_changes_the_plan_reads_wake_the_collector() -> None:
    from types import SimpleNamespace

    from raftkube.masters.controllers.garbage_collector import GarbageCollector

    cache = _Cache()
    gc = GarbageCollector(SimpleNamespace(cache=cache))  # type: ignore[arg-type]

    def change(obj) -> bool:
        key = ("Pod", "default", "p")
        if obj is None:
            cache.items.pop(key, None)
        else:
            cache.items[key] = obj
        gc._dirty.clear()
        gc.on_change(*key)
        return gc._dirty.is_set()

    owners = [("ReplicaSet", "rs", "u-rs")]
    assert change(pod("p", "u-p", owners=owners))  # new object
    bound = pod("p", "u-p", owners=owners)
    bound.spec.node_name, bound.status.phase = "n1", "Running"
    assert not change(bound)  # binding and status: nothing the plan reads
    assert change(pod("p", "u-p", owners=owners, deleting=True))
    assert change(pod("p", "u-p", deleting=True))  # owner references changed
    assert change(pod("p", "u-p", deleting=True, finalizers=["x"]))
    assert change(None)  # gone


def _collector():
    from raftkube.masters.controllers.garbage_collector import GarbageCollector
    from raftkube.masters.controllers.manager import ControllerContext

    cache = _Cache()
    return cache, GarbageCollector(ControllerContext(api=None, cache=cache, term=1))


def test_a_pod_appearing_under_a_live_owner_wakes_no_pass() -> None:
    cache, gc = _collector()
    gc.on_change(*cache.put("Namespace", ns("web", "u-ns")))
    gc.on_change(*cache.put("ReplicaSet", rs("a", "u-rs", namespace="web")))
    gc._dirty.clear()
    gc.on_change(*cache.put("Pod", pod("a-1", "u-p1", namespace="web",
                                       owners=[("ReplicaSet", "a", "u-rs")])))
    assert not gc._dirty.is_set()
    gc.on_change(*cache.put("Pod", pod("lonely", "u-p2", namespace="default")))
    assert not gc._dirty.is_set()


def test_appearances_that_may_need_collection_wake_a_pass() -> None:
    cache, gc = _collector()
    gc.on_change(*cache.put("Namespace", ns("web", "u-ns")))
    gc.on_change(*cache.put("ReplicaSet", rs("a", "u-rs", namespace="web")))
    gc.on_change(*cache.put("ReplicaSet", rs("old", "u-old", namespace="web", deleting=True,
                                             finalizers=["foregroundDeletion"])))
    cases = {
        "owner never seen": pod("p1", "u1", namespace="web",
                                owners=[("ReplicaSet", "gone", "u-gone")]),
        "owner being deleted": pod("p2", "u2", namespace="web",
                                   owners=[("ReplicaSet", "old", "u-old")]),
        "namespace never seen": pod("p3", "u3", namespace="nowhere",
                                    owners=[("ReplicaSet", "a", "u-rs")]),
        "itself being deleted": pod("p4", "u4", namespace="web", deleting=True,
                                    owners=[("ReplicaSet", "a", "u-rs")]),
    }
    for what, obj in cases.items():
        gc._dirty.clear()
        gc.on_change(*cache.put("Pod", obj))
        assert gc._dirty.is_set(), what


def test_an_owner_or_namespace_going_wakes_a_pass_and_is_no_longer_live() -> None:
    cache, gc = _collector()
    gc.on_change(*cache.put("Namespace", ns("web", "u-ns")))
    key = cache.put("ReplicaSet", rs("a", "u-rs", namespace="web"))
    gc.on_change(*key)
    gc._dirty.clear()
    del cache.items[key]
    gc.on_change(*key)
    assert gc._dirty.is_set()
    gc._dirty.clear()
    gc.on_change(*cache.put("Pod", pod("a-1", "u-p1", namespace="web",
                                       owners=[("ReplicaSet", "a", "u-rs")])))
    assert gc._dirty.is_set(), "a pod of the deleted owner must be collected"
    gc._dirty.clear()
    gc.on_change(*cache.put("Namespace", ns("web", "u-ns", deleting=True)))
    assert gc._dirty.is_set()
    gc._dirty.clear()
    gc.on_change(*cache.put("Pod", pod("late", "u-late", namespace="web")))
    assert gc._dirty.is_set(), "an object created in a namespace being deleted"
