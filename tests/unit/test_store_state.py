"""KVState: the deterministic state machine (txn semantics, ranges, history, snapshot)."""

from __future__ import annotations

import pytest

from raftkube.consensus import codec
from raftkube.consensus.errors import CompactedError
from raftkube.consensus.model import Compare, EventType, Op
from raftkube.consensus.state import (
    ALL_KEYS_END,
    KVState,
    encode_barrier,
    encode_compact,
    encode_txn,
    prefix_end,
)


def txn(state: KVState, compares=(), success=(), failure=()):
    return state.apply(encode_txn(compares, success, failure))


def test_put_sets_revisions_and_versions() -> None:
    s = KVState()
    r1 = txn(s, success=[Op.put(b"/a", b"1")])
    r2 = txn(s, success=[Op.put(b"/a", b"2")])
    assert (r1.revision, r2.revision) == (1, 2)
    kv = s.range(b"/a").kvs[0]
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"2", 1, 2, 2)
    assert r2.results[0].prev_kvs[0].value == b"1"


def test_txn_compare_absent_and_mod_revision() -> None:
    s = KVState()
    created = txn(s, [Compare.absent(b"/k")], [Op.put(b"/k", b"v")])
    assert created.succeeded and created.failed_compare is None
    again = txn(s, [Compare.absent(b"/k")], [Op.put(b"/k", b"w")], [Op.range(b"/k")])
    assert not again.succeeded and again.failed_compare == 0
    assert again.results[0].kvs[0].value == b"v"
    assert again.revision == 1  # failure branch without writes does not bump the revision
    stale = txn(s, [Compare.exists(b"/k"), Compare.mod_revision(b"/k", 7)], [Op.put(b"/k", b"x")])
    assert stale.failed_compare == 1
    ok = txn(s, [Compare.mod_revision(b"/k", 1)], [Op.put(b"/k", b"x")])
    assert ok.succeeded and s.range(b"/k").kvs[0].value == b"x"


def test_txn_is_atomic_one_revision_for_all_ops() -> None:
    s = KVState()
    r = txn(s, success=[Op.put(b"/a", b"1"), Op.put(b"/b", b"2"), Op.delete(b"/zz")])
    assert r.revision == 1
    assert {kv.mod_revision for kv in s.range(b"/", ALL_KEYS_END).kvs} == {1}


def test_delete_range_and_prefix() -> None:
    s = KVState()
    for k in (b"/p/1", b"/p/2", b"/q/1"):
        txn(s, success=[Op.put(k, b"v")])
    r = txn(s, success=[Op.delete(b"/p/", prefix_end(b"/p/"))])
    assert r.results[0].deleted == 2
    assert [kv.key for kv in s.range(b"/", ALL_KEYS_END).kvs] == [b"/q/1"]
    # recreating a deleted key restarts version and create_revision
    txn(s, success=[Op.put(b"/p/1", b"again")])
    kv = s.range(b"/p/1").kvs[0]
    assert kv.version == 1 and kv.create_revision == s.revision


def test_range_limit_count_and_continuation() -> None:
    s = KVState()
    for i in range(10):
        txn(s, success=[Op.put(b"/r/%02d" % i, b"v")])
    first = s.range(b"/r/", prefix_end(b"/r/"), limit=4)
    assert first.more and first.count == 10 and len(first.kvs) == 4
    rest = s.range(first.kvs[-1].key + b"\0", prefix_end(b"/r/"))
    assert [kv.key for kv in first.kvs + rest.kvs] == [b"/r/%02d" % i for i in range(10)]
    assert not rest.more


def test_history_watch_events_and_compaction() -> None:
    s = KVState(history_max_revisions=20)
    for i in range(100):
        txn(s, success=[Op.put(b"/w/%d" % (i % 3), b"%d" % i)])
    assert s.compact_revision > 0
    with pytest.raises(CompactedError) as info:
        s.history_since(1, b"/w/0", None)
    assert info.value.oldest_revision == s.compact_revision + 1
    entries, nxt = s.history_since(s.oldest_revision, b"/w/0", None)
    assert all(e.events[0].kv.key == b"/w/0" for e in entries)
    assert nxt == s.revision + 1
    s.apply(encode_compact(95))
    with pytest.raises(CompactedError):
        s.history_since(95, b"/", ALL_KEYS_END)
    entries, _ = s.history_since(96, b"/", ALL_KEYS_END)
    assert [e.revision for e in entries] == [96, 97, 98, 99, 100]
    assert entries[0].events[0].prev_kv is not None


def test_delete_event_carries_prev_kv() -> None:
    s = KVState()
    txn(s, success=[Op.put(b"/d", b"v")])
    txn(s, success=[Op.delete(b"/d")])
    entries, _ = s.history_since(2, b"/d", None)
    event = entries[0].events[0]
    assert event.type is EventType.DELETE and event.prev_kv.value == b"v"
    assert event.kv.mod_revision == 2


def test_barrier_changes_nothing() -> None:
    s = KVState()
    txn(s, success=[Op.put(b"/a", b"1")])
    before = s.state_hash()
    assert s.apply(encode_barrier(b"n")) == 1
    assert s.state_hash() == before


def test_snapshot_roundtrip_keeps_hash_and_history() -> None:
    s = KVState()
    for i in range(50):
        txn(s, success=[Op.put(b"/s/%d" % i, b"x" * i)])
    txn(s, success=[Op.delete(b"/s/1")])
    copy = KVState()
    copy.load_snapshot(s.to_snapshot())
    assert copy.state_hash() == s.state_hash()
    assert copy.history_since(40, b"/", ALL_KEYS_END) == s.history_since(40, b"/", ALL_KEYS_END)
    txn(copy, success=[Op.put(b"/s/x", b"1")])
    txn(s, success=[Op.put(b"/s/x", b"1")])
    assert copy.state_hash() == s.state_hash()


def test_hash_differs_when_state_differs() -> None:
    a, b = KVState(), KVState()
    txn(a, success=[Op.put(b"/k", b"1")])
    txn(b, success=[Op.put(b"/k", b"2")])
    assert a.state_hash()[0] == b.state_hash()[0]
    assert a.state_hash()[1] != b.state_hash()[1]


def test_unknown_command_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown command"):
        KVState().apply(codec.encode({"op": "format-disk"}))


def test_codec_roundtrip_and_rejects_garbage() -> None:
    value = {"a": [1, -2, b"\x00\xff", "s", None, True, False, {"n": []}]}
    assert codec.decode(codec.encode(value)) == value
    with pytest.raises(ValueError):
        codec.decode(b"\x99")
    with pytest.raises(ValueError):
        codec.decode(codec.encode(b"abc")[:-1])
    with pytest.raises(TypeError):
        codec.encode(object())


def test_reads_during_applies_never_see_half_a_transaction() -> None:
    """Reads run without the state lock (sequence lock); a read racing an apply must still
    see each transaction whole: every key of a 20-key transaction at the same value."""
    import threading
    import time

    state = KVState()
    keys = [b"/t/%02d" % i for i in range(20)]
    stop = threading.Event()
    seen: list[int] = []
    torn: list[list[bytes]] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            state.apply(encode_txn((), [Op.put(k, b"%d" % n) for k in keys], ()))

    def reader() -> None:
        while not stop.is_set():
            result = state.range(b"/t/", b"/t0")
            values = [kv.value for kv in result.kvs]
            if len(set(values)) > 1:
                torn.append(values)
            seen.append(result.revision)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader)
                                                   for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert not torn, f"a read saw a transaction half applied: {torn[0]}"
    assert len(seen) > 100 and state.revision > 100


def test_a_watcher_is_woken_by_an_apply_not_by_its_timeout() -> None:
    import threading
    import time

    from raftkube.consensus.watch import Watch

    state = KVState()
    watch = Watch(state, b"/w/", b"/w0", 0, threading.Event())
    got: list[float] = []

    def wait() -> None:
        batch = watch.next_batch(timeout=5)
        got.append(time.monotonic())
        assert batch is not None and batch[0].kv.key == b"/w/a"

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    applied = time.monotonic()
    state.apply(encode_txn((), [Op.put(b"/w/a", b"1")], ()))
    waiter.join(5)
    assert got and got[0] - applied < 0.3, "woken late: waited for the 0.5 s poll"
    watch.cancel()
