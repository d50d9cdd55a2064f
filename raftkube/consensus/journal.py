"""A durable Raft journal for pysyncobj: every entry is fsynced before it counts.

pysyncobj's own FileJournal is an mmap that is never synced. `DurableJournal` implements
the same interface (add / deleteEntriesFrom / deleteEntriesTo / term, vote and commit
index) on an append-only file of checksummed records:

    "RKJRNL01" | record* ;  record = u32 size | u32 crc32 | u64 index | u64 term | command

Writes are buffered; `sync()` writes the buffer and fsyncs it once for the whole batch
(group commit). The Raft node calls `sync()` before any message leaves the process and
before it advances the commit index, so nothing is acknowledged before it is durable.
Term and vote are written to `raft.meta` with write-temp, fsync, rename, fsync-dir
before `setCurrentTerm` returns. On open, a torn or corrupt tail is cut off.

With `audit=True` the durable length is recorded in `journal.synced` after each fsync;
`discard_unsynced_tail` truncates a journal to it, which is what a power loss does to
data that was written but never fsynced.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from typing import Any

from raftkube.consensus import codec

log = logging.getLogger(__name__)

MAGIC = b"RKJRNL01"
JOURNAL_FILE = "raft.journal"
META_FILE = "raft.meta"
AUDIT_FILE = "journal.synced"
_HEAD = struct.Struct("<IIQQ")  # size (index+term+command), crc32, index, term
_AUDIT = struct.Struct("<Q")

Entry = tuple[bytes, int, int]


def fsync_dir(path: str) -> None:
    """fsync a directory so renames/creations inside it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: str, data: bytes) -> None:
    """Replace `path` atomically: write temp, fsync, rename, fsync the directory."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def _encode_record(command: bytes, index: int, term: int) -> bytes:
    body = struct.pack("<QQ", index, term) + command
    crc = zlib.crc32(body)
    return struct.pack("<II", len(body), crc) + body


class DurableJournal:
    """pysyncobj Journal interface backed by an fsynced append-only file.

    Not thread-safe: only the Raft thread touches it (status readers use len/[-1],
    which are safe on the in-memory list).
    """

    def __init__(self, data_dir: str, fsync: bool = True, audit: bool = False) -> None:
        self._dir = data_dir
        self._path = os.path.join(data_dir, JOURNAL_FILE)
        self._meta_path = os.path.join(data_dir, META_FILE)
        self._audit_path = os.path.join(data_dir, AUDIT_FILE)
        self._fsync = fsync
        self._audit = audit
        self._entries: list[Entry] = []
        self._offsets: list[int] = []  # file offset of each entry's record
        self._pending = bytearray()
        self._meta = self._load_meta()
        self._meta_dirty = False
        self._open_journal()

    # ---- file handling ----

    def _open_journal(self) -> None:
        if not os.path.exists(self._path):
            write_file_durably(self._path, MAGIC)
        self._fd = os.open(self._path, os.O_RDWR)
        data = b""
        size = os.fstat(self._fd).st_size
        if size:
            data = os.pread(self._fd, size, 0)
        if data[:len(MAGIC)] != MAGIC:
            raise OSError(f"{self._path}: not a raftkube journal (bad magic)")
        pos = len(MAGIC)
        while pos + _HEAD.size <= len(data):
            body_size, crc = struct.unpack_from("<II", data, pos)
            end = pos + 8 + body_size
            if body_size < 16 or end > len(data):
                break
            body = data[pos + 8:end]
            if zlib.crc32(body) != crc:
                break
            index, term = struct.unpack_from("<QQ", body, 0)
            self._entries.append((bytes(body[16:]), index, term))
            self._offsets.append(pos)
            pos = end
        if pos != len(data):
            log.warning("journal %s: discarding %d bytes of torn or corrupt tail",
                        self._path, len(data) - pos)
            os.ftruncate(self._fd, pos)
            os.fsync(self._fd)
        self._file_size = pos
        self._record_audit()

    def _record_audit(self) -> None:
        if not self._audit:
            return
        fd = os.open(self._audit_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, _AUDIT.pack(self._file_size), 0)
        finally:
            os.close(fd)

    @property
    def dirty(self) -> bool:
        """True when entries were added but are not yet durable."""
        return bool(self._pending)

    def sync(self) -> None:
        """Write buffered records and fsync them (one fsync for the whole batch)."""
        if not self._pending:
            return
        view = memoryview(bytes(self._pending))
        self._pending.clear()
        offset = self._file_size
        while view:
            written = os.pwrite(self._fd, view, offset)
            offset += written
            view = view[written:]
        self._file_size = offset
        if self._fsync:
            os.fdatasync(self._fd)
            self._record_audit()

    def _logical_end(self) -> int:
        return self._file_size + len(self._pending)

    # ---- pysyncobj Journal interface ----

    def add(self, command: bytes, idx: int, term: int) -> None:
        command = bytes(command)
        self._offsets.append(self._logical_end())
        self._entries.append((command, idx, term))
        self._pending += _encode_record(command, idx, term)

    def clear(self) -> None:
        self._entries = []
        self._offsets = []
        self._pending.clear()
        self._truncate_file(len(MAGIC))

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        if entryFrom >= len(self._entries):
            return
        cut = self._offsets[entryFrom]
        del self._entries[entryFrom:]
        del self._offsets[entryFrom:]
        if cut >= self._file_size:
            del self._pending[cut - self._file_size:]
        else:
            self._pending.clear()
            self._truncate_file(cut)

    def _truncate_file(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._file_size = size
        os.fsync(self._fd)
        self._record_audit()

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Drop entries before position `entryTo` (after a snapshot): rewrite the file."""
        keep = self._entries[entryTo:]
        records = [MAGIC]
        offsets = []
        pos = len(MAGIC)
        for command, idx, term in keep:
            record = _encode_record(command, idx, term)
            offsets.append(pos)
            pos += len(record)
            records.append(record)
        self._pending.clear()
        os.close(self._fd)
        write_file_durably(self._path, b"".join(records))
        self._fd = os.open(self._path, os.O_RDWR)
        self._entries = list(keep)
        self._offsets = offsets
        self._file_size = pos
        self._record_audit()

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        try:
            self.sync()
            self._store_meta()
        finally:
            os.close(self._fd)

    def flush(self) -> None:
        self.sync()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        if self._meta.get("commit_index") != raftCommitIndex:
            self._meta["commit_index"] = raftCommitIndex
            self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:
        stored = int(self._meta.get("commit_index", 1))
        if self._entries:
            return max(1, min(stored, self._entries[-1][1]))
        return 1

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:
        """Durable before returning: Raft must not act on a term/vote it could forget."""
        self._meta["term"] = int(term)
        self._meta["voted_for"] = votedForNodeId
        self._store_meta()

    def getCurrentTerm(self) -> int:
        return int(self._meta.get("term", 0))

    def getVotedForNodeId(self) -> str | None:
        return self._meta.get("voted_for")

    def onOneSecondTimer(self) -> None:
        if self._meta_dirty:
            self._store_meta()

    # ---- meta ----

    def _load_meta(self) -> dict[str, Any]:
        try:
            with open(self._meta_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        body, crc = raw[:-4], raw[-4:]
        if len(raw) < 4 or struct.unpack("<I", crc)[0] != zlib.crc32(body):
            raise OSError(f"{self._meta_path}: checksum mismatch (term/vote file corrupt)")
        meta = codec.decode(body)
        if not isinstance(meta, dict):
            raise OSError(f"{self._meta_path}: not a meta record")
        return meta

    def _store_meta(self) -> None:
        body = codec.encode(self._meta)
        write_file_durably(self._meta_path, body + struct.pack("<I", zlib.crc32(body)))
        self._meta_dirty = False


def discard_unsynced_tail(data_dir: str) -> int:
    """Simulate power loss on a stopped replica's journal: cut everything after the
    last fsync recorded in the audit file. Returns the number of bytes discarded.
    Needs a replica that ran with `fsync_audit=True`."""
    path = os.path.join(data_dir, JOURNAL_FILE)
    with open(os.path.join(data_dir, AUDIT_FILE), "rb") as f:
        (synced,) = _AUDIT.unpack(f.read(_AUDIT.size))
    size = os.path.getsize(path)
    if size > synced:
        os.truncate(path, synced)
    return max(0, size - synced)
