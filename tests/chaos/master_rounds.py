"""Chaos rounds on a running (namespaced) master cluster, shared by the CI tests and the soak.

`register_round`: RegisterWorkload through random masters' KV API, with watchers on every
master; checkers: linearizability, watches, divergence. `set_round`: ConfigMap creates
through the SDK, with SDK watchers starting on every master; checkers: set, SDK watches,
divergence. Both take a fixed `schedule` (CI: every fault once) or none (random faults
from `kinds` for `duration` seconds, soak), write the report under `out_dir` and print
the summary line.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from raftkube.testing.chaos.checkers import SetResult, check_set
from raftkube.testing.chaos.history import History
from raftkube.testing.chaos.linearizability import checker as linearizability_checker
from raftkube.testing.chaos.nemesis import ScheduledFault
from raftkube.testing.chaos.runner import RunConfig, RunResult
from raftkube.testing.chaos.workloads import RegisterWorkload, SetWorkload
from raftkube.testing.master_cluster import MasterCluster
from tests.chaos.configmap_set_client import ConfigMapSet
from tests.chaos.master_divergence import divergence_checker
from tests.chaos.master_register_client import KEY_PREFIX, RegisterClient
from tests.chaos.master_watchers import MasterWatchers, head_revision
from tests.chaos.netns_chaos import chaos_on_masters, summary_line
from tests.chaos.sdk_watchers import SdkWatchers


def _config(seed: int, duration: float, out_dir: Path,
            schedule: Sequence[ScheduledFault]) -> RunConfig:
    return RunConfig(clients=4, duration=duration, recovery=5.0, seed=seed, out_dir=out_dir,
                     schedule=schedule, quiet=(1.0, 3.0), active=(2.0, 4.0), max_ops=20_000)


def register_round(cluster: MasterCluster, seed: int, kinds: Sequence[str], duration: float,
                   out_dir: Path, schedule: Sequence[ScheduledFault] = ()) -> RunResult:
    """One register round with watchers; every call bounded by a 2 s deadline. Its keys
    live under a prefix of their own, so rounds on one cluster start from empty keys."""
    prefix = KEY_PREFIX + f"{secrets.token_hex(4)}/".encode()
    client = RegisterClient(cluster, seed=seed, timeout=2.0, prefix=prefix)
    watchers = MasterWatchers(cluster, prefix, head_revision(cluster) + 1).start()
    try:
        [result] = chaos_on_masters(
            cluster, lambda: RegisterWorkload(client.get, client.put, client.cas), kinds,
            [linearizability_checker(time_limit=120), watchers.checker(),
             divergence_checker(cluster)],
            _config(seed, duration, out_dir, schedule))
    finally:
        watchers.stop()
    events = {name: len(evs) for name, evs in watchers.events.items()}
    print(f"{summary_line(result)}; watch events {events}, reconnects {watchers.reconnects}")
    return result


def set_round(cluster: MasterCluster, seed: int, kinds: Sequence[str], duration: float,
              out_dir: Path, schedule: Sequence[ScheduledFault] = ()) -> RunResult:
    """One set round: ConfigMap creates, SDK watchers starting on every master, then the
    final linearizable list."""
    configmaps = ConfigMapSet(cluster.layout.admin_config, seed)
    watchers = SdkWatchers(cluster.layout.admin_config, configmaps.label_selector,
                           configmaps.list()[1]).start()
    try:
        def check_configmaps(history: History) -> SetResult:
            return check_set(history, configmaps.elements())

        [result] = chaos_on_masters(
            cluster, lambda: SetWorkload(configmaps.add), kinds,
            [check_configmaps, watchers.checker(configmaps.creations),
             divergence_checker(cluster)],
            _config(seed, duration, out_dir, schedule))
    finally:
        watchers.stop()
        configmaps.close()
    events = {name: len(evs) for name, evs in watchers.events.items()}
    print(f"{summary_line(result)}; SDK watch events {events}")
    return result
