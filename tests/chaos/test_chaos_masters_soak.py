"""Soak (only with --soak): rounds of mixed random faults on 3 masters in namespaces.

`--chaos-rounds` rounds of `--chaos-duration` seconds of faults each (random kinds from the
whole list, random gaps), alternating the register workload (linearizability, watches,
divergence) and the ConfigMap set workload (set, divergence) on one cluster. Round i uses
seed + i (`--chaos-seed`, else random, printed); each round's report is written under
tmp_path/round-NNN. Every round must be valid.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkube.testing.netns_masters import NetnsMasterCluster
from tests.chaos.master_rounds import register_round, set_round
from tests.chaos.netns_chaos import failure_text

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.soak]

KINDS = ("kill-leader", "kill-random", "kill-all", "pause-leader", "pause-random",
         "partition-leader", "partition-random", "partition-bridge", "lose-unsynced-random",
         "slow-link-leader")


def test_soak_mixed_faults(netns_root: None, chaos_seed: int, tmp_path: Path,
                           request: pytest.FixtureRequest) -> None:
    rounds = int(request.config.getoption("--chaos-rounds"))
    duration = float(request.config.getoption("--chaos-duration"))
    failed = []
    with NetnsMasterCluster(3, store_overrides={"fsync_audit": True}) as cluster:
        for i in range(rounds):
            round_fn = register_round if i % 2 == 0 else set_round
            result = round_fn(cluster, chaos_seed + i, KINDS, duration,
                              tmp_path / f"round-{i:03d}")
            if not result.valid or result.nemesis_errors:
                failed.append(f"round {i} (seed {chaos_seed + i}, {round_fn.__name__}):\n"
                              f"{failure_text(result)}")
    assert not failed, "\n\n".join(failed)
