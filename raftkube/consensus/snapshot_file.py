"""The snapshot file format (ours, not a pickle) and offline data-dir tools.

    "RKSNAP01" | u64 body length | body | sha256(body)
    body = codec dict {format, cluster_name, raft: {last, prev, members}, state}

`raft.last` / `raft.prev` are the last two applied Raft entries [command, index, term];
`state` is `KVState.to_snapshot()`. The same format serves Raft log compaction, backups
(`Store.save_snapshot`) and restores (`bootstrap_from_snapshot`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import time
from dataclasses import dataclass
from typing import Any

from raftkube.consensus import codec
from raftkube.consensus.errors import SnapshotError
from raftkube.consensus.journal import (
    JOURNAL_FILE,
    DurableJournal,
    fsync_dir,
    write_file_durably,
)

log = logging.getLogger(__name__)

MAGIC = b"RKSNAP01"
SNAPSHOT_FILE = "raft.snapshot"
FORMAT = 1
NO_OP_COMMAND = b"\x01"  # pysyncobj's no-op log entry
MEMBERSHIP_COMMAND = 2

Entry = tuple[bytes, int, int]


@dataclass(frozen=True)
class Snapshot:
    """A decoded snapshot file."""

    last: Entry
    prev: Entry
    members: list[str]
    state: bytes
    cluster_name: str

    @property
    def index(self) -> int:
        return self.last[1]


def encode_snapshot(snap: Snapshot) -> bytes:
    body = codec.encode({
        "format": FORMAT,
        "cluster_name": snap.cluster_name,
        "raft": {"last": list(snap.last), "prev": list(snap.prev), "members": snap.members},
        "state": snap.state,
    })
    return MAGIC + struct.pack("<Q", len(body)) + body + hashlib.sha256(body).digest()


def write_snapshot(path: str, snap: Snapshot) -> None:
    """Write durably (temp + fsync + rename + fsync dir)."""
    write_file_durably(path, encode_snapshot(snap))


def write_snapshot_in_place(path: str, snap: Snapshot) -> None:
    """Write and fsync `path` itself (the caller renames it into place)."""
    data = encode_snapshot(snap)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_snapshot(path: str) -> Snapshot:
    """Read and verify a snapshot file; SnapshotError says what is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc.strerror}") from exc
    if data[:8] != MAGIC:
        raise SnapshotError(f"{path}: not a raftkube snapshot (bad magic)")
    if len(data) < 16:
        raise SnapshotError(f"{path}: truncated header")
    (size,) = struct.unpack_from("<Q", data, 8)
    body = data[16:16 + size]
    digest = data[16 + size:]
    if len(body) != size or len(digest) != 32:
        raise SnapshotError(f"{path}: truncated ({len(data)} bytes, header says {size + 48})")
    if hashlib.sha256(body).digest() != digest:
        raise SnapshotError(f"{path}: checksum mismatch (file corrupt)")
    try:
        raw: dict[str, Any] = codec.decode(body)
        raft = raw["raft"]
        if raw["format"] != FORMAT:
            raise SnapshotError(f"{path}: unsupported format {raw['format']}")
        return Snapshot(last=(raft["last"][0], raft["last"][1], raft["last"][2]),
                        prev=(raft["prev"][0], raft["prev"][1], raft["prev"][2]),
                        members=list(raft["members"]), state=raw["state"],
                        cluster_name=raw["cluster_name"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise SnapshotError(f"{path}: malformed body: {exc}") from exc


def bootstrap_from_snapshot(snapshot_path: str, data_dir: str, members: list[str]) -> Snapshot:
    """Prepare an empty `data_dir` so a replica starts from the snapshot's state as a
    member of a NEW cluster of `members` (Raft addresses). Run it for every member of
    the new cluster with the same snapshot file. Returns the snapshot that was read.

    SnapshotError when the file is unreadable or fails its checksum (then `data_dir` is
    not touched) or `data_dir` is not empty. All or nothing: when writing fails midway,
    what was written is removed again."""
    snap = read_snapshot(snapshot_path)
    _write_bootstrap_dir(data_dir, snap.state, members, snap.cluster_name)
    return snap


def _write_bootstrap_dir(data_dir: str, state: bytes, members: list[str],
                         cluster_name: str) -> None:
    """Fill an empty (or missing) `data_dir`; on failure leave it as it was found."""
    if not members:
        raise SnapshotError("members: at least one member is required")
    created = not os.path.exists(data_dir)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    if os.listdir(data_dir):
        raise SnapshotError(f"{data_dir}: not empty; refusing to overwrite a replica's data")
    try:
        _fill_bootstrap_dir(data_dir, state, sorted(set(members)), cluster_name)
    except BaseException:
        _clear_dir(data_dir, remove=created)
        raise


def _fill_bootstrap_dir(data_dir: str, state: bytes, members: list[str],
                        cluster_name: str) -> None:
    # A fresh index space: the new cluster's log starts after these two entries.
    fresh = Snapshot(last=(NO_OP_COMMAND, 2, 1), prev=(NO_OP_COMMAND, 1, 1),
                     members=members, state=state, cluster_name=cluster_name)
    write_snapshot(os.path.join(data_dir, SNAPSHOT_FILE), fresh)
    journal = DurableJournal(data_dir)
    try:
        journal.add(NO_OP_COMMAND, 1, 1)
        journal.add(NO_OP_COMMAND, 2, 1)
        journal.setRaftCommitIndex(2)
        journal.setCurrentTerm(1, None)
    finally:
        journal._destroy()
    fsync_dir(data_dir)


def _clear_dir(data_dir: str, remove: bool) -> None:
    """Delete everything in `data_dir`, and the directory itself when `remove`."""
    if remove:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for name in os.listdir(data_dir):
        path = os.path.join(data_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def force_new_cluster(data_dir: str, self_address: str, cluster_name: str = "raftkube",
                      history_max_revisions: int = 10000) -> str:
    """Recover from permanent quorum loss: turn one surviving replica's data into a new
    single-member cluster holding everything in its snapshot and journal (including
    entries whose commit it never learned). The old files are moved to a
    `<data_dir>.pre-force-<time>` directory, whose path is returned. Others then join
    with add_member. Loud by design: logs CRITICAL."""
    from raftkube.consensus.raft_glue import decode_regular_command
    from raftkube.consensus.state import KVState

    if not os.path.exists(os.path.join(data_dir, JOURNAL_FILE)):
        raise SnapshotError(f"{data_dir}: no journal found; not a replica data dir")
    state = KVState(history_max_revisions)
    snap_path = os.path.join(data_dir, SNAPSHOT_FILE)
    applied_to = 0
    if os.path.exists(snap_path):
        snap = read_snapshot(snap_path)
        state.load_snapshot(snap.state)
        applied_to = snap.index
        cluster_name = snap.cluster_name
    journal = DurableJournal(data_dir)
    replayed = 0
    for command, index, _term in list(journal):
        if index <= applied_to:
            continue
        payload = decode_regular_command(command)
        if payload is not None:
            state.apply(payload)
            replayed += 1
    journal._destroy()
    backup = f"{data_dir}.pre-force-{int(time.time())}"
    shutil.move(data_dir, backup)
    _write_bootstrap_dir(data_dir, state.to_snapshot(), [self_address], cluster_name)
    log.critical(
        "FORCE NEW CLUSTER: %s now holds a new single-member cluster (%s) at revision %d "
        "(%d journal entries replayed); old data kept in %s. Other members must be wiped "
        "and re-added.", data_dir, self_address, state.revision, replayed, backup)
    return backup
