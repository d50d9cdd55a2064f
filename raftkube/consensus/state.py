"""The replicated state machine: an etcd-style revisioned key-value map.

`KVState` knows nothing about Raft. Commands are codec-encoded dicts with an "op" field;
`apply` dispatches through `APPLY_TABLE`, one small function per command. Apply is
deterministic: it reads only the command and the current state (no clock, no random).

Thread safety: the Raft thread calls `apply`; readers call the read methods. All of them
take `self.cond` (the state lock) for as short a time as they can: `history_since` only
slices the history under it and filters outside, and `range` first reads without it under
a sequence lock. Watchers wait on their own events (`add_waiter`), set after each apply.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from raftkube.consensus import codec
from raftkube.consensus.errors import CompactedError
from raftkube.consensus.model import (
    Compare,
    CompareResult,
    CompareTarget,
    EventType,
    KeyValue,
    Op,
    OpResult,
    OpType,
    RangeResult,
    TxnResult,
    WatchEvent,
)

_T = TypeVar("_T")
OPTIMISTIC_READS = 50  # lock-free attempts of a read before it takes the state lock

ALL_KEYS_END = b"\0"


def in_range(key: bytes, start: bytes, range_end: bytes | None) -> bool:
    """etcd range semantics: None = exactly `start`; b"\\0" = every key >= start."""
    if range_end is None:
        return key == start
    if range_end == ALL_KEYS_END:
        return key >= start
    return start <= key < range_end


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with `prefix`."""
    data = bytearray(prefix)
    while data:
        if data[-1] < 0xFF:
            data[-1] += 1
            return bytes(data)
        data.pop()
    return ALL_KEYS_END


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """The events of one revision."""

    revision: int
    events: tuple[WatchEvent, ...]


# ---- command encoding (used by the Store to build commands) ----

def encode_txn(compares: Iterable[Compare], success: Iterable[Op], failure: Iterable[Op]) -> bytes:
    """Encode a transaction command."""
    return codec.encode({
        "op": "txn",
        "compares": [[c.key, c.target.value, c.result.value, c.value] for c in compares],
        "success": [_encode_op(o) for o in success],
        "failure": [_encode_op(o) for o in failure],
    })


def encode_barrier(nonce: bytes) -> bytes:
    """A no-op command used as a linearizable read barrier."""
    return codec.encode({"op": "barrier", "nonce": nonce})


def encode_compact(revision: int) -> bytes:
    """Drop watch history up to and including `revision`."""
    return codec.encode({"op": "compact", "revision": revision})


def _encode_op(op: Op) -> list[Any]:
    return [op.type.value, op.key, op.value, op.range_end, op.limit]


def _decode_op(raw: list[Any]) -> Op:
    return Op(OpType(raw[0]), raw[1], raw[2], raw[3], raw[4])


class KVState:
    """Keys, values, revisions and bounded change history."""

    def __init__(self, history_max_revisions: int = 10000) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.history_max_revisions = history_max_revisions
        self._kv: dict[bytes, KeyValue] = {}
        self._keys: list[bytes] = []
        self.revision = 0
        self.compact_revision = 0
        self._history: list[HistoryEntry] = []
        self._hash_acc = 0  # sum of per-key digests mod 2**128 (order independent)
        self.generation = 0  # bumped when the state is replaced by a snapshot
        self._seq = 0  # odd while an apply or snapshot load changes the state
        self._waiters: set[threading.Event] = set()
        self._waiters_lock = threading.Lock()

    # ---- apply ----

    def apply(self, command: bytes) -> Any:
        """Apply one encoded command; returns its result (TxnResult for txns)."""
        decoded = codec.decode(command)
        handler = APPLY_TABLE.get(decoded.get("op")) if isinstance(decoded, dict) else None
        if handler is None:
            raise ValueError(f"unknown command {decoded!r:.80}")
        with self.cond:
            self._seq += 1  # odd: changing (see range)
            try:
                result = handler(self, decoded)
            finally:
                self._seq += 1
        self.wake_watchers()
        return result

    # ---- waking watchers ----

    def add_waiter(self, event: threading.Event) -> None:
        """Have `event` set after every apply (and by `wake_watchers`) until removed."""
        with self._waiters_lock:
            self._waiters.add(event)

    def remove_waiter(self, event: threading.Event) -> None:
        with self._waiters_lock:
            self._waiters.discard(event)

    def wake_watchers(self) -> None:
        """Set every registered waiter's event. Each watcher has its own event, so the
        Raft thread never waits for a lock that a dozen woken watchers contend for (a
        shared Condition made applies wait behind watchers holding its lock while they
        waited for the GIL)."""
        with self._waiters_lock:
            waiters = list(self._waiters)
        for event in waiters:
            event.set()

    def _apply_txn(self, cmd: dict[str, Any]) -> TxnResult:
        failed: int | None = None
        for i, (key, target, result, value) in enumerate(cmd["compares"]):
            if not self._compare_holds(key, CompareTarget(target), CompareResult(result), value):
                failed = i
                break
        ops = [_decode_op(o) for o in (cmd["success"] if failed is None else cmd["failure"])]
        new_rev = self.revision + 1
        events: list[WatchEvent] = []
        results: list[OpResult] = []
        for op in ops:
            if op.type is OpType.PUT:
                prev = self._kv.get(op.key)
                kv = KeyValue(op.key, op.value,
                              prev.create_revision if prev else new_rev, new_rev,
                              prev.version + 1 if prev else 1)
                if prev is None:
                    bisect.insort(self._keys, op.key)
                else:
                    self._hash_acc -= _kv_digest(prev)
                self._hash_acc = (self._hash_acc + _kv_digest(kv)) % _HASH_MOD
                self._kv[op.key] = kv
                events.append(WatchEvent(EventType.PUT, kv, prev))
                results.append(OpResult(OpType.PUT, prev_kvs=(prev,) if prev else ()))
            elif op.type is OpType.DELETE:
                lo, hi = self._span(op.key, op.range_end)
                doomed = self._keys[lo:hi]
                del self._keys[lo:hi]
                prevs = []
                for key in doomed:
                    prev = self._kv.pop(key)
                    self._hash_acc = (self._hash_acc - _kv_digest(prev)) % _HASH_MOD
                    prevs.append(prev)
                    tombstone = KeyValue(key, b"", 0, new_rev, 0)
                    events.append(WatchEvent(EventType.DELETE, tombstone, prev))
                results.append(OpResult(OpType.DELETE, prev_kvs=tuple(prevs), deleted=len(prevs)))
            else:
                found = self._range_locked(op.key, op.range_end, op.limit)
                results.append(OpResult(OpType.RANGE, kvs=tuple(found.kvs), more=found.more))
        if events:
            self.revision = new_rev
            self._history.append(HistoryEntry(new_rev, tuple(events)))
            self._trim_history()
        return TxnResult(failed is None, self.revision, failed, tuple(results))

    def _apply_barrier(self, cmd: dict[str, Any]) -> int:
        return self.revision

    def _apply_compact(self, cmd: dict[str, Any]) -> int:
        target = min(int(cmd["revision"]), self.revision)
        if target > self.compact_revision:
            drop = 0
            while drop < len(self._history) and self._history[drop].revision <= target:
                drop += 1
            del self._history[:drop]
            self.compact_revision = target
        return self.compact_revision

    def _trim_history(self) -> None:
        excess = len(self._history) - self.history_max_revisions
        # trim in chunks so the list is not shifted on every apply
        if excess > max(16, self.history_max_revisions // 10):
            self.compact_revision = self._history[excess - 1].revision
            del self._history[:excess]

    def _compare_holds(self, key: bytes, target: CompareTarget, result: CompareResult,
                       value: int | bytes) -> bool:
        kv = self._kv.get(key)
        actual: int | bytes
        if target is CompareTarget.VERSION:
            actual = kv.version if kv else 0
        elif target is CompareTarget.CREATE:
            actual = kv.create_revision if kv else 0
        elif target is CompareTarget.MOD:
            actual = kv.mod_revision if kv else 0
        else:
            if kv is None:
                return False
            actual = kv.value
        if result is CompareResult.EQUAL:
            return actual == value
        if result is CompareResult.NOT_EQUAL:
            return actual != value
        if result is CompareResult.GREATER:
            return actual > value  # type: ignore[operator]
        return actual < value  # type: ignore[operator]

    # ---- reads ----

    def _span(self, key: bytes, range_end: bytes | None) -> tuple[int, int]:
        lo = bisect.bisect_left(self._keys, key)
        if range_end is None:
            hi = lo + 1 if lo < len(self._keys) and self._keys[lo] == key else lo
        elif range_end == ALL_KEYS_END:
            hi = len(self._keys)
        else:
            hi = max(lo, bisect.bisect_left(self._keys, range_end))
        return lo, hi

    def range(self, key: bytes, range_end: bytes | None = None, limit: int = 0) -> RangeResult:
        """Keys in the range, sorted; `limit` 0 = no limit.

        Optimistic first (a sequence lock): read without the lock and keep the result only
        if no apply or snapshot load started or ended meanwhile; else read under the lock.
        A reader preempted while holding the lock would otherwise stall the Raft thread's
        next apply for as long as the GIL keeps it away (seen as 300 ms Raft ticks with
        10,000 pods being bound)."""
        return self._read(lambda: self._range_locked(key, range_end, limit))

    def _read(self, read: Callable[[], _T]) -> _T:
        """Run `read` as of one state: optimistically (sequence lock) up to
        `OPTIMISTIC_READS` times, yielding the GIL while an apply is under way, then under
        the lock. Readers that take the lock only when they must keep it uncontended for
        the Raft thread."""
        for _ in range(OPTIMISTIC_READS):
            before = self._seq
            if before % 2:
                time.sleep(0)  # an apply is under way: let it finish
                continue
            try:
                result = read()
            except (IndexError, KeyError):  # the list and dict changed under the read
                continue
            if self._seq == before:
                return result
        with self.cond:
            return read()

    def _range_locked(self, key: bytes, range_end: bytes | None, limit: int) -> RangeResult:
        lo, hi = self._span(key, range_end)
        count = hi - lo
        end = hi if limit <= 0 else min(hi, lo + limit)
        kvs = [self._kv[k] for k in self._keys[lo:end]]
        return RangeResult(kvs=kvs, more=end < hi, count=count, revision=self.revision)

    def key_count(self) -> int:
        with self.cond:
            return len(self._keys)

    @property
    def oldest_revision(self) -> int:
        """The first revision a watch may start from."""
        return self.compact_revision + 1

    def history_since(self, start_revision: int, key: bytes, range_end: bytes | None,
                      max_revisions: int = 1000) -> tuple[list[HistoryEntry], int]:
        """Matching history entries with revision >= start_revision (at most
        `max_revisions` revisions scanned). Returns (entries, next revision to ask for).
        Raises CompactedError when start_revision is compacted."""
        def locate() -> list[HistoryEntry] | int:
            if start_revision <= self.compact_revision:
                raise CompactedError(start_revision, self.oldest_revision)
            if not self._history or start_revision > self.revision:
                return max(start_revision, self.revision + 1)
            first = self._history[0].revision
            index = max(0, start_revision - first)
            return self._history[index:index + max_revisions]

        chunk = self._read(locate)
        if isinstance(chunk, int):
            return [], chunk
        # Entries are immutable and `chunk` is our own list: filter without the lock, so
        # a dozen watchers scanning the history never hold up the Raft thread's applies.
        matched = []
        for entry in chunk:
            events = tuple(e for e in entry.events if in_range(e.kv.key, key, range_end))
            if events:
                matched.append(HistoryEntry(entry.revision, events))
        next_rev = chunk[-1].revision + 1 if chunk else start_revision
        return matched, next_rev

    def state_hash(self) -> tuple[int, str]:
        """(revision, hash of the revision and every key with its value and revisions).
        Equal on all replicas at equal revisions; O(1): an additive multiset hash kept
        up to date by apply."""
        with self.cond:
            text = f"{self.revision}:{self._hash_acc:032x}".encode()
            return self.revision, hashlib.sha256(text).hexdigest()

    # ---- snapshot ----

    def capture(self) -> StateCapture:
        """A consistent, immutable view of the state (O(n) pointer copies, no encoding),
        cheap enough for the Raft thread; encode it elsewhere with `encode_capture`."""
        with self.cond:
            return StateCapture(self.revision, self.compact_revision,
                                [self._kv[k] for k in self._keys], list(self._history))

    def to_snapshot(self) -> bytes:
        """Encode the full state (keys and kept history) deterministically."""
        return encode_capture(self.capture())

    @staticmethod
    def revision_of_snapshot(data: bytes) -> int:
        """The revision recorded in a `to_snapshot` blob."""
        return int(codec.decode(data)["revision"])

    def load_snapshot(self, data: bytes) -> None:
        """Replace the whole state with a snapshot from `to_snapshot`."""
        raw = codec.decode(data)
        kvs = _unpack_kvs(raw["kvs"])
        history = _unpack_history(raw["history"])
        acc = sum(_kv_digest(kv) for kv in kvs) % _HASH_MOD
        with self.cond:
            self._seq += 1
            self._kv = {kv.key: kv for kv in kvs}
            self._keys = sorted(self._kv)
            self._hash_acc = acc
            self.revision = raw["revision"]
            self.compact_revision = raw["compact_revision"]
            self._history = history
            self.generation += 1
            self._seq += 1
        self.wake_watchers()


@dataclass(frozen=True, slots=True)
class StateCapture:
    """Immutable copy of a KVState's contents at one revision."""

    revision: int
    compact_revision: int
    kvs: list[KeyValue]
    history: list[HistoryEntry]


_KV_HEAD = struct.Struct("<IIqqq")
_HASH_MOD = 1 << 128


def _kv_digest(kv: KeyValue) -> int:
    digest = hashlib.blake2b(_KV_HEAD.pack(len(kv.key), len(kv.value), kv.create_revision,
                                           kv.mod_revision, kv.version), digest_size=16)
    digest.update(kv.key)
    digest.update(kv.value)
    return int.from_bytes(digest.digest(), "little")


def _pack_kvs(kvs: list[KeyValue]) -> bytes:
    pack = _KV_HEAD.pack
    parts: list[bytes] = []
    for kv in kvs:
        parts.append(pack(len(kv.key), len(kv.value), kv.create_revision, kv.mod_revision,
                          kv.version))
        parts.append(kv.key)
        parts.append(kv.value)
    return b"".join(parts)


def _unpack_kvs(blob: bytes) -> list[KeyValue]:
    view = memoryview(blob)
    out: list[KeyValue] = []
    pos = 0
    size = _KV_HEAD.size
    while pos < len(view):
        klen, vlen, create, mod, version = _KV_HEAD.unpack_from(view, pos)
        pos += size
        key = bytes(view[pos:pos + klen])
        value = bytes(view[pos + klen:pos + klen + vlen])
        if len(value) != vlen:
            raise ValueError("snapshot: truncated key-value data")
        pos += klen + vlen
        out.append(KeyValue(key, value, create, mod, version))
    return out


def encode_capture(cap: StateCapture) -> bytes:
    """Deterministic encoding of a capture (the `state` field of a snapshot file)."""
    return codec.encode({
        "revision": cap.revision,
        "compact_revision": cap.compact_revision,
        "kvs": _pack_kvs(cap.kvs),
        "history": _pack_history(cap.history),
    })


_ENTRY_HEAD = struct.Struct("<qI")
_EVENT_HEAD = struct.Struct("<BB")


def _pack_history(history: list[HistoryEntry]) -> bytes:
    parts: list[bytes] = []
    for entry in history:
        parts.append(_ENTRY_HEAD.pack(entry.revision, len(entry.events)))
        for event in entry.events:
            has_prev = event.prev_kv is not None
            parts.append(_EVENT_HEAD.pack(event.type is EventType.PUT, has_prev))
            parts.append(_pack_kvs([event.kv, event.prev_kv] if has_prev else [event.kv]))
    return b"".join(parts)


def _unpack_history(blob: bytes) -> list[HistoryEntry]:
    view = memoryview(blob)
    pos = 0
    out: list[HistoryEntry] = []

    def read_kv() -> KeyValue:
        nonlocal pos
        klen, vlen, create, mod, version = _KV_HEAD.unpack_from(view, pos)
        pos += _KV_HEAD.size
        key = bytes(view[pos:pos + klen])
        value = bytes(view[pos + klen:pos + klen + vlen])
        pos += klen + vlen
        return KeyValue(key, value, create, mod, version)

    while pos < len(view):
        revision, count = _ENTRY_HEAD.unpack_from(view, pos)
        pos += _ENTRY_HEAD.size
        events = []
        for _ in range(count):
            is_put, has_prev = _EVENT_HEAD.unpack_from(view, pos)
            pos += _EVENT_HEAD.size
            kv = read_kv()
            prev = read_kv() if has_prev else None
            events.append(WatchEvent(EventType.PUT if is_put else EventType.DELETE, kv, prev))
        out.append(HistoryEntry(revision, tuple(events)))
    return out


APPLY_TABLE: dict[str, Callable[[KVState, dict[str, Any]], Any]] = {
    "txn": KVState._apply_txn,
    "barrier": KVState._apply_barrier,
    "compact": KVState._apply_compact,
}
