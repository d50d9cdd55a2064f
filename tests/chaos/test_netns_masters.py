"""NetnsMasterCluster: masters in their own namespaces, reachable from the test, really cut
off by a partition, and nothing left behind after close."""

from __future__ import annotations

import subprocess
import time

import pytest

from raftkube.testing.chaos.cluster_faults import cluster_faults
from raftkube.testing.master_hooks import master_cluster_hooks
from raftkube.testing.netns_masters import NetnsMasterCluster

pytestmark = [pytest.mark.slow, pytest.mark.netns]


def test_partitioned_leader_is_replaced_and_everything_is_removed(netns_root: None) -> None:
    cluster = NetnsMasterCluster(3)
    try:
        cluster.start()
        hosts = cluster.hosts()
        assert len({h.netns for h in hosts.values()}) == 3
        assert [h.addresses[0] for h in hosts.values()] == [
            m.api_address.rsplit(":", 1)[0] for m in cluster.members]
        hooks = master_cluster_hooks(cluster)
        old = hooks.leader()
        assert old is not None
        partition = cluster_faults(hooks, ["partition-leader"])["partition-leader"](None)
        partition.start()
        try:
            deadline = time.monotonic() + 60
            new = None
            while time.monotonic() < deadline:
                new = cluster.members[cluster.leader_index(timeout=60)].name
                if new != old:
                    break
                time.sleep(0.5)
            assert new != old, "the isolated leader was never replaced"
        finally:
            partition.stop()
        for index in range(3):
            cluster.wait_serving(index, timeout=60)
    finally:
        cluster.close()
    names = [cluster.netns.prefix, cluster.netns.bridge]
    listing = (subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
               + subprocess.run(["ip", "link"], capture_output=True, text=True).stdout)
    assert not [n for n in names if n in listing], listing
    assert not cluster.root.exists()
    assert all(m.process is None for m in cluster.members)
