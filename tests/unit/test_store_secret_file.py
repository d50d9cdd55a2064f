"""Regression: a cluster secret read from a file is the text of the file without the
surrounding whitespace, so the harness must write secrets that have none (it once wrote
random raw bytes, and admin calls failed whenever they started or ended with a space or a
newline byte)."""

from __future__ import annotations

from pathlib import Path

from raftkube.consensus.config import StoreConfig
from raftkube.testing.store_cluster import StoreCluster


def test_secret_file_reads_back_without_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"ab12cd34" * 8 + b"\n")
    config = StoreConfig(raft_address="127.0.0.1:1", data_dir=str(tmp_path / "d"),
                         cluster_secret=path)
    assert config.secret_bytes() == b"ab12cd34" * 8


def test_harness_secrets_survive_the_round_trip_through_a_file(tmp_path: Path) -> None:
    for i in range(100):
        (tmp_path / f"c{i}").mkdir()
        cluster = StoreCluster(3, base_dir=str(tmp_path / f"c{i}"), start=False)
        try:
            read = StoreConfig(raft_address="127.0.0.1:1", data_dir=str(tmp_path / "d"),
                               cluster_secret=Path(cluster.base_dir) / "cluster.secret"
                               ).secret_bytes()
            assert read == cluster.secret
        finally:
            cluster.close()
