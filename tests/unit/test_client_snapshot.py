"""Snapshot download: the file appears only when the SHA-256 the master sent matches."""

from __future__ import annotations

import hashlib

import pytest

from raftkube import apierrors
from raftkube.api.v1 import admin_pb2
from raftkube.client.client import _receive_snapshot


class ChunkSource:
    """Stands in for the Admin stub: streams the given chunks."""

    def __init__(self, chunks: list[admin_pb2.SnapshotChunk]) -> None:
        self.chunks = chunks

    def SnapshotSave(self, request):
        return iter(self.chunks)


def chunks(data: bytes, digest: str) -> list[admin_pb2.SnapshotChunk]:
    return [admin_pb2.SnapshotChunk(data=data[:3], revision=9),
            admin_pb2.SnapshotChunk(data=data[3:], revision=9),
            admin_pb2.SnapshotChunk(sha256=digest, revision=9)]


def test_verified_snapshot_is_written(tmp_path) -> None:
    data = b"snapshot-bytes"
    info = _receive_snapshot(ChunkSource(chunks(data, hashlib.sha256(data).hexdigest())),
                             tmp_path / "out" / "s.db")
    assert (tmp_path / "out" / "s.db").read_bytes() == data
    assert (info.size, info.revision) == (len(data), 9)


def test_corrupted_or_truncated_snapshot_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "s.db"
    with pytest.raises(apierrors.Internal, match="corrupted"):
        _receive_snapshot(ChunkSource(chunks(b"snapshot-bytes", "0" * 64)), target)
    with pytest.raises(apierrors.Internal, match="without its SHA-256"):
        _receive_snapshot(ChunkSource(chunks(b"snapshot-bytes", "")[:2]), target)
    assert list(tmp_path.iterdir()) == []
