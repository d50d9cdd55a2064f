"""Multi-process store clusters: replication, txns, crash safety, watch resume, hashes."""

from __future__ import annotations

import time

import grpc
import pytest

from raftkube.api.v1 import kv_pb2
from raftkube.testing.store_cluster import StoreCluster
from tests.integration.store_helpers import Writer, all_keys, get, put, put_retrying

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster3():
    with StoreCluster(3) as cluster:
        yield cluster


def test_writes_replicate_and_hashes_match(cluster3: StoreCluster) -> None:
    for i in range(30):
        put(cluster3, i % 3, b"/a/%02d" % i, b"%d" % i)
    converged = cluster3.wait_converged()
    assert converged.header.revision == 30
    for i in range(3):
        assert all_keys(cluster3, i, b"/a/", serializable=True) == {
            b"/a/%02d" % n: b"%d" % n for n in range(30)}


def test_txn_compare_and_swap_over_grpc(cluster3: StoreCluster) -> None:
    kv = cluster3.kv(1)
    create = kv_pb2.StoreTxnRequest(
        compare=[kv_pb2.StoreCompare(key=b"/cas", target=kv_pb2.StoreCompare.CREATE,
                                     result=kv_pb2.StoreCompare.EQUAL, number=0)],
        success=[kv_pb2.StoreRequestOp(
            request_put=kv_pb2.StorePutRequest(key=b"/cas", value=b"1"))],
        failure=[kv_pb2.StoreRequestOp(request_range=kv_pb2.StoreRangeRequest(key=b"/cas"))])
    first = kv.Txn(create, timeout=5)
    second = cluster3.kv(2).Txn(create, timeout=5)
    assert first.succeeded and not second.succeeded
    assert second.failed_compare == 0
    assert second.responses[0].response_range.kvs[0].value == b"1"
    stale = kv_pb2.StoreTxnRequest(
        compare=[kv_pb2.StoreCompare(key=b"/cas", target=kv_pb2.StoreCompare.MOD,
                                     result=kv_pb2.StoreCompare.EQUAL, number=99)],
        success=[kv_pb2.StoreRequestOp(
            request_put=kv_pb2.StorePutRequest(key=b"/cas", value=b"2"))])
    assert not kv.Txn(stale, timeout=5).succeeded
    assert get(cluster3, 0, b"/cas") == b"1"


def test_oversized_value_rejected_with_clear_error(cluster3: StoreCluster) -> None:
    with pytest.raises(grpc.RpcError) as info:
        put(cluster3, 0, b"/big", b"x" * (1536 * 1024 + 1))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceeds the limit of 1572864 bytes" in info.value.details()
    ops = [kv_pb2.StoreRequestOp(request_put=kv_pb2.StorePutRequest(key=b"/t/%d" % i, value=b"v"))
           for i in range(300)]
    with pytest.raises(grpc.RpcError) as info:
        cluster3.kv(0).Txn(kv_pb2.StoreTxnRequest(success=ops), timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit is 256" in info.value.details()
    # a value right at the limit is fine and replicates
    put(cluster3, 0, b"/max", b"m" * (1536 * 1024), timeout=10)
    assert len(get(cluster3, 2, b"/max")) == 1536 * 1024


def test_kill9_leader_during_writes_loses_nothing_acknowledged(cluster3: StoreCluster) -> None:
    writer = Writer(cluster3, b"/w/").start()
    time.sleep(1.5)
    leader = cluster3.leader_index()
    cluster3.kill(leader)
    time.sleep(2.0)
    cluster3.restart(leader)
    time.sleep(1.0)
    writer.stop()
    assert len(writer.acked) > 50
    cluster3.wait_converged(timeout=30)
    for i in range(3):
        stored = all_keys(cluster3, i, b"/w/", serializable=True)
        missing = [k for k in writer.acked if k not in stored]
        assert not missing, f"m{i} lost acknowledged writes: {missing[:5]}"
        assert set(stored) <= set(writer.acked) | writer.unknown


def test_kill_all_and_restart_keeps_everything(cluster3: StoreCluster) -> None:
    for i in range(40):
        put(cluster3, i % 3, b"/k/%02d" % i, b"%d" % i)
    before = cluster3.wait_converged()
    for i in range(3):
        cluster3.kill(i)
    for i in range(3):
        cluster3.restart(i, wait=False)
    for i in range(3):
        cluster3.wait_serving(i)
    leader = cluster3.leader_index()
    assert len(all_keys(cluster3, leader, b"/k/")) == 40  # linearizable: after the barrier
    after = cluster3.wait_converged(timeout=30)
    assert (after.header.revision, after.state_hash) == (before.header.revision, before.state_hash)
    put_retrying(cluster3, b"/k/after", b"x")
    assert len(all_keys(cluster3, 0, b"/k/")) == 41


def test_watch_resumes_on_another_master(cluster3: StoreCluster) -> None:
    start = put(cluster3, 0, b"/watch/0", b"0").header.revision
    for i in range(1, 20):
        put(cluster3, i % 3, b"/watch/%d" % i, b"%d" % i)
    put(cluster3, 0, b"/other", b"not watched")
    seen: list[int] = []
    stream = cluster3.kv(0).Watch(kv_pb2.StoreWatchRequest(key=b"/watch/", range_end=b"/watch0",
                                                           start_revision=start), timeout=10)
    for resp in stream:
        seen.extend(e.kv.mod_revision for e in resp.events)
        if len(seen) >= 10:
            break
    stream.cancel()
    cluster3.kill(0)  # the watcher's master dies; resume elsewhere from the next revision
    stream = cluster3.kv(1).Watch(kv_pb2.StoreWatchRequest(
        key=b"/watch/", range_end=b"/watch0", start_revision=seen[-1] + 1), timeout=10)
    for resp in stream:
        seen.extend(e.kv.mod_revision for e in resp.events)
        if len(seen) >= 20:
            break
    stream.cancel()
    assert seen == list(range(start, start + 20))


def test_watch_compacted_revision_reports_oldest(cluster3: StoreCluster) -> None:
    for i in range(10):
        put(cluster3, 0, b"/c/%d" % i, b"x")
    cluster3.maintenance(1).Compact(kv_pb2.StoreCompactRequest(revision=6),
                                    metadata=cluster3.admin_metadata, timeout=5)
    stream = cluster3.kv(2).Watch(kv_pb2.StoreWatchRequest(key=b"/c/", range_end=b"/c0",
                                                           start_revision=3), timeout=10)
    first = next(iter(stream))
    assert first.canceled and first.compact_revision == 7


def test_admin_calls_need_the_token(cluster3: StoreCluster) -> None:
    with pytest.raises(grpc.RpcError) as info:
        cluster3.maintenance(0).Compact(kv_pb2.StoreCompactRequest(revision=1), timeout=5)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
