"""A throwaway `raftkube up` cluster for tests: unique state dir and prefix under /tmp,
brought up on entry and `raftkube down` on exit (also when the test fails)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from raftkube.cluster.local_cluster import LocalClusterConfig, down, up


@contextlib.contextmanager
def local_cluster(masters: int = 3, workers: int = 2, timeout: float = 300.0,
                  ) -> Iterator[LocalClusterConfig]:
    """Yield the config of a running cluster of `masters` masters and `workers` worker
    hosts (network namespaces, own Podman each); needs root."""
    token = secrets.token_hex(2)
    state_dir = Path(f"/tmp/rkup-{token}")
    config = LocalClusterConfig(masters=masters, workers=workers, state_dir=state_dir,
                                prefix=f"rkt{token}",
                                client_config=state_dir.parent / f"rkup-{token}.config",
                                timeout=timeout)
    try:
        up(config, progress=print)
        yield config
    finally:
        down(state_dir, progress=print)
