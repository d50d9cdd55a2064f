"""Pytest fixtures for multi-host tests on network namespaces, torn down even on failure.

Use from any conftest.py: import `make_netns_cluster` and `netns_cluster` from here and
list them in `__all__` (see tests/network/conftest.py). Tests skip when not root; missing
tools fail loudly. Runs left behind by killed test processes are reaped first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from raftkube.testing.netns import (
    NetnsCluster,
    NetnsConfig,
    reap_orphaned_runs,
    require_netns_tools,
)


def _require_root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    missing = require_netns_tools()
    if missing:
        pytest.fail(f"tools missing for netns tests: {', '.join(missing)}")


@pytest.fixture
def make_netns_cluster() -> Iterator[Callable[..., NetnsCluster]]:
    """Factory: make_netns_cluster(hosts=3) -> a set-up NetnsCluster, torn down after."""
    _require_root_and_tools()
    reap_orphaned_runs()
    made: list[NetnsCluster] = []

    def make(**kwargs: object) -> NetnsCluster:
        cluster = NetnsCluster(NetnsConfig(**kwargs))  # type: ignore[arg-type]
        made.append(cluster)
        return cluster.setup()

    try:
        yield make
    finally:
        for cluster in made:
            cluster.teardown()


@pytest.fixture
def netns_cluster(make_netns_cluster: Callable[..., NetnsCluster]) -> NetnsCluster:
    """Three hosts, each with a pod bridge."""
    return make_netns_cluster(hosts=3)
