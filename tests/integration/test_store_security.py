"""The Raft port never unpickles bytes from a peer that lacks the cluster secret."""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time
import zlib

import pytest

from raftkube.testing.store_cluster import StoreCluster
from tests.integration.store_helpers import get, put

pytestmark = pytest.mark.slow


class _CreateFile:
    """Unpickling this creates a file: what an attacker would send to a plain pysyncobj."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _frame(obj: object) -> bytes:
    data = zlib.compress(pickle.dumps(obj), 3)  # pysyncobj's unencrypted wire format
    return struct.pack("i", len(data)) + data


def test_crafted_pickle_to_raft_port_creates_nothing(tmp_path) -> None:
    control = tmp_path / "control-proof"
    pickle.loads(pickle.dumps(_CreateFile(str(control))))  # the payload is live
    assert control.exists()
    with StoreCluster(3) as cluster:
        put(cluster, 0, b"/before", b"1")
        target = tmp_path / "pwned"
        for member in cluster.members:
            for attempt in (
                [_frame(_CreateFile(str(target)))],
                # after a fake key exchange, as a node-id message, and as admin commands
                [_frame(os.urandom(32)), _frame(_CreateFile(str(target)))],
                [_frame(member.raft_address), _frame({"type": "append_entries",
                                                      "x": _CreateFile(str(target))})],
                [_frame(["add", "127.0.0.9:1"]), _frame(["status"])],
            ):
                with socket.create_connection((member.host, member.raft_port), timeout=5) as s:
                    for chunk in attempt:
                        try:
                            s.sendall(chunk)
                        except OSError:
                            break  # the replica hung up on us: good
                    s.settimeout(1.0)
                    try:
                        reply = s.recv(4096)
                    except (TimeoutError, ConnectionResetError):
                        reply = b""
                    assert reply == b"", "the replica answered an unauthenticated peer"
        time.sleep(0.5)
        assert not target.exists()
        status = cluster.status(cluster.leader_index())
        assert len(status.members) == 3  # the unauthenticated 'add' changed nothing
        put(cluster, 1, b"/after", b"2")
        assert get(cluster, 2, b"/before") == b"1"


def test_member_with_wrong_secret_cannot_join_or_read() -> None:
    with StoreCluster(3, start=False) as cluster:
        # m2 gets a different secret: it must never receive the cluster's data
        bad_secret = cluster.members[2].data_dir + ".secret"
        with open(bad_secret, "wb") as f:
            f.write(b"not-the-secret")
        config = cluster.members[2].config_path
        with open(config) as f:
            text = f.read().replace(cluster._secret_path, bad_secret)
        with open(config, "w") as f:
            f.write(text)
        cluster.start()
        put(cluster, 0, b"/secret-data", b"x")
        time.sleep(1.0)
        assert get(cluster, 2, b"/secret-data", serializable=True) is None
        assert cluster.status(2).header.leader == ""
