"""The replicated state machine: an etcd-style revisioned key-value map.

`KVState` knows nothing about Raft. Commands are codec-encoded dicts with an "op" field;
`apply` dispatches through `APPLY_TABLE`, one small function per command. Apply is
deterministic: it reads only the command and the current state (no clock, no random).

Thread safety: the Raft thread calls `apply`; readers call the read methods. All of them
take `self.cond` (a Condition, also used to wake watchers after each apply).
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

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


def _kv_to_list(kv: KeyValue) -> list[Any]:
    return [kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version]


def _kv_from_list(raw: list[Any]) -> KeyValue:
    return KeyValue(raw[0], raw[1], raw[2], raw[3], raw[4])


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
        self.generation = 0  # bumped when the state is replaced by a snapshot

    # ---- apply ----

    def apply(self, command: bytes) -> Any:
        """Apply one encoded command; returns its result (TxnResult for txns)."""
        decoded = codec.decode(command)
        handler = APPLY_TABLE.get(decoded.get("op")) if isinstance(decoded, dict) else None
        if handler is None:
            raise ValueError(f"unknown command {decoded!r:.80}")
        with self.cond:
            result = handler(self, decoded)
            self.cond.notify_all()
        return result

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
        """Keys in the range, sorted; `limit` 0 = no limit."""
        with self.cond:
            return self._range_locked(key, range_end, limit)

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
        with self.cond:
            if start_revision <= self.compact_revision:
                raise CompactedError(start_revision, self.oldest_revision)
            if not self._history or start_revision > self.revision:
                return [], max(start_revision, self.revision + 1)
            first = self._history[0].revision
            index = max(0, start_revision - first)
            chunk = self._history[index:index + max_revisions]
            matched = []
            for entry in chunk:
                events = tuple(e for e in entry.events if in_range(e.kv.key, key, range_end))
                if events:
                    matched.append(HistoryEntry(entry.revision, events))
            next_rev = chunk[-1].revision + 1 if chunk else start_revision
            return matched, next_rev

    def state_hash(self) -> tuple[int, str]:
        """(revision, sha256 of revision + every key-value) - equal on all replicas at
        equal revisions."""
        with self.cond:
            digest = hashlib.sha256(str(self.revision).encode())
            for key in self._keys:
                kv = self._kv[key]
                digest.update(codec.encode(_kv_to_list(kv)))
            return self.revision, digest.hexdigest()

    # ---- snapshot ----

    def to_snapshot(self) -> bytes:
        """Encode the full state (keys and kept history) deterministically."""
        with self.cond:
            return codec.encode({
                "revision": self.revision,
                "compact_revision": self.compact_revision,
                "kvs": [_kv_to_list(self._kv[k]) for k in self._keys],
                "history": [[h.revision, [_event_to_list(e) for e in h.events]]
                            for h in self._history],
            })

    @staticmethod
    def revision_of_snapshot(data: bytes) -> int:
        """The revision recorded in a `to_snapshot` blob."""
        return int(codec.decode(data)["revision"])

    def load_snapshot(self, data: bytes) -> None:
        """Replace the whole state with a snapshot from `to_snapshot`."""
        raw = codec.decode(data)
        kvs = [_kv_from_list(item) for item in raw["kvs"]]
        history = [HistoryEntry(rev, tuple(_event_from_list(e) for e in events))
                   for rev, events in raw["history"]]
        with self.cond:
            self._kv = {kv.key: kv for kv in kvs}
            self._keys = sorted(self._kv)
            self.revision = raw["revision"]
            self.compact_revision = raw["compact_revision"]
            self._history = history
            self.generation += 1
            self.cond.notify_all()


def _event_to_list(event: WatchEvent) -> list[Any]:
    return [event.type.value, _kv_to_list(event.kv),
            _kv_to_list(event.prev_kv) if event.prev_kv else None]


def _event_from_list(raw: list[Any]) -> WatchEvent:
    return WatchEvent(EventType(raw[0]), _kv_from_list(raw[1]),
                      _kv_from_list(raw[2]) if raw[2] is not None else None)


APPLY_TABLE: dict[str, Callable[[KVState, dict[str, Any]], Any]] = {
    "txn": KVState._apply_txn,
    "barrier": KVState._apply_barrier,
    "compact": KVState._apply_compact,
}
