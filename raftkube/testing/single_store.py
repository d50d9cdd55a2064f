"""A one-member store in this process, for tests of the code above the store.

It is a real replica (real Raft, journal with fsync, encrypted transport on a loopback
port); with one member every write commits as soon as it is on this member's disk.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import Iterator

from raftkube.consensus.config import StoreConfig
from raftkube.consensus.store import Store


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports that were free on `host` a moment ago (all sockets are
    held open while picking, so no port is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextlib.contextmanager
def single_member_store(**overrides: object) -> Iterator[Store]:
    """Start a one-member store in a temporary directory; stop and remove it after."""
    with tempfile.TemporaryDirectory(prefix="raftkube-store-") as data_dir:
        config = StoreConfig(
            raft_address=f"127.0.0.1:{free_port()}",
            data_dir=data_dir,
            cluster_secret=b"test-secret-" + b"x" * 32,
            **overrides,  # type: ignore[arg-type]
        )
        store = Store(config)
        store.start()
        try:
            store.wait_for_leader(timeout=10)
            yield store
        finally:
            store.stop()
