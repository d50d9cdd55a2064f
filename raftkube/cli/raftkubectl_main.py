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
    "raftkube.cli.kubectl.cmd_snapshot",
    "raftkube.cli.kubectl.cmd_logs_exec",
    "raftkube.cli.kubectl.cmd_top",
)


def global_flags_last(argv: Sequence[str]) -> list[str]:
    """Move a leading `--config FILE` / `--config=FILE` (kubectl's `--kubeconfig` habit:
    `raftkubectl --config F get pods`) behind the command, where the commands define it."""
    args = list(argv)
    moved: list[str] = []
    while args and args[0].startswith("--config"):
        if args[0] == "--config" and len(args) > 1:
            moved += args[:2]
            args = args[2:]
        elif args[0].startswith("--config="):
            moved.append(args.pop(0))
        else:
            break
    return args + moved


def main(argv: Sequence[str] | None = None) -> int:
    args = global_flags_last(sys.argv[1:] if argv is None else argv)
    return run("raftkubectl", __doc__ or "", COMMAND_MODULES, args)


if __name__ == "__main__":
    sys.exit(main())
