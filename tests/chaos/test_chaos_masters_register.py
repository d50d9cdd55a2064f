"""Register chaos on real masters, each in its own network namespace (partitions are real).

Clients in the test's (root) namespace do get / put / cas on a few keys through the KV API
of a random master per operation, each call bounded by a 2 s deadline (a call caught by a
partition ends as an unknown outcome); meanwhile `cluster_faults()` partitions, kills and
pauses masters. Checked after healing: the history is linearizable; watchers on every
master saw the keys' revisions in order, without gaps or duplicates (versus the events
streamed at the end); all masters have the same state hash at the same revision.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from raftkube.testing.chaos.linearizability import checker as linearizability_checker
from raftkube.testing.chaos.runner import RunConfig
from raftkube.testing.chaos.workloads import RegisterWorkload
from raftkube.testing.netns_masters import NetnsMasterCluster
from tests.chaos.master_divergence import divergence_checker
from tests.chaos.master_register_client import KEY_PREFIX, RegisterClient
from tests.chaos.master_watchers import MasterWatchers, head_revision
from tests.chaos.netns_chaos import (
    chaos_on_masters,
    every_fault_once,
    failure_text,
    summary_line,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns]

THREE = ("partition-leader", "partition-random", "partition-bridge", "kill-all",
         "kill-leader", "pause-leader")
FIVE = ("partition-random", "partition-bridge", "kill-leader", "partition-leader")


@pytest.mark.parametrize(("masters", "kinds"), [
    pytest.param(3, THREE, id="3-masters"),
    pytest.param(5, FIVE, id="5-masters"),
])
def test_register_linearizable_with_partitions(netns_root: None, chaos_seed: int,
                                               tmp_path: Path, masters: int,
                                               kinds: tuple[str, ...]) -> None:
    schedule, duration = every_fault_once(kinds, random.Random(chaos_seed))
    with NetnsMasterCluster(masters) as cluster:
        client = RegisterClient(cluster, seed=chaos_seed, timeout=2.0)
        watchers = MasterWatchers(cluster, KEY_PREFIX, head_revision(cluster) + 1).start()
        try:
            [result] = chaos_on_masters(
                cluster, lambda: RegisterWorkload(client.get, client.put, client.cas),
                kinds,
                [linearizability_checker(time_limit=120), watchers.checker(),
                 divergence_checker(cluster)],
                RunConfig(clients=4, duration=duration, recovery=5.0, seed=chaos_seed,
                          out_dir=tmp_path / "report", schedule=schedule, max_ops=20_000))
        finally:
            watchers.stop()
        print(summary_line(result))
        print(f"watch reconnects {watchers.reconnects}")
    names = {f.name for f in result.history.faults()}
    oks = [o for o in result.history.operations() if o.status == "ok"]
    assert result.nemesis_errors == [], result.nemesis_errors
    assert names == set(kinds) and len(oks) > 100, summary_line(result)
    assert result.verdict == "valid", failure_text(result)
    assert result.report is not None and result.report.png is not None
