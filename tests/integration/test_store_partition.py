"""A partitioned leader steps down before the majority elects a new leader, and never
serves a stale linearizable read or acknowledges a write while cut off."""

from __future__ import annotations

import time

import grpc
import pytest

from raftkube.api.v1 import kv_pb2
from raftkube.testing.store_cluster import StoreCluster
from tests.integration.store_helpers import get, put

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", [3, 5])
def test_partitioned_leader_steps_down_first_and_serves_nothing_stale(size: int) -> None:
    with StoreCluster(size) as cluster:
        put(cluster, 0, b"/x", b"old")
        victim = cluster.lowest_address_index()  # every peer dials it: a full cut by port
        leader = cluster.leader_index()
        if leader != victim:
            cluster.maintenance(leader).TransferLeadership(
                kv_pb2.StoreTransferRequest(to=cluster.members[victim].raft_address),
                metadata=cluster.admin_metadata, timeout=10)
        assert cluster.leader_index() == victim
        others = [i for i in range(size) if i != victim]

        cluster.partition(victim)
        cut = time.monotonic()
        stepped_down = new_leader = None
        while time.monotonic() - cut < 10 and (stepped_down is None or new_leader is None):
            if stepped_down is None and not cluster.status(victim).is_leader:
                stepped_down = time.monotonic() - cut
            if new_leader is None:
                for i in others:
                    if cluster.status(i).is_leader:
                        new_leader = time.monotonic() - cut
            time.sleep(0.01)
        assert stepped_down is not None and new_leader is not None
        assert stepped_down < new_leader, (stepped_down, new_leader)

        put(cluster, others[0], b"/x", b"new")
        with pytest.raises(grpc.RpcError) as read:
            get(cluster, victim, b"/x", timeout=3)  # linearizable
        assert read.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED,
                                     grpc.StatusCode.UNAVAILABLE)
        with pytest.raises(grpc.RpcError) as write:
            cluster.kv(victim).Put(kv_pb2.StorePutRequest(key=b"/y", value=b"lost?",
                                                          timeout_seconds=1.0), timeout=3)
        assert write.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # unknown outcome
        assert get(cluster, victim, b"/x", serializable=True) == b"old"  # local, may be stale

        cluster.heal()
        deadline = time.monotonic() + 20
        while True:
            try:
                assert get(cluster, victim, b"/x", timeout=3) == b"new"
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
        cluster.wait_converged(timeout=30)
