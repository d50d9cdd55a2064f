"""A one-member store in this process, for tests of the code above the store.

It is a real replica (real Raft, journal with fsync, encrypted transport on a loopback
port); with one member every write commits as soon as it is on this member's disk.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator

from raftkube.consensus.config import StoreConfig
from raftkube.consensus.store import Store
from raftkube.testing.ports import free_port


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
