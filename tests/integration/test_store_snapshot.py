"""Log compaction (own snapshot format), snapshot install on a lagging follower,
backup/restore into a new cluster, and force-new-cluster after permanent quorum loss."""

from __future__ import annotations

import os
import time

import grpc
import pytest

from raftkube.api.v1 import kv_pb2
from raftkube.consensus.errors import SnapshotError
from raftkube.consensus.snapshot_file import SNAPSHOT_FILE, bootstrap_from_snapshot, read_snapshot
from raftkube.testing.store_cluster import StoreCluster
from tests.integration.store_helpers import all_keys, put_retrying

pytestmark = pytest.mark.slow

SMALL_LOG = {"snapshot_every_entries": 60}


def test_compaction_and_snapshot_install_on_lagging_follower() -> None:
    with StoreCluster(3, store_overrides=SMALL_LOG) as cluster:
        for i in range(20):
            put_retrying(cluster, b"/s/%03d" % i, b"x")
        cluster.kill(2)  # falls behind the compaction point
        for i in range(20, 300):
            put_retrying(cluster, b"/s/%03d" % i, b"y" * 100)
        leader = cluster.leader_index()
        assert cluster.status(leader).journal_entries < 200  # the log was compacted
        snap = read_snapshot(os.path.join(cluster.members[leader].data_dir, SNAPSHOT_FILE))
        assert snap.index > 100
        cluster.restart(2)
        converged = cluster.wait_converged(timeout=40)
        assert converged.header.revision == 300
        assert len(all_keys(cluster, 2, b"/s/", serializable=True)) == 300
        # restart of everyone from snapshot + journal
        for i in range(3):
            cluster.kill(i)
        for i in range(3):
            cluster.restart(i)
        assert cluster.wait_converged(timeout=40).state_hash == converged.state_hash


def test_backup_restore_into_a_new_cluster(tmp_path) -> None:
    backup = tmp_path / "backup.snap"
    with StoreCluster(3) as cluster:
        for i in range(50):
            put_retrying(cluster, b"/b/%02d" % i, b"%d" % i)
        source = cluster.wait_converged()
        chunks = cluster.maintenance(1).Snapshot(kv_pb2.StoreSnapshotRequest(),
                                                 metadata=cluster.admin_metadata, timeout=30)
        with open(backup, "wb") as f:
            for chunk in chunks:
                f.write(chunk.data)
                if chunk.last:
                    assert chunk.revision == 50 and chunk.total_size == backup.stat().st_size
    corrupt = tmp_path / "corrupt.snap"
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        read_snapshot(str(corrupt))

    with StoreCluster(3, start=False) as restored:
        addresses = [m.raft_address for m in restored.members]
        for member in restored.members:
            bootstrap_from_snapshot(str(backup), member.data_dir, addresses)
        restored.start()
        status = restored.wait_converged(timeout=30)
        assert status.state_hash == source.state_hash
        assert all_keys(restored, 0, b"/b/") == {b"/b/%02d" % i: b"%d" % i for i in range(50)}
        put_retrying(restored, b"/b/new", b"1")


def test_force_new_cluster_after_quorum_loss() -> None:
    with StoreCluster(3) as cluster:
        for i in range(30):
            put_retrying(cluster, b"/f/%02d" % i, b"v")
        cluster.wait_converged()
        survivor = 0
        for i in (1, 2):
            cluster.kill(i)  # gone for good
        cluster.kill(survivor)
        cluster.restart(survivor, extra_args=["--force-new-cluster"])
        put_retrying(cluster, b"/f/after", b"1")
        assert len(all_keys(cluster, survivor, b"/f/")) == 31
        status = cluster.status(survivor)
        assert [m.address for m in status.members] == [cluster.members[survivor].raft_address]
        assert "FORCE NEW CLUSTER" in cluster.log_tail(survivor, 400)
        new = cluster.add_member(via=survivor)  # grow back
        cluster.wait_converged(timeout=30, among=[survivor, new])


def test_writes_continue_while_a_large_state_is_snapshotted() -> None:
    """Snapshots are encoded off the Raft thread: 30k keys snapshotted again and again
    while large transactions keep committing, and every replica ends identical."""
    with StoreCluster(3, store_overrides={"snapshot_every_entries": 40}) as cluster:
        value = b"p" * 300
        started = time.monotonic()
        for batch in range(300):
            ops = [kv_pb2.StoreRequestOp(request_put=kv_pb2.StorePutRequest(
                key=b"/big/%03d/%03d" % (batch, i), value=value)) for i in range(100)]
            put_txn_retrying(cluster, kv_pb2.StoreTxnRequest(success=ops))
        elapsed = time.monotonic() - started
        leader = cluster.leader_index()
        assert cluster.status(leader).journal_entries < 200
        snap = read_snapshot(os.path.join(cluster.members[leader].data_dir, SNAPSHOT_FILE))
        assert snap.index > 150
        converged = cluster.wait_converged(timeout=60)
        assert converged.header.revision >= 300  # a retried txn may apply twice
        assert elapsed < 120


def put_txn_retrying(cluster: StoreCluster, request: kv_pb2.StoreTxnRequest) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            cluster.kv(cluster.leader_index()).Txn(request, timeout=10)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
