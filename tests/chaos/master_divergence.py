"""Divergence check for real masters: once healed, equal revisions must have equal hashes.

Every master's Admin LocalStatus gives (revision, state_hash) of what it applied. The
checker polls all live masters at once, round after round, until one revision was reported
by every master (they all applied it) or `timeout` passes, then compares every revision
seen by two or more masters with `check_divergence`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc

from raftkube.api.v1 import admin_pb2
from raftkube.testing.chaos.checkers import DivergenceResult, check_divergence
from raftkube.testing.master_cluster import MasterCluster


def _status(cluster: MasterCluster, index: int) -> tuple[int, str] | None:
    try:
        reply = cluster.admin(index).LocalStatus(admin_pb2.LocalStatusRequest(), timeout=2.0)
    except (grpc.RpcError, ValueError):
        return None
    return int(reply.revision), reply.state_hash


def collect_state_hashes(cluster: MasterCluster, timeout: float = 60.0,
                         interval: float = 0.2) -> dict[str, dict[int, str]]:
    """member -> {revision: state hash}, polled until all members reported a common
    revision (or timeout: then whatever was seen). Members stopped on purpose (removed
    from the membership) are left out."""
    members = [m for m in cluster.members if m.process is not None]
    names = [m.name for m in members]
    seen: dict[str, dict[int, str]] = {n: {} for n in names}
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        while True:
            replies = list(pool.map(lambda m: _status(cluster, m.index), members))
            for name, reply in zip(names, replies, strict=True):
                if reply is not None:
                    seen[name][reply[0]] = reply[1]
            common = set.intersection(*(set(v) for v in seen.values()))
            if common or time.monotonic() > deadline:
                return seen
            time.sleep(interval)


def divergence_checker(cluster: MasterCluster, timeout: float = 60.0
                       ) -> Callable[[object], DivergenceResult]:
    """A runner checker comparing the masters' state hashes after the run."""

    def check_master_divergence(history: object) -> DivergenceResult:
        hashes = collect_state_hashes(cluster, timeout)
        result = check_divergence(hashes)
        common = set.intersection(*(set(v) for v in hashes.values()))
        if not common:  # someone never caught up: no verdict unless hashes already differ
            result.compared = []
        return result

    return check_master_divergence
