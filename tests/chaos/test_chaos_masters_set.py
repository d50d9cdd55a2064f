"""Set chaos on real masters in network namespaces: many creates of distinct ConfigMaps
through the SDK while masters are partitioned, killed (the leader, all), paused and
crashed losing their unsynced journal bytes (a power cut), and a fourth master joins and
is removed again, each fault once in a seeded order. After healing, every acknowledged
create is present, nothing whose create certainly failed is present, nothing appears that
nobody created (check_set), and all masters have the same state hash at the same
revision."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from raftkube.testing.netns_masters import NetnsMasterCluster
from tests.chaos.master_rounds import set_round
from tests.chaos.netns_chaos import every_fault_once, failure_text, summary_line

pytestmark = [pytest.mark.slow, pytest.mark.netns]

KINDS = ("partition-leader", "partition-bridge", "kill-leader", "kill-all", "pause-random",
         "lose-unsynced-random", "membership-change")


def test_acknowledged_configmap_creates_survive_faults(netns_root: None, chaos_seed: int,
                                                       tmp_path: Path) -> None:
    schedule, duration = every_fault_once(KINDS, random.Random(chaos_seed))
    with NetnsMasterCluster(3, spare=1, store_overrides={"fsync_audit": True}) as cluster:
        result = set_round(cluster, chaos_seed, KINDS, duration, tmp_path / "report",
                           schedule)
    oks = [o for o in result.history.operations() if o.status == "ok"]
    assert result.nemesis_errors == [], result.nemesis_errors
    assert {f.name for f in result.history.faults()} == set(KINDS)
    assert len(oks) > 50, summary_line(result)
    assert result.verdict == "valid", failure_text(result)
    assert result.report is not None and result.report.png is not None
