"""Typed objects on the replicated key-value store.

```
 API server ──> ObjectStore ──(bytes, CAS txns)──> consensus.Store (Raft)
                  │ key: /registry/{plural}/{namespace}/{name}   (cluster-scoped: no namespace)
                  │ value: transformer(serialized protobuf)        (secrets: encrypted)
                  │ resourceVersion = the key's mod_revision       (set when read, never stored)
```

Contract:
- Every write is one store transaction guarded by a compare (absent, or mod_revision equals
  the version the caller read), so concurrent writers never overwrite each other: the loser
  gets `Conflict` naming both versions.
- Objects returned are fresh messages with `metadata.resource_version` set; callers may
  mutate them freely.
- Store errors map to API errors: timeouts -> UnknownOutcome (the write may still apply),
  no leader/quorum -> Unavailable, compacted history -> Compacted.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from google.protobuf.message import DecodeError, Message

from raftkube import apierrors
from raftkube.consensus import errors as store_errors
from raftkube.consensus.model import Compare, EventType, KeyValue, Op
from raftkube.objects.registry import KindInfo, for_message

REGISTRY_PREFIX = b"/registry/"
T = TypeVar("T")


class ClaimTaken(apierrors.Conflict):
    """A claim key (allocation) was taken by a concurrent write; pick another value."""


class ValueTransformer(Protocol):
    """Turns serialized objects into stored bytes and back (e.g. encryption at rest).

    `key` is the storage key; implementations may bind the value to it.
    """

    def to_storage(self, key: bytes, data: bytes) -> bytes: ...

    def from_storage(self, key: bytes, data: bytes) -> bytes: ...


class IdentityTransformer:
    """Stores serialized objects as they are."""

    def to_storage(self, key: bytes, data: bytes) -> bytes:
        return data

    def from_storage(self, key: bytes, data: bytes) -> bytes:
        return data


class KeyValueStore(Protocol):
    """The part of consensus.Store this module uses."""

    def txn(self, compares: Sequence[Compare], success: Sequence[Op],
            failure: Sequence[Op] = (), timeout: float = 5.0): ...

    def range(self, key: bytes, range_end: bytes | None = None, limit: int = 0,
              linearizable: bool = False): ...

    def watch(self, key: bytes, range_end: bytes | None, start_revision: int): ...


@dataclass(frozen=True)
class ObjectEvent:
    """A change of one object: type ADDED / MODIFIED / DELETED (or IDLE, see watch), at
    store `revision`.

    `obj` is the object after the change (before it, for DELETED); `previous` is the
    object before the change when known (None for ADDED).
    """

    type: str
    obj: Message | None
    previous: Message | None
    revision: int


def kind_prefix(info: KindInfo, namespace: str = "") -> bytes:
    """The key prefix holding every object of a kind (in one namespace when given)."""
    prefix = REGISTRY_PREFIX + info.plural.encode() + b"/"
    if info.namespaced and namespace:
        prefix += namespace.encode() + b"/"
    return prefix


def object_key(info: KindInfo, namespace: str, name: str) -> bytes:
    """The storage key of one object."""
    if info.namespaced:
        return kind_prefix(info) + namespace.encode() + b"/" + name.encode()
    return kind_prefix(info) + name.encode()


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def encode_continue(next_key: bytes) -> str:
    return base64.urlsafe_b64encode(next_key).decode()


def decode_continue(token: str, prefix: bytes) -> bytes:
    try:
        key = base64.urlsafe_b64decode(token.encode())
    except (ValueError, TypeError):
        raise apierrors.Invalid("continue: not a continue token from this server") from None
    if not key.startswith(prefix):
        raise apierrors.Invalid("continue: the token belongs to another list")
    return key


def _store_call(call: Callable[[], T]) -> T:
    try:
        return call()
    except store_errors.UnknownOutcomeError as e:
        raise apierrors.UnknownOutcome(f"write outcome unknown: {e}") from e
    except (store_errors.NotLeaderError, store_errors.NoQuorumError) as e:
        raise apierrors.Unavailable(f"store unavailable: {e}") from e
    except store_errors.StoreClosedError as e:
        raise apierrors.Unavailable(f"store stopped: {e}") from e
    except (store_errors.ValueTooLargeError, store_errors.TxnTooLargeError) as e:
        raise apierrors.TooLarge(str(e)) from e
    except store_errors.CompactedError as e:
        raise apierrors.Compacted(str(e), oldest_revision=e.oldest_revision) from e


class ObjectStore:
    """Create, read, update, delete and watch typed objects with optimistic concurrency."""

    def __init__(self, store: KeyValueStore, transformer: ValueTransformer | None = None,
                 write_timeout: float = 5.0) -> None:
        self._store = store
        self._transformer = transformer or IdentityTransformer()
        self._write_timeout = write_timeout

    # -- encoding ---------------------------------------------------------------------
    def encode(self, key: bytes, obj: Message) -> bytes:
        """Stored bytes for `obj` (resourceVersion is never stored)."""
        rv = obj.metadata.resource_version  # type: ignore[attr-defined]
        obj.metadata.resource_version = ""  # type: ignore[attr-defined]
        try:
            data = obj.SerializeToString(deterministic=True)
        finally:
            obj.metadata.resource_version = rv  # type: ignore[attr-defined]
        return self._transformer.to_storage(key, data)

    def decode(self, info: KindInfo, kv: KeyValue) -> Message:
        """The object stored in `kv`, with resourceVersion = its mod_revision."""
        obj = info.message_class()
        try:
            obj.ParseFromString(self._transformer.from_storage(kv.key, kv.value))
        except DecodeError as e:
            raise apierrors.Internal(f"stored object {kv.key!r} is corrupt: {e}") from e
        obj.metadata.resource_version = str(kv.mod_revision)  # type: ignore[attr-defined]
        return obj

    # -- reads ------------------------------------------------------------------------
    def get(self, info: KindInfo, namespace: str, name: str,
            linearizable: bool = False) -> Message:
        """The object, or NotFound."""
        key = object_key(info, namespace, name)
        result = _store_call(lambda: self._store.range(key, linearizable=linearizable))
        if not result.kvs:
            raise apierrors.NotFound(_not_found(info, namespace, name))
        return self.decode(info, result.kvs[0])

    def get_many(self, info: KindInfo, namespace: str, name: str) -> Message | None:
        """The object, or None when absent (a local read)."""
        try:
            return self.get(info, namespace, name)
        except apierrors.NotFound:
            return None

    def list(self, info: KindInfo, namespace: str = "", *, limit: int = 0,
             continue_token: str = "", linearizable: bool = False,
             keep: Callable[[Message], bool] | None = None,
             ) -> tuple[list[Message], int, str]:
        """Objects of a kind (one namespace or all), in key order.

        `keep` filters (selectors); `limit` caps the number returned after filtering and
        yields a continue token when more may follow. Returns (items, revision, token).
        """
        prefix = kind_prefix(info, namespace)
        end = prefix_end(prefix)
        start = decode_continue(continue_token, prefix) if continue_token else prefix
        items: list[Message] = []
        revision = 0
        page = max(limit, 500) if limit else 0
        while True:
            result = _store_call(
                lambda s=start: self._store.range(s, end, limit=page, linearizable=linearizable)
            )
            revision = revision or result.revision
            for kv in result.kvs:
                obj = self.decode(info, kv)
                if keep is None or keep(obj):
                    items.append(obj)
                    if limit and len(items) == limit:
                        next_key = kv.key + b"\0"
                        more = kv is not result.kvs[-1] or result.more
                        return items, revision, encode_continue(next_key) if more else ""
            if not result.more or not result.kvs:
                return items, revision, ""
            start = result.kvs[-1].key + b"\0"

    # -- writes -----------------------------------------------------------------------
    def create(self, obj: Message) -> Message:
        """Store a new object; AlreadyExists if the name is taken."""
        info = for_message(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        key = object_key(info, meta.namespace, meta.name)
        value = self.encode(key, obj)
        result = _store_call(lambda: self._store.txn(
            [Compare.absent(key)], [Op.put(key, value)], timeout=self._write_timeout))
        if not result.succeeded:
            raise apierrors.AlreadyExists(_already_exists(info, meta.namespace, meta.name))
        out = type(obj)()
        out.CopyFrom(obj)
        out.metadata.resource_version = str(result.revision)  # type: ignore[attr-defined]
        return out

    def create_many(self, objs: Sequence[Message]) -> list[Message]:
        """Store several new objects in one transaction: all or none. AlreadyExists
        names the first one whose name is taken, or one given twice (nothing is written
        then). Returns them with their version."""
        compares: list[Compare] = []
        ops: list[Op] = []
        keys: set[bytes] = set()
        for obj in objs:
            info = for_message(obj)
            meta = obj.metadata  # type: ignore[attr-defined]
            key = object_key(info, meta.namespace, meta.name)
            if key in keys:
                raise apierrors.AlreadyExists(
                    f'{info.plural} "{meta.name}"'
                    + (f' in namespace "{meta.namespace}"' if info.namespaced else "")
                    + " is given twice in one create")
            keys.add(key)
            compares.append(Compare.absent(key))
            ops.append(Op.put(key, self.encode(key, obj)))
        if not ops:
            return []
        result = _store_call(lambda: self._store.txn(compares, ops,
                                                     timeout=self._write_timeout))
        if not result.succeeded:
            taken = objs[result.failed_compare or 0]
            info = for_message(taken)
            meta = taken.metadata  # type: ignore[attr-defined]
            raise apierrors.AlreadyExists(_already_exists(info, meta.namespace, meta.name))
        out = []
        for obj in objs:
            copy = type(obj)()
            copy.CopyFrom(obj)
            copy.metadata.resource_version = str(result.revision)  # type: ignore[attr-defined]
            out.append(copy)
        return out

    def create_claiming(self, obj: Message, claims: Sequence[bytes]) -> Message:
        """`create` that also writes each claim key (value: the object's key) in the same
        transaction, only if none of them exists yet. AlreadyExists when the name is
        taken; ClaimTaken when a claim key is (the caller picks again)."""
        info = for_message(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        key = object_key(info, meta.namespace, meta.name)
        value = self.encode(key, obj)
        compares = [Compare.absent(key)] + [Compare.absent(c) for c in claims]
        ops = [Op.put(key, value)] + [Op.put(c, key) for c in claims]
        result = _store_call(lambda: self._store.txn(
            compares, ops, [Op.range(key)], timeout=self._write_timeout))
        if not result.succeeded:
            if result.results and result.results[0].kvs:
                raise apierrors.AlreadyExists(_already_exists(info, meta.namespace, meta.name))
            raise ClaimTaken(f"an allocation of {info.kind} {meta.name!r} was taken "
                             "concurrently")
        out = type(obj)()
        out.CopyFrom(obj)
        out.metadata.resource_version = str(result.revision)  # type: ignore[attr-defined]
        return out

    def claimed_for(self, prefix: bytes, requested: Iterable[bytes]) -> set[bytes]:
        """The claim keys under `prefix`, for a create that asks for `requested`: read
        from the local replica, and again linearizably when one of `requested` looks
        taken there (the local replica may not have applied a release acknowledged on
        another master yet: only the leader's view may refuse)."""
        taken = self.claimed(prefix)
        if not taken.isdisjoint(requested):
            taken = self.claimed(prefix, linearizable=True)
        return taken

    def claimed(self, prefix: bytes, linearizable: bool = False) -> set[bytes]:
        """The claim keys under `prefix`: read from the local replica, which may lag the
        leader, unless `linearizable` (then every release acknowledged before the call is
        seen)."""
        keys: set[bytes] = set()
        start, end = prefix, prefix_end(prefix)
        while True:
            result = _store_call(lambda s=start: self._store.range(
                s, end, limit=1000, linearizable=linearizable))
            keys.update(kv.key for kv in result.kvs)
            if not result.more or not result.kvs:
                return keys
            start = result.kvs[-1].key + b"\0"

    def replace(self, obj: Message, expected_revision: int) -> Message:
        """Store `obj` over the existing object whose mod_revision is `expected_revision`.

        NotFound if it is gone; Conflict (naming both versions) if it changed.
        """
        info = for_message(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        key = object_key(info, meta.namespace, meta.name)
        value = self.encode(key, obj)
        result = _store_call(lambda: self._store.txn(
            [Compare.mod_revision(key, expected_revision)], [Op.put(key, value)],
            [Op.range(key)], timeout=self._write_timeout))
        if not result.succeeded:
            self._raise_compare_failure(info, meta.namespace, meta.name, expected_revision,
                                        result.results[0].kvs)
        out = type(obj)()
        out.CopyFrom(obj)
        out.metadata.resource_version = str(result.revision)  # type: ignore[attr-defined]
        return out

    def remove(self, info: KindInfo, namespace: str, name: str,
               expected_revision: int, release: Sequence[bytes] = ()) -> int:
        """Delete the object if its mod_revision is still `expected_revision`, and the
        claim keys in `release` with it.

        Returns the deletion's revision; NotFound / Conflict like `replace`.
        """
        key = object_key(info, namespace, name)
        result = _store_call(lambda: self._store.txn(
            [Compare.mod_revision(key, expected_revision)],
            [Op.delete(key)] + [Op.delete(c) for c in release],
            [Op.range(key)], timeout=self._write_timeout))
        if not result.succeeded:
            self._raise_compare_failure(info, namespace, name, expected_revision,
                                        result.results[0].kvs)
        return result.revision

    def replace_many(self, objs: Sequence[tuple[Message, int]]) -> int:
        """Store several objects in one transaction, each guarded by its expected
        mod_revision; all are written or none. Returns the transaction's revision.

        Conflict names the first object that changed.
        """
        compares: list[Compare] = []
        ops: list[Op] = []
        names: list[tuple[KindInfo, str, str, int]] = []
        for obj, expected in objs:
            info = for_message(obj)
            meta = obj.metadata  # type: ignore[attr-defined]
            key = object_key(info, meta.namespace, meta.name)
            compares.append(Compare.mod_revision(key, expected))
            ops.append(Op.put(key, self.encode(key, obj)))
            names.append((info, meta.namespace, meta.name, expected))
        if not ops:
            return 0
        result = _store_call(lambda: self._store.txn(compares, ops,
                                                     timeout=self._write_timeout))
        if not result.succeeded:
            index = result.failed_compare or 0
            info, namespace, name, expected = names[index]
            current = self.get_many(info, namespace, name)
            self._raise_compare_failure(
                info, namespace, name, expected,
                () if current is None else (current,), decoded=True)
        return result.revision

    def _raise_compare_failure(self, info: KindInfo, namespace: str, name: str,
                               expected: int, current: Sequence, decoded: bool = False,
                               ) -> None:
        if not current:
            raise apierrors.NotFound(_not_found(info, namespace, name))
        now = (current[0].metadata.resource_version if decoded
               else str(current[0].mod_revision))
        raise apierrors.Conflict(
            f'Operation cannot be fulfilled on {info.plural} "{name}": the object has been '
            f"modified (resourceVersion {expected} given, current is {now}); "
            "read it again and retry",
            given=str(expected), current=now,
        )

    # -- watch ------------------------------------------------------------------------
    def watch(self, info: KindInfo, namespace: str, start_revision: int,
              stop: threading.Event, idle_events: bool = False,
              with_previous: bool = True) -> Iterator[ObjectEvent]:
        """Changes of a kind (in one namespace when given) from `start_revision` on.

        Yields events in revision order until `stop` is set. With `idle_events`, a quiet
        second yields an event of type "IDLE" (obj None) whose revision is the one up to
        which every change has been delivered (for bookmarks). Compacted if the history
        is gone. Without `with_previous`, ADDED and MODIFIED events carry previous=None
        (saves decoding the old value); DELETED always carries it.
        """
        for batch in self.watch_batches(info, namespace, start_revision, stop, idle_events,
                                        with_previous):
            yield from batch

    def watch_batches(self, info: KindInfo, namespace: str, start_revision: int,
                      stop: threading.Event, idle_events: bool = False,
                      with_previous: bool = True) -> Iterator[list[ObjectEvent]]:
        """`watch`, as the non-empty lists of events that were ready together (one or
        more consecutive revisions each; an IDLE event comes alone)."""
        prefix = kind_prefix(info, namespace)
        watch = _store_call(lambda: self._store.watch(prefix, prefix_end(prefix),
                                                      start_revision))
        try:
            while not stop.is_set():
                batch = _store_call(lambda: watch.next_batch(timeout=1.0))
                if batch is None:
                    if watch.cancelled:
                        return
                    if idle_events:
                        yield [ObjectEvent("IDLE", None, None, watch.next_revision - 1)]
                    continue
                yield [self._object_event(info, event, with_previous) for event in batch]
        finally:
            watch.cancel()

    def _object_event(self, info: KindInfo, event, with_previous: bool = True) -> ObjectEvent:
        deleted = event.type is EventType.DELETE
        previous = (self.decode(info, event.prev_kv)
                    if event.prev_kv is not None and (with_previous or deleted) else None)
        if deleted:
            if previous is None:
                raise apierrors.Internal(f"delete event without previous value: {event.kv.key!r}")
            previous.metadata.resource_version = str(event.kv.mod_revision)
            return ObjectEvent("DELETED", previous, previous, event.kv.mod_revision)
        obj = self.decode(info, event.kv)
        kind = "ADDED" if event.kv.version == 1 else "MODIFIED"
        return ObjectEvent(kind, obj, previous, event.kv.mod_revision)


def _already_exists(info: KindInfo, namespace: str, name: str) -> str:
    where = f' in namespace "{namespace}"' if info.namespaced else ""
    return f'{info.plural} "{name}" already exists{where}'


def _not_found(info: KindInfo, namespace: str, name: str) -> str:
    where = f' in namespace "{namespace}"' if info.namespaced and namespace else ""
    return f'{info.plural} "{name}" not found{where}'
