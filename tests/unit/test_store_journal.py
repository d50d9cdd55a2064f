"""DurableJournal: group fsync, torn tails, truncation, term/vote durability, power loss."""

from __future__ import annotations

import os

import pytest

from raftkube.consensus.config import StoreConfig
from raftkube.consensus.errors import ConfigError
from raftkube.consensus.journal import JOURNAL_FILE, DurableJournal, discard_unsynced_tail


def test_entries_survive_reopen_only_after_sync(tmp_path) -> None:
    j = DurableJournal(str(tmp_path), audit=True)
    j.add(b"\x01", 1, 0)
    j.add(b"cmd-2", 2, 1)
    assert j.dirty
    j.sync()
    assert not j.dirty
    j.add(b"cmd-3", 3, 1)  # written to the buffer, never synced
    os.close(j._fd)  # crash: no _destroy
    reopened = DurableJournal(str(tmp_path), audit=True)
    assert [e[1] for e in reopened] == [1, 2]
    reopened._destroy()


def test_power_loss_drops_exactly_the_unsynced_tail(tmp_path) -> None:
    j = DurableJournal(str(tmp_path), audit=True)
    for i in range(1, 6):
        j.add(b"c%d" % i, i, 1)
    j.sync()
    j.add(b"c6", 6, 1)
    # simulate the page cache holding written-but-unsynced bytes
    j._file_size += os.pwrite(j._fd, bytes(j._pending), j._file_size)
    j._pending.clear()
    os.close(j._fd)
    dropped = discard_unsynced_tail(str(tmp_path))
    assert dropped > 0
    reopened = DurableJournal(str(tmp_path))
    assert [e[1] for e in reopened] == [1, 2, 3, 4, 5]
    reopened._destroy()


def test_without_fsync_power_loss_loses_everything(tmp_path) -> None:
    j = DurableJournal(str(tmp_path), fsync=False, audit=True)
    for i in range(1, 4):
        j.add(b"c", i, 1)
    j.sync()
    os.close(j._fd)
    discard_unsynced_tail(str(tmp_path))
    assert len(DurableJournal(str(tmp_path))) == 0


def test_torn_tail_is_cut_on_open(tmp_path) -> None:
    j = DurableJournal(str(tmp_path))
    for i in range(1, 4):
        j.add(b"payload-%d" % i, i, 2)
    j._destroy()
    path = tmp_path / JOURNAL_FILE
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # half-written last record
    reopened = DurableJournal(str(tmp_path))
    assert [e[1] for e in reopened] == [1, 2]
    reopened.add(b"new", 3, 3)
    reopened._destroy()
    assert [e[0] for e in DurableJournal(str(tmp_path))] == [b"payload-1", b"payload-2", b"new"]


def test_delete_from_and_to(tmp_path) -> None:
    j = DurableJournal(str(tmp_path))
    for i in range(1, 11):
        j.add(b"e%d" % i, i, 1)
    j.sync()
    j.deleteEntriesFrom(7)  # keep positions 0..6 -> indexes 1..7
    j.add(b"x8", 8, 2)
    j.deleteEntriesTo(3)  # drop positions 0..2 -> start at index 4
    j._destroy()
    reopened = DurableJournal(str(tmp_path))
    assert [(e[1], e[2]) for e in reopened] == [(4, 1), (5, 1), (6, 1), (7, 1), (8, 2)]


def test_term_and_vote_are_durable_immediately(tmp_path) -> None:
    j = DurableJournal(str(tmp_path))
    j.setCurrentTerm(7, "127.0.0.2:1")
    os.close(j._fd)  # crash right after voting
    again = DurableJournal(str(tmp_path))
    assert again.getCurrentTerm() == 7 and again.getVotedForNodeId() == "127.0.0.2:1"


def test_commit_index_never_exceeds_log(tmp_path) -> None:
    j = DurableJournal(str(tmp_path))
    j.add(b"\x01", 1, 0)
    j.add(b"a", 2, 1)
    j.setRaftCommitIndex(9)
    j._destroy()
    assert DurableJournal(str(tmp_path)).getRaftCommitIndex() == 2


def test_store_refuses_to_start_without_secret(tmp_path) -> None:
    config = StoreConfig(raft_address="127.0.0.1:1", data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="cluster_secret"):
        config.validate()


def test_config_errors_name_the_field(tmp_path) -> None:
    with pytest.raises(ConfigError, match="leader_lease_timeout"):
        StoreConfig.from_dict({"raft_address": "127.0.0.1:5", "data_dir": str(tmp_path),
                               "cluster_secret": "hex:00ff", "leader_lease_timeout": 5.0})
    with pytest.raises(ConfigError, match="bogus"):
        StoreConfig.from_dict({"raft_address": "127.0.0.1:5", "data_dir": "d", "bogus": 1})
    with pytest.raises(ConfigError, match=r"peers\[0\]"):
        StoreConfig.from_dict({"raft_address": "127.0.0.1:5", "data_dir": "d",
                               "cluster_secret": "hex:00", "peers": ["nope"]})
    missing = StoreConfig(raft_address="127.0.0.1:5", data_dir="d",
                          cluster_secret=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="cannot read"):
        missing.secret_bytes()


def test_membership_of_a_restarted_replica_ignores_members_configured_after_its_first_log(
        tmp_path) -> None:
    """A master listed in the cluster file before it joined (credentials add-master, then
    join --control-plane) must not be counted by a replica restarted meanwhile: its
    bootstrap membership is the one it first logged with (found by the chaos suite: a
    restarted 3-master cluster counted a fourth that never started)."""
    from raftkube.consensus.raft_glue import effective_members

    def config(*peers: str) -> StoreConfig:
        return StoreConfig(raft_address="10.0.0.1:7000", data_dir=str(tmp_path),
                           peers=list(peers), cluster_secret=b"s" * 32)

    three = ("10.0.0.2:7000", "10.0.0.3:7000")
    journal = DurableJournal(str(tmp_path))
    # before any log entry the configuration wins (a wrong address can still be fixed)
    assert effective_members(config("10.0.0.9:7000"), journal) == [
        "10.0.0.1:7000", "10.0.0.9:7000"]
    assert effective_members(config(*three), journal) == ["10.0.0.1:7000", *three]
    journal.add(b"\x01", 1, 1)
    journal.sync()
    later = config(*three, "10.0.0.4:7000")  # m4 added to the cluster file, not joined
    assert effective_members(later, journal) == ["10.0.0.1:7000", *three]
    journal._destroy()
