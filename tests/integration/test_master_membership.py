"""Masters join and leave a running cluster under load, and nothing acknowledged is lost:
grow 3 -> 5 and shrink back to 3 (removing the leader among others)."""

from __future__ import annotations

import threading

import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import Client
from raftkube.testing.master_cluster import MasterCluster

pytestmark = pytest.mark.slow


def test_grow_to_five_and_shrink_back_under_load() -> None:
    with MasterCluster(3) as cluster:
        acknowledged: list[str] = []
        failures: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            with Client.from_config(cluster.layout.admin_config) as client:
                n = 0
                while not stop.is_set() and n < 2000:
                    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
                    cm.metadata.name = f"load-{n}"
                    try:
                        client.create(cm)
                        acknowledged.append(cm.metadata.name)
                    except apierrors.ApiError as e:
                        failures.append(f"{cm.metadata.name}: {type(e).__name__}")
                    n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            m4 = cluster.add_master()
            m5 = cluster.add_master()
            with Client.from_config(cluster.layout.admin_config) as admin:
                status = admin.admin.cluster_status()
                assert len(status.members) == 5
                assert sorted(m.name for m in status.masters) == ["m1", "m2", "m3", "m4", "m5"]
                leader = cluster.leader_index()
                cluster.remove_master(leader)
                other = next(i for i in (m4, m5, 0, 1, 2)
                             if i != leader and cluster.members[i].alive)
                cluster.remove_master(other)
                status = admin.admin.cluster_status()
                assert len(status.members) == 3
        finally:
            stop.set()
            thread.join(60)
        survivors = cluster.alive_indexes()
        assert len(survivors) == 3
        with Client.from_config(cluster.layout.admin_config) as client:
            stored = {o.metadata.name for o in client.configmaps.list()}
        assert len(acknowledged) > 50, (len(acknowledged), failures[:5])
        missing = [name for name in acknowledged if name not in stored]
        assert missing == [], f"acknowledged creates lost: {missing[:10]}"
