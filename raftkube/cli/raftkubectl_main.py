"""`raftkubectl`: the user command line, shaped like kubectl."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from raftkube.cli.command_registry import run

# One module per command tree; each exposes register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "raftkube.cli.kubectl.cmd_apply",
    "raftkube.cli.kubectl.cmd_get",
    "raftkube.cli.kubectl.cmd_describe",
    "raftkube.cli.kubectl.cmd_delete",
    "raftkube.cli.kubectl.cmd_edit",
    "raftkube.cli.kubectl.cmd_scale",
    "raftkube.cli.kubectl.cmd_rollout",
    "raftkube.cli.kubectl.cmd_nodes",
    "raftkube.cli.kubectl.cmd_cluster",
)


def main(argv: Sequence[str] | None = None) -> int:
    return run("raftkubectl", __doc__ or "", COMMAND_MODULES, argv)


if __name__ == "__main__":
    sys.exit(main())
