"""The early election after the leader's connection drops is timed on pysyncobj's clock.

pysyncobj keeps its election deadline on CLOCK_MONOTONIC_RAW, which drifts away from
time.monotonic (by 0.25 s after 16 hours of uptime on the CI machine). A deadline computed
on the wrong clock started the election that much later, and failover took 1 s, not 0.1 s.
"""

from __future__ import annotations

from types import SimpleNamespace

from raftkube.consensus import raft_glue


def _follower_of(leader: str, deadline: float) -> SimpleNamespace:
    return SimpleNamespace(_isLeader=lambda: False, _getLeader=lambda: leader,
                           _SyncObj__raftElectionDeadline=deadline)


def test_the_leader_dropping_brings_the_election_within_200_ms_of_the_raft_clock(
        monkeypatch) -> None:
    monkeypatch.setattr(raft_glue, "raft_clock", lambda: 1000.0)  # far behind monotonic
    node = _follower_of("leader:1", deadline=1000.9)
    raft_glue.RaftNode._rk_peer_disconnected(node, "leader:1")  # type: ignore[arg-type]
    assert 1000.05 <= node._SyncObj__raftElectionDeadline <= 1000.2


def test_another_peer_dropping_changes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(raft_glue, "raft_clock", lambda: 1000.0)
    node = _follower_of("leader:1", deadline=1000.9)
    raft_glue.RaftNode._rk_peer_disconnected(node, "other:2")  # type: ignore[arg-type]
    assert node._SyncObj__raftElectionDeadline == 1000.9
