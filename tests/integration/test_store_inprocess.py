"""The Store API with three replicas in this process (real sockets on 127.0.0.x):
leadership listeners, typed errors, read-barrier sharing, watches."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from raftkube.consensus.config import StoreConfig
from raftkube.consensus.errors import (
    CompactedError,
    ConfigError,
    NoQuorumError,
    StoreClosedError,
    StoreError,
    TxnTooLargeError,
    UnknownOutcomeError,
    ValueTooLargeError,
)
from raftkube.consensus.model import Compare, EventType, Op
from raftkube.consensus.store import Store
from raftkube.testing.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def stores(tmp_path):
    subnet = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
    addrs = [f"{subnet}.{i}:{free_port(f'{subnet}.{i}')}" for i in (1, 2, 3)]
    secret = secrets.token_bytes(16)
    replicas = [Store(StoreConfig(raft_address=a, data_dir=str(tmp_path / f"n{i}"),
                                  cluster_secret=secret, cluster_name="inproc",
                                  peers=[p for p in addrs if p != a], history_max_revisions=50))
                for i, a in enumerate(addrs)]
    events: dict[int, list[tuple[bool, int]]] = {i: [] for i in range(3)}
    for i, s in enumerate(replicas):
        s.add_leadership_listener(lambda is_leader, term, i=i: events[i].append((is_leader, term)))
        s.start()
    replicas[0].wait_for_leader()
    try:
        yield replicas, events
    finally:
        for s in replicas:
            s.stop()


def _leader(replicas: list[Store]) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for i, s in enumerate(replicas):
            if s.is_leader():
                return i
        time.sleep(0.02)
    raise AssertionError("no leader")


def test_leadership_listener_sees_gain_and_loss(stores) -> None:
    replicas, events = stores
    first = _leader(replicas)
    time.sleep(0.2)
    assert events[first] and events[first][-1][0] is True
    new = replicas[first].transfer_leadership()
    deadline = time.monotonic() + 5
    while (not events[first] or events[first][-1][0]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert events[first][-1][0] is False
    second = next(i for i, s in enumerate(replicas) if s.config.raft_address == new)
    while (not events[second] or not events[second][-1][0]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert events[second][-1] == (True, events[second][-1][1])
    assert events[second][-1][1] > events[first][0][1]  # a later term


def test_typed_errors(stores) -> None:
    replicas, _ = stores
    s = replicas[1]
    with pytest.raises(ValueTooLargeError, match="exceeds the limit"):
        s.put(b"/v", b"x" * (s.config.max_value_bytes + 1))
    with pytest.raises(TxnTooLargeError):
        s.txn([], [Op.put(b"/t/%d" % i, b"") for i in range(s.config.max_txn_ops + 1)])
    for i in range(80):
        s.put(b"/h/%d" % i, b"v")
    with pytest.raises(CompactedError) as info:
        s.watch(b"/h/", b"/h0", start_revision=1)
    assert info.value.oldest_revision > 1
    # lose the quorum: writes have an unknown outcome, linearizable reads fail, local reads work
    leader = _leader(replicas)
    survivor = replicas[leader]
    for i, other in enumerate(replicas):
        if i != leader:
            other.stop()
    with pytest.raises(UnknownOutcomeError):
        survivor.put(b"/q", b"1", timeout=1.5)
    with pytest.raises(NoQuorumError):
        survivor.range(b"/h/1", linearizable=True, timeout=1.0)
    assert survivor.range(b"/h/1").kvs[0].value == b"v"
    survivor.stop()
    with pytest.raises(StoreClosedError):
        survivor.put(b"/x", b"1")


def test_concurrent_linearizable_reads_share_barriers(stores) -> None:
    replicas, _ = stores
    follower = next(s for s in replicas if not s.is_leader())
    follower.put(b"/r", b"1")
    before = follower.status().commit_index
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        len(follower.range(b"/r", linearizable=True).kvs))) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 40
    barriers = follower.status().commit_index - before
    assert 1 <= barriers < 40


def test_watch_delivers_txn_events_in_order_and_cancels(stores) -> None:
    replicas, _ = stores
    s = replicas[2]
    watch = s.watch(b"/w/", b"/w0")
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(e for batch in watch for e in batch))
    reader.start()
    s.txn([Compare.absent(b"/w/a")], [Op.put(b"/w/a", b"1"), Op.put(b"/w/b", b"2")])
    replicas[0].delete(b"/w/a")
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    watch.cancel()
    reader.join(5)
    assert [(e.type, e.kv.key) for e in got] == [
        (EventType.PUT, b"/w/a"), (EventType.PUT, b"/w/b"), (EventType.DELETE, b"/w/a")]
    assert got[0].kv.mod_revision == got[1].kv.mod_revision < got[2].kv.mod_revision


def test_start_refuses_without_secret_and_on_taken_port(tmp_path, stores) -> None:
    replicas, _ = stores
    with pytest.raises(ConfigError, match="cluster_secret"):
        Store(StoreConfig(raft_address="127.0.0.1:1", data_dir=str(tmp_path / "x"))).start()
    taken = replicas[0].config.raft_address
    clash = Store(StoreConfig(raft_address=taken, data_dir=str(tmp_path / "y"),
                              cluster_secret=b"k", peers=[]))
    with pytest.raises(StoreError, match="cannot bind"):
        clash.start()
