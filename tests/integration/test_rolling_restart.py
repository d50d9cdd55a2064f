"""A rolling upgrade of the masters (each stopped and started again in turn) causes no
failed request for an SDK client and loses nothing."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import Client
from raftkube.testing.master_cluster import MasterCluster

pytestmark = pytest.mark.slow


def test_rolling_restart_of_every_master_keeps_serving() -> None:
    with MasterCluster(3) as cluster:
        acknowledged: list[str] = []
        failed: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            with Client.from_config(cluster.layout.admin_config) as client:
                n = 0
                while not stop.is_set() and n < 3000:
                    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
                    cm.metadata.name = f"rolling-{n}"
                    try:
                        client.create(cm)
                        acknowledged.append(cm.metadata.name)
                    except apierrors.ApiError as e:
                        failed.append(f"{cm.metadata.name}: {type(e).__name__}: {e.message}")
                    n += 1
                    time.sleep(0.005)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for index in range(3):
                cluster.kill(index, signal.SIGTERM)  # a clean stop, as an upgrade does
                time.sleep(0.5)
                cluster.restart(index)
        finally:
            stop.set()
            thread.join(60)
        assert failed == [], failed[:5]
        with Client.from_config(cluster.layout.admin_config) as client:
            stored = {o.metadata.name for o in client.configmaps.list()}
        assert len(acknowledged) > 100
        assert [n for n in acknowledged if n not in stored] == []
