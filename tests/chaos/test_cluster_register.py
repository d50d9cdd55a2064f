"""Chaos on a real control plane: clients do get / put / compare-and-swap on a few keys
through the masters' KV API (TLS + admin token, a random master per operation) while the
nemesis kills the leader, kills a random master and pauses the leader; the history must be
linearizable. A report (JSON, text, PNG) is written for each run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from raftkube.testing.chaos.linearizability import checker as linearizability_checker
from raftkube.testing.chaos.nemesis import KillProcess, PauseProcess
from raftkube.testing.chaos.runner import RunConfig, run
from raftkube.testing.chaos.workloads import RegisterWorkload
from raftkube.testing.master_cluster import MasterCluster
from tests.chaos.master_register_client import RegisterClient

pytestmark = [pytest.mark.slow]


def test_register_history_is_linearizable_under_master_faults(tmp_path: Path) -> None:
    with MasterCluster(3) as cluster:
        client = RegisterClient(cluster, seed=7)

        def leader_pid() -> int:
            return cluster.members[cluster.leader_index(timeout=20)].pid

        def random_pid() -> int:
            return cluster.members[random.Random().choice(cluster.alive_indexes())].pid

        def restart_dead() -> str:
            dead = [m.index for m in cluster.members if not m.alive]
            for index in dead:
                cluster.restart(index)
            return f"restarted {dead}"

        faults = {
            "kill-leader": lambda rng: KillProcess("kill-leader", leader_pid,
                                                   restart=restart_dead),
            "kill-random-master": lambda rng: KillProcess(
                "kill-random-master", random_pid, restart=restart_dead),
            "pause-leader": lambda rng: PauseProcess("pause-leader", leader_pid),
        }
        [result] = run(lambda: RegisterWorkload(client.get, client.put, client.cas),
                       faults, [linearizability_checker(time_limit=180)],
                       RunConfig(clients=4, duration=20.0, recovery=3.0, seed=2026,
                                 out_dir=tmp_path / "report", quiet=(1.0, 2.0),
                                 active=(1.0, 2.5), max_ops=20_000),
                       announce=print)
    names = {f.name for f in result.history.faults()}
    oks = [o for o in result.history.operations() if o.status == "ok"]
    print(f"faults: {sorted(names)}; operations: {len(result.history.operations())}, "
          f"ok: {len(oks)}; verdict: {result.verdict}")
    assert result.nemesis_errors == [], result.nemesis_errors
    assert len(names) >= 2 and len(oks) > 100
    assert result.verdict == "valid", result.results[0].summary()
    assert result.report is not None and result.report.png is not None
