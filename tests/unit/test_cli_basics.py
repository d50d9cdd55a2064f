"""The command-line entry points parse and dispatch."""

from __future__ import annotations

import subprocess
import sys

import raftkube
from raftkube.cli import raftkube_main, raftkubectl_main


def test_version_prints_the_package_version(capsys) -> None:
    assert raftkube_main.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"raftkube {raftkube.__version__}"


def test_no_command_prints_help_and_fails(capsys) -> None:
    assert raftkubectl_main.main([]) == 2
    assert "usage: raftkubectl" in capsys.readouterr().err


def test_module_runs_as_a_program() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "raftkube.cli.raftkube_main", "version"],
        check=True, capture_output=True, text=True,
    )
    assert out.stdout.startswith("raftkube ")
