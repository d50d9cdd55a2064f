"""`raftkubectl snapshot restore`: usage errors, bad snapshot files, non-empty stores, and
that a failed restore leaves nothing behind (no cluster needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from raftkube.cli import raftkubectl_main
from raftkube.consensus import snapshot_file
from raftkube.consensus.model import Op
from raftkube.consensus.snapshot_file import (
    NO_OP_COMMAND,
    SNAPSHOT_FILE,
    Snapshot,
    read_snapshot,
    write_snapshot,
)
from raftkube.consensus.state import KVState, encode_txn
from raftkube.security.cluster_init import master_raft_addresses

MEMBERS = "10.0.0.1:6444,10.0.0.2:6444,10.0.0.3:6444"


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A valid snapshot file of a state with three keys (revision 3)."""
    state = KVState()
    for i in range(3):
        state.apply(encode_txn([], [Op.put(b"/k/%d" % i, b"v%d" % i)], []))
    path = tmp_path / "backup.snap"
    write_snapshot(str(path), Snapshot(last=(NO_OP_COMMAND, 9, 2), prev=(NO_OP_COMMAND, 8, 2),
                                       members=["old:1"], state=state.to_snapshot(),
                                       cluster_name="raftkube"))
    return path


def restore(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `raftkubectl snapshot restore ARGS` in-process: (exit code, stdout, stderr)."""
    try:
        code = raftkubectl_main.main(["snapshot", "restore", *args])
    except SystemExit as e:  # argparse: bad usage
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write_master_config(tmp_path: Path, name: str = "m2") -> Path:
    """A cluster file with three masters and master `name`'s config (dataDir: data)."""
    masters = [{"name": f"m{i}", "ip": f"10.0.0.{i}", "apiPort": 6443, "raftPort": 6444,
                "nodePort": 6445} for i in (1, 2, 3)]
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump({"kind": "Cluster", "masters": masters}))
    config = tmp_path / "master.yaml"
    config.write_text(yaml.safe_dump({"name": name, "clusterFile": "cluster.yaml",
                                      "dataDir": "data"}))
    return config


@pytest.mark.parametrize(("args", "message"), [
    ([], "one of the arguments --master-config --data-dir is required"),
    (["--master-config", "m.yaml", "--data-dir", "d"], "not allowed with"),
    (["--data-dir", "d"], "--data-dir needs --members"),
    (["--master-config", "m.yaml", "--members", MEMBERS], "--members goes with --data-dir"),
    (["--data-dir", "d", "--members", "10.0.0.1"], "'10.0.0.1' is not HOST:PORT"),
    (["--data-dir", "d", "--members", "a:1,,b:2"], "'' is not HOST:PORT"),
    (["--data-dir", "d", "--members", "a:99999"], "'a:99999' is not HOST:PORT"),
])
def test_bad_usage_exits_2_with_a_message(capsys, tmp_path, monkeypatch, snapshot, args,
                                          message) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = restore(capsys, str(snapshot), *args)
    assert code == 2 and out == ""
    assert message in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "missing"])
def test_bad_snapshot_file_is_one_line_naming_it_and_writes_nothing(
        capsys, tmp_path, snapshot, damage) -> None:
    data = snapshot.read_bytes()
    if damage == "flip":
        snapshot.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "truncate":
        snapshot.write_bytes(data[:len(data) // 2])
    elif damage == "empty":
        snapshot.write_bytes(b"")
    else:
        snapshot.unlink()
    store = tmp_path / "store"
    code, out, err = restore(capsys, str(snapshot), "--data-dir", str(store),
                             "--members", MEMBERS)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {snapshot}: ")
    assert not store.exists()


def test_non_empty_store_is_refused_and_kept(capsys, tmp_path, snapshot) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "raft.journal").write_bytes(b"old replica data")
    code, out, err = restore(capsys, str(snapshot), "--data-dir", str(store),
                             "--members", MEMBERS)
    assert code == 1 and out == ""
    assert err.strip() == (f"error: {store}: not empty; refusing to overwrite a replica's "
                           "data")
    assert os.listdir(store) == ["raft.journal"]
    assert (store / "raft.journal").read_bytes() == b"old replica data"


def test_restore_with_data_dir_and_members(capsys, tmp_path, snapshot) -> None:
    store = tmp_path / "store"
    code, out, err = restore(capsys, str(snapshot), "--data-dir", str(store),
                             "--members", "10.0.0.3:6444, 10.0.0.1:6444,10.0.0.2:6444")
    assert code == 0 and err == ""
    assert f"(revision 3, cluster name 'raftkube') into {store}" in out
    assert f"Raft members of the new cluster: {MEMBERS.replace(',', ', ')}" in out
    restored = read_snapshot(str(store / SNAPSHOT_FILE))
    assert restored.members == MEMBERS.split(",")
    assert restored.state == read_snapshot(str(snapshot)).state
    assert restored.index == 2  # a fresh log for the new cluster


def test_restore_with_master_config(capsys, tmp_path, snapshot) -> None:
    config = write_master_config(tmp_path)
    code, out, _ = restore(capsys, str(snapshot), "--master-config", str(config))
    assert code == 0
    store = tmp_path / "data" / "store"
    assert f"into {store}" in out
    assert read_snapshot(str(store / SNAPSHOT_FILE)).members == MEMBERS.split(",")


def test_master_config_errors_name_the_file(capsys, tmp_path, snapshot) -> None:
    code, _, err = restore(capsys, str(snapshot), "--master-config", str(tmp_path / "no.yaml"))
    assert code == 1 and err.startswith(f"error: {tmp_path / 'no.yaml'}: cannot read")
    config = write_master_config(tmp_path, name="m9")
    code, _, err = restore(capsys, str(snapshot), "--master-config", str(config))
    assert code == 1
    assert err.strip() == f"error: {tmp_path / 'cluster.yaml'}: no master named 'm9'"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("existed", [True, False])
def test_failure_midway_leaves_the_store_as_found(capsys, tmp_path, snapshot, monkeypatch,
                                                  existed) -> None:
    store = tmp_path / "store"
    if existed:
        store.mkdir()

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device", str(store / "raft.journal"))

    monkeypatch.setattr(snapshot_file.DurableJournal, "add", disk_full)
    code, out, err = restore(capsys, str(snapshot), "--data-dir", str(store),
                             "--members", MEMBERS)
    assert code == 1 and out == ""
    assert err.strip() == f"error: {store / 'raft.journal'}: No space left on device"
    assert store.exists() == existed
    if existed:
        assert os.listdir(store) == []


def test_master_raft_addresses_follow_the_cluster_file() -> None:
    doc = {"masters": [{"name": "b", "ip": "10.0.0.2", "raftPort": 7},
                       {"name": "a", "ip": "10.0.0.1", "raftPort": 8}]}
    assert master_raft_addresses(doc) == {"b": "10.0.0.2:7", "a": "10.0.0.1:8"}
