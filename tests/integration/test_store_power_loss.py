"""Durability under power loss: journal bytes never fsynced are discarded on every
replica after kill -9 of the whole cluster. Nothing acknowledged may be lost.

The control run disables fsync and shows the same check does detect loss, so the test
can fail."""

from __future__ import annotations

import time

import pytest

from raftkube.testing.store_cluster import StoreCluster
from tests.integration.store_helpers import Writer, all_keys

pytestmark = pytest.mark.slow


def _crash_with_power_loss(cluster: StoreCluster) -> int:
    writer = Writer(cluster, b"/p/").start()
    time.sleep(2.0)
    for i in range(len(cluster.members)):  # power cut while writes are in flight
        cluster.kill(i)
    writer.stop()
    dropped = sum(cluster.power_loss(i) for i in range(len(cluster.members)))
    for i in range(len(cluster.members)):
        cluster.restart(i, wait=False)
    for i in range(len(cluster.members)):
        cluster.wait_serving(i)
    cluster.leader_index(timeout=20)
    stored = all_keys(cluster, cluster.leader_index(), b"/p/")
    cluster.dropped_bytes = dropped  # type: ignore[attr-defined]
    assert len(writer.acked) > 20
    return sum(1 for k in writer.acked if k not in stored)


def test_power_loss_loses_nothing_acknowledged() -> None:
    with StoreCluster(3, store_overrides={"fsync_audit": True}) as cluster:
        lost = _crash_with_power_loss(cluster)
        assert lost == 0
        cluster.wait_converged(timeout=30)


def test_control_without_fsync_the_check_detects_loss() -> None:
    with StoreCluster(3, store_overrides={"fsync_audit": True, "fsync": False}) as cluster:
        lost = _crash_with_power_loss(cluster)
        assert lost > 0
