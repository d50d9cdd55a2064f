"""An in-process cache of every object of some kinds, kept current by watching the store:
the masters' informer for the scheduler and controllers.

```
 ObjectStore.list(kind) ──> cache ──┐
 ObjectStore.watch(kind, rv+1) ──> apply event ──> handlers(kind, key)  (controllers queue keys)
```

Contract:
- Objects handed out are the cache's own messages: callers must never mutate them (copy
  first). Every read is a consistent view of one kind at one revision.
- Handlers get (kind, namespace, name) for each change and must not block for long.
- When the watch fails (store restart, compacted history) the kind is relisted and every
  key is reported again, so level-triggered consumers converge.
- `wait_synced` returns once every kind has been listed.
- `list_controlled(kind, namespace, uid)` answers from an index by controller owner
  reference kept with the items (same view as `list`, without scanning the namespace);
  `list_on_node(name)` and `nodes_with_pods()` from an index of pods by node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.logging_config import get_logger
from raftkube.masters.object_store import ObjectStore
from raftkube.objects.registry import KindInfo, by_kind

log = get_logger(__name__)

Key = tuple[str, str]  # (namespace, name)
Handler = Callable[[str, str, str], None]  # (kind, namespace, name)
OwnerKey = tuple[str, str]  # (namespace, uid of the controller owner; "" = none)


def controller_uid(obj: Message) -> str:
    """The uid of `obj`'s controller owner reference ("" when it has none)."""
    for ref in obj.metadata.owner_references:  # type: ignore[attr-defined]
        if ref.controller:
            return ref.uid
    return ""


def owner_key(obj: Message) -> OwnerKey:
    return obj.metadata.namespace, controller_uid(obj)  # type: ignore[attr-defined]


GroupKey = tuple[str, str]


def node_key(obj: Message) -> GroupKey:
    """Pods grouped by the node they are bound to ("" = not bound)."""
    return "", obj.spec.node_name  # type: ignore[attr-defined]


class _GroupIndex:
    """Objects of one kind grouped by `group_of(obj)`. Not thread-safe: the cache mutates
    and reads it under its lock."""

    def __init__(self, items: dict[Key, Message],
                 group_of: Callable[[Message], GroupKey]) -> None:
        self._group_of = group_of
        self._groups: dict[GroupKey, dict[Key, Message]] = {}
        for key, obj in items.items():
            self.put(key, None, obj)

    def put(self, key: Key, old: Message | None, new: Message | None) -> None:
        """Move `key` from `old`'s group (if any) to `new`'s (None: removed)."""
        if old is not None:
            old_group = self._group_of(old)
            group = self._groups.get(old_group)
            if group is not None:
                group.pop(key, None)
                if not group:
                    del self._groups[old_group]
        if new is not None:
            self._groups.setdefault(self._group_of(new), {})[key] = new

    def get(self, group: GroupKey) -> list[Message]:
        return list(self._groups.get(group, {}).values())

    def groups(self) -> list[GroupKey]:
        return list(self._groups)


class ObjectCache:
    """Watch-fed caches of the given kinds; start() spawns one thread per kind."""

    def __init__(self, objects: ObjectStore, kinds: Iterable[str]) -> None:
        self._objects = objects
        self._infos = {k: by_kind(k) for k in kinds}
        self._items: dict[str, dict[Key, Message]] = {k: {} for k in self._infos}
        self._owners: dict[str, _GroupIndex] = {
            k: _GroupIndex({}, owner_key) for k in self._infos}
        self._pods_by_node = _GroupIndex({}, node_key)
        self._revision: dict[str, int] = dict.fromkeys(self._infos, 0)
        self._synced = {k: threading.Event() for k in self._infos}
        self._lock = threading.RLock()
        self._handlers: list[Handler] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def start(self) -> None:
        for kind, info in self._infos.items():
            thread = threading.Thread(target=self._run, args=(kind, info), daemon=True,
                                      name=f"cache-{kind}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return all(event.wait(timeout) for event in self._synced.values())

    # -- reads ------------------------------------------------------------------------
    def kinds(self) -> list[str]:
        """The kinds this cache holds."""
        return list(self._infos)

    def get(self, kind: str, namespace: str, name: str) -> Message | None:
        with self._lock:
            return self._items[kind].get((namespace, name))

    def list(self, kind: str, namespace: str | None = None) -> list[Message]:
        with self._lock:
            items = self._items[kind]
            if namespace is None:
                return list(items.values())
            return [obj for (ns, _), obj in items.items() if ns == namespace]

    def list_controlled(self, kind: str, namespace: str, uid: str) -> list[Message]:
        """Objects of `namespace` whose controller owner reference has `uid` ("" = the
        objects without a controller reference); O(result), not O(namespace)."""
        with self._lock:
            return self._owners[kind].get((namespace, uid))

    def list_on_node(self, node_name: str) -> list[Message]:
        """The cached pods bound to `node_name`; O(result). Needs "Pod" among the kinds."""
        with self._lock:
            return self._pods_by_node.get(("", node_name))

    def nodes_with_pods(self) -> list[str]:
        """Names of the nodes that have at least one cached pod bound to them."""
        with self._lock:
            return [name for _, name in self._pods_by_node.groups() if name]

    def revision(self, kind: str) -> int:
        with self._lock:
            return self._revision[kind]

    # -- internals --------------------------------------------------------------------
    def _notify(self, kind: str, key: Key) -> None:
        for handler in self._handlers:
            try:
                handler(kind, key[0], key[1])
            except Exception:
                log.exception("cache handler failed", kind=kind)

    def _run(self, kind: str, info: KindInfo) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch(kind, info)
            except apierrors.ApiError as e:
                log.info("cache relisting", kind=kind, reason=str(e))
                self._stop.wait(0.2)
            except Exception:
                log.exception("cache watch failed; relisting", kind=kind)
                self._stop.wait(0.5)

    def _list_and_watch(self, kind: str, info: KindInfo) -> None:
        items, revision, _ = self._objects.list(info)
        fresh = {(o.metadata.namespace, o.metadata.name): o for o in items}
        with self._lock:
            old = self._items[kind]
            self._items[kind] = fresh
            self._owners[kind] = _GroupIndex(fresh, owner_key)
            if kind == "Pod":
                self._pods_by_node = _GroupIndex(fresh, node_key)
            self._revision[kind] = revision
        self._synced[kind].set()
        for key in set(old) | set(fresh):
            self._notify(kind, key)
        for event in self._objects.watch(info, "", revision + 1, self._stop,
                                         with_previous=False):
            obj = event.obj
            key = (obj.metadata.namespace, obj.metadata.name)
            with self._lock:
                items = self._items[kind]
                old = items.get(key)
                if event.type == "DELETED":
                    items.pop(key, None)
                    obj = None
                else:
                    items[key] = obj
                self._owners[kind].put(key, old, obj)
                if kind == "Pod":
                    self._pods_by_node.put(key, old, obj)
                self._revision[kind] = event.revision
            self._notify(kind, key)
