"""Membership changes at run time, under load; restarts use the membership in the log."""

from __future__ import annotations

import time

import pytest

from raftkube.testing.store_cluster import StoreCluster
from tests.integration.store_helpers import Writer, all_keys, put_retrying

pytestmark = pytest.mark.slow


def _members(cluster: StoreCluster, index: int) -> set[str]:
    return {m.address for m in cluster.status(index).members}


def test_add_and_remove_members_under_load_including_the_leader() -> None:
    with StoreCluster(3) as cluster:
        writer = Writer(cluster, b"/m/").start()
        time.sleep(0.5)
        new = cluster.add_member()
        target = cluster.status(cluster.leader_index()).header.revision
        deadline = time.monotonic() + 30
        while cluster.status(new).header.revision < target:  # the new member catches up
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert len(_members(cluster, new)) == 4
        follower = next(i for i in cluster.alive_indexes() if i != cluster.leader_index())
        cluster.remove_member(follower)
        time.sleep(0.5)
        leader = cluster.leader_index()
        cluster.remove_member(leader)  # transfers leadership first
        time.sleep(0.5)
        writer.stop()
        alive = cluster.alive_indexes()
        assert len(alive) == 2
        expected = {cluster.members[i].raft_address for i in alive}
        for i in alive:
            assert _members(cluster, i) == expected
        new_leader = cluster.leader_index()
        assert new_leader in alive
        put_retrying(cluster, b"/m/final", b"x")
        cluster.wait_converged(timeout=30)
        stored = all_keys(cluster, new_leader, b"/m/")
        assert not [k for k in writer.acked if k not in stored]


def test_restart_uses_membership_from_log_not_stale_config() -> None:
    with StoreCluster(3) as cluster:
        put_retrying(cluster, b"/a", b"1")
        added = cluster.add_member()
        removed = next(i for i in (0, 1, 2) if i != cluster.leader_index())
        cluster.remove_member(removed)
        survivor = next(i for i in (0, 1, 2) if i not in (removed,))
        # survivor's config file still lists the removed member and not the added one
        cluster.kill(survivor)
        cluster.restart(survivor)
        expected = {cluster.members[i].raft_address for i in cluster.alive_indexes()}
        assert cluster.members[added].raft_address in expected
        deadline = time.monotonic() + 10
        while _members(cluster, survivor) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _members(cluster, survivor) == expected
        put_retrying(cluster, b"/b", b"2")
        cluster.wait_converged(timeout=30)
