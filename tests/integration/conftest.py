"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from raftkube.cli import raftkubectl_main


@pytest.fixture
def kubectl(cluster, capsys):
    """Run raftkubectl in-process against the module's `cluster` fixture (a MasterCluster)
    as its administrator: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = raftkubectl_main.main([*args, "--config", str(cluster.layout.admin_config)])
        out, err = capsys.readouterr()
        return code, out, err

    return run
