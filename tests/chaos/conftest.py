"""Fixtures of the chaos tests on masters in network namespaces."""

from __future__ import annotations

import os
import secrets
import shutil

import pytest

from raftkube.testing.netns import reap_orphaned_runs


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    """--chaos-seed, or a fresh random seed; printed so a failing run can be replayed."""
    seed = request.config.getoption("--chaos-seed")
    if seed is None:
        seed = secrets.randbits(31)
    print(f"chaos seed {seed} (replay with --chaos-seed {seed})")
    return int(seed)


@pytest.fixture
def netns_root() -> None:
    """Skip unless root with ip/nsenter/nft; remove namespaces of crashed earlier runs."""
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    missing = [t for t in ("ip", "nsenter", "nft") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"tools missing for netns tests: {', '.join(missing)}")
    reap_orphaned_runs()
