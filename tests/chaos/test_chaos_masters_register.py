"""Register chaos on real masters, each in its own network namespace (partitions are real).

Clients in the test's (root) namespace do get / put / cas on a few keys through the KV API
of a random master per operation, each call bounded by a 2 s deadline (a call caught by a
partition ends as an unknown outcome); meanwhile `cluster_faults()` partitions, kills and
pauses masters, each listed fault once in a seeded order. Checked after healing: the
history is linearizable; watchers on every master saw the keys' revisions in order,
without gaps or duplicates (versus the events streamed at the end); all masters have the
same state hash at the same revision.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from raftkube.testing.netns_masters import NetnsMasterCluster
from tests.chaos.master_rounds import register_round
from tests.chaos.netns_chaos import every_fault_once, failure_text, summary_line

pytestmark = [pytest.mark.slow, pytest.mark.netns]

THREE = ("partition-leader", "partition-random", "partition-bridge", "kill-all",
         "kill-leader", "pause-leader", "slow-link-leader")
FIVE = ("partition-random", "partition-bridge", "kill-leader", "partition-leader",
        "lose-unsynced-random", "kill-random")


@pytest.mark.parametrize(("masters", "kinds"), [
    pytest.param(3, THREE, id="3-masters"),
    pytest.param(5, FIVE, id="5-masters"),
])
def test_register_linearizable_with_partitions(netns_root: None, chaos_seed: int,
                                               tmp_path: Path, masters: int,
                                               kinds: tuple[str, ...]) -> None:
    schedule, duration = every_fault_once(kinds, random.Random(chaos_seed))
    with NetnsMasterCluster(masters, store_overrides={"fsync_audit": True}) as cluster:
        result = register_round(cluster, chaos_seed, kinds, duration, tmp_path / "report",
                                schedule)
    names = {f.name for f in result.history.faults()}
    oks = [o for o in result.history.operations() if o.status == "ok"]
    assert result.nemesis_errors == [], result.nemesis_errors
    assert names == set(kinds) and len(oks) > 100, summary_line(result)
    assert result.verdict == "valid", failure_text(result)
    assert result.report is not None and result.report.png is not None
