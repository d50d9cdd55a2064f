"""Garbage collection through ownerReferences, and namespace cleanup.

Pure part, `plan_collection(objects)`:
- a dependent none of whose owners exists any more is deleted (background cascade);
  owner references to objects that are gone are dropped when other owners remain;
- an owner being deleted with the `foregroundDeletion` finalizer has its dependents deleted
  (foreground, so grandchildren go first) and loses the finalizer once none remain;
- an owner being deleted with the `orphan` finalizer has its dependents released (their
  reference to it removed) and loses the finalizer once none refer to it;
- objects in a namespace that no longer exists (or is being deleted) are deleted; a
  namespace being deleted loses its `kubernetes` finalizer (and so goes) once empty.

The loop applies the plan through the API with compare-and-swap; a Conflict or NotFound
only means the world moved on, and the next pass decides again. The plan depends only on
each object's `collection_fingerprint` (and its existence), so changes that leave it alone
(a pod bound, its status reported) do not trigger a pass over every object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.logging_config import get_logger
from raftkube.masters.controllers.manager import ControllerContext
from raftkube.masters.object_api import (
    FOREGROUND_FINALIZER,
    NAMESPACE_FINALIZER,
    ORPHAN_FINALIZER,
)
from raftkube.objects.registry import for_message

log = get_logger(__name__)

ObjectId = tuple[str, str, str]  # (kind, namespace, name)
ALWAYS_PRESENT_NAMESPACES = frozenset({"default"})


@dataclass(frozen=True)
class CollectionPlan:
    """What the collector will do.

    delete: (kind, namespace, name, propagation) to delete.
    drop_owner: (kind, namespace, name, owner uid) references to remove.
    finish: (kind, namespace, name, finalizer) to remove from an owner being deleted.
    """

    delete: tuple[tuple[str, str, str, str], ...] = ()
    drop_owner: tuple[tuple[str, str, str, str], ...] = ()
    finish: tuple[tuple[str, str, str, str], ...] = ()

    def empty(self) -> bool:
        return not (self.delete or self.drop_owner or self.finish)


def _id(obj: Message) -> ObjectId:
    return (for_message(obj).kind, obj.metadata.namespace, obj.metadata.name)


def collection_fingerprint(obj: Message) -> tuple:
    """Everything of `obj` that `plan_collection` reads besides its kind and key: uid,
    owner uids, whether it is being deleted, finalizers."""
    meta = obj.metadata  # type: ignore[attr-defined]
    return (meta.uid, tuple(ref.uid for ref in meta.owner_references),
            bool(meta.deletion_timestamp), tuple(meta.finalizers))


def plan_collection(objects: Iterable[Message]) -> CollectionPlan:
    """The collection plan for a consistent set of objects (see the module docstring)."""
    objs = list(objects)
    by_uid = {o.metadata.uid: o for o in objs}
    namespaces = {o.metadata.name: o for o in objs if for_message(o).kind == "Namespace"}
    dependents: dict[str, list[Message]] = {}
    for o in objs:
        for ref in o.metadata.owner_references:
            dependents.setdefault(ref.uid, []).append(o)
    delete: list[tuple[str, str, str, str]] = []
    drop: list[tuple[str, str, str, str]] = []
    finish: list[tuple[str, str, str, str]] = []
    populated: set[str] = set()

    for o in objs:
        kind, ns, name = _id(o)
        if ns:
            populated.add(ns)
            namespace = namespaces.get(ns)
            if ns not in ALWAYS_PRESENT_NAMESPACES and (
                    namespace is None or namespace.metadata.deletion_timestamp):
                if not o.metadata.deletion_timestamp:
                    delete.append((kind, ns, name, "Background"))
                continue
        refs = list(o.metadata.owner_references)
        if refs:
            alive = [r for r in refs if r.uid in by_uid]
            if not alive:
                if not o.metadata.deletion_timestamp:
                    delete.append((kind, ns, name, "Background"))
                continue
            for ref in refs:
                if ref.uid not in by_uid:
                    drop.append((kind, ns, name, ref.uid))

    for owner in objs:
        meta = owner.metadata
        if not meta.deletion_timestamp:
            continue
        kind, ns, name = _id(owner)
        children = dependents.get(meta.uid, [])
        if FOREGROUND_FINALIZER in meta.finalizers:
            for child in children:
                if not child.metadata.deletion_timestamp:
                    delete.append((*_id(child), "Foreground"))
            if not children:
                finish.append((kind, ns, name, FOREGROUND_FINALIZER))
        if ORPHAN_FINALIZER in meta.finalizers:
            for child in children:
                drop.append((*_id(child), meta.uid))
            finish.append((kind, ns, name, ORPHAN_FINALIZER))
        if (kind == "Namespace" and name not in populated
                and NAMESPACE_FINALIZER in meta.finalizers):
            finish.append((kind, "", name, NAMESPACE_FINALIZER))
    return CollectionPlan(tuple(dict.fromkeys(delete)), tuple(dict.fromkeys(drop)),
                          tuple(dict.fromkeys(finish)))


@dataclass
class GarbageCollector:
    """Applies `plan_collection` whenever an object goes or changes its fingerprint, or
    appears with something to collect (at most every `min_interval`).

    An object that appears not being deleted, in a namespace that exists and is not being
    deleted, every owner of which is known and not being deleted, gives the plan nothing
    to do (it is not collected and collects nothing), so it wakes nobody: a ReplicaSet
    creating 10,000 pods no longer costs a pass over every object each `min_interval`.
    When in doubt (an owner not seen yet, say) the pass runs, as before."""

    context: ControllerContext
    kinds: Sequence[str] = ()
    min_interval: float = 0.2
    name: str = "garbage-collector"
    _dirty: threading.Event = field(default_factory=threading.Event)
    _seen: dict[ObjectId, tuple] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _live_uids: set[str] = field(default_factory=set)  # seen, not being deleted
    _live_namespaces: set[str] = field(default_factory=set)
    passes: int = 0

    def on_change(self, kind: str, namespace: str, name: str) -> None:
        obj = self.context.cache.get(kind, namespace, name)
        fingerprint = None if obj is None else collection_fingerprint(obj)
        key = (kind, namespace, name)
        with self._lock:
            old = self._seen.get(key)
            if old == fingerprint and fingerprint is not None:
                return
            if old is not None:
                self._live_uids.discard(old[0])
                if kind == "Namespace":
                    self._live_namespaces.discard(name)
            if fingerprint is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = fingerprint
                if not fingerprint[2]:
                    self._live_uids.add(fingerprint[0])
                    if kind == "Namespace":
                        self._live_namespaces.add(name)
                if old is None and self._appears_settled(namespace, fingerprint):
                    return
        self._dirty.set()

    def _appears_settled(self, namespace: str, fingerprint: tuple) -> bool:
        """True when an object that just appeared can change no plan (see the class
        docstring). Called under the lock."""
        _, owner_uids, deleting, _ = fingerprint
        if deleting:
            return False
        if namespace and namespace not in ALWAYS_PRESENT_NAMESPACES and (
                namespace not in self._live_namespaces):
            return False
        return all(uid in self._live_uids for uid in owner_uids)

    def run(self, stop: threading.Event) -> None:
        self._dirty.set()
        while not stop.is_set():
            if not self._dirty.wait(0.5):
                continue
            self._dirty.clear()
            cache = self.context.cache
            kinds = self.kinds or cache.kinds()
            plan = plan_collection(obj for kind in kinds for obj in cache.list(kind))
            self.passes += 1
            if not plan.empty():
                self._apply(plan)
                self._dirty.set()  # look again: the apply changed things
            stop.wait(self.min_interval)

    def _apply(self, plan: CollectionPlan) -> None:
        api = self.context.api
        for kind, ns, name, propagation in plan.delete:
            _quietly(lambda k=kind, n=ns, m=name, p=propagation: api.delete(
                k, n, m, propagation_policy=p))
        for kind, ns, name, uid in plan.drop_owner:
            _quietly(lambda k=kind, n=ns, m=name, u=uid: _drop_owner(api, k, n, m, u))
        for kind, ns, name, finalizer in plan.finish:
            _quietly(lambda k=kind, n=ns, m=name, f=finalizer: _remove_finalizer(
                api, k, n, m, f))


def _drop_owner(api, kind: str, ns: str, name: str, uid: str) -> None:
    obj = api.get(kind, ns, name)
    keep = [r for r in obj.metadata.owner_references if r.uid != uid]
    if len(keep) == len(obj.metadata.owner_references):
        return
    del obj.metadata.owner_references[:]
    obj.metadata.owner_references.extend(keep)
    api.update(obj)


def _remove_finalizer(api, kind: str, ns: str, name: str, finalizer: str) -> None:
    obj = api.get(kind, ns, name)
    if finalizer not in obj.metadata.finalizers:
        return
    obj.metadata.finalizers.remove(finalizer)
    api.update(obj)


def _quietly(action) -> None:
    try:
        action()
    except (apierrors.NotFound, apierrors.Conflict):
        pass
    except apierrors.ApiError as e:
        log.warning("garbage collection step failed", error=str(e))
