"""`raftkube`: daemons (master, worker) and cluster tools (init, up, down, join, image)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from raftkube.cli.command_registry import run

# One module per command tree; each exposes register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "raftkube.cli.cmd_version",
    "raftkube.cli.cmd_master",
    "raftkube.cli.cmd_encryption",
    "raftkube.cli.cmd_up",
    "raftkube.cli.cmd_join",
    "raftkube.cli.cmd_credentials",
    "raftkube.cli.cmd_init",
    "raftkube.cli.cmd_image",
    "raftkube.cli.cmd_worker_setup",
)


def main(argv: Sequence[str] | None = None) -> int:
    return run("raftkube", __doc__ or "", COMMAND_MODULES, argv)


if __name__ == "__main__":
    sys.exit(main())
