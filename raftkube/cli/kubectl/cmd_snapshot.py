"""`snapshot save FILE` (through the API) and `snapshot restore FILE` (offline: on every
master machine of a new cluster, before its masters start)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from raftkube.cli.kubectl.common import CommandError, add_config_flag, command, make_client
from raftkube.consensus.errors import SnapshotError
from raftkube.consensus.snapshot_file import bootstrap_from_snapshot
from raftkube.consensus.state import KVState
from raftkube.masters.config import MasterConfigError, load_master_config
from raftkube.security.cluster_init import InitError, load_cluster_file, master_raft_addresses

RESTORE_DESCRIPTION = """\
Offline disaster recovery, no API call: fill this master's EMPTY store directory from a
snapshot saved with `snapshot save`, as a member of a new cluster. Run it on every master
machine with the same FILE while no master runs, then start all the masters.
Either --master-config PATH (store directory <dataDir>/store; members: every master's Raft
address in its cluster file) or --data-dir DIR --members HOST:PORT,... (the directory to
fill and the new cluster's Raft addresses, this one included)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    snapshot = subparsers.add_parser("snapshot", help="back up and restore the cluster state")
    verbs = snapshot.add_subparsers(dest="snapshot_verb", metavar="VERB", required=True)
    save = verbs.add_parser("save", help="save a consistent snapshot to FILE")
    save.add_argument("file")
    add_config_flag(save)
    save.set_defaults(func=_save)

    restore = verbs.add_parser("restore", description=RESTORE_DESCRIPTION,
                               help="offline: prepare this master's empty store from FILE")
    restore.add_argument("file")
    source = restore.add_mutually_exclusive_group(required=True)
    source.add_argument("--master-config", type=Path, metavar="PATH",
                        help="this master's master.yaml")
    source.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="the store directory to fill (a master's is <dataDir>/store)")
    restore.add_argument("--members", metavar="HOST:PORT,...",
                         help="with --data-dir: the new cluster's Raft addresses")
    restore.set_defaults(func=_restore, usage_error=restore.error)


@command
def _save(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        info = client.admin.save_snapshot(args.file)
    print(f"Snapshot saved at {info.path} ({info.size} bytes, revision {info.revision}, "
          f"sha256 {info.sha256})")
    return 0


@dataclass(frozen=True)
class RestoreTarget:
    """Where a restore writes (a store directory) and the new cluster's Raft members."""

    store_dir: Path
    members: list[str]


def target_from_master_config(path: Path) -> RestoreTarget:
    """The master's store directory and every master's Raft address from its cluster
    file. CommandError names the file that is wrong."""
    try:
        config = load_master_config(path)
        cluster = load_cluster_file(config.cluster_file)
    except (MasterConfigError, InitError) as e:
        raise CommandError(str(e)) from None
    members = master_raft_addresses(cluster)
    if config.name not in members:
        raise CommandError(f"{config.cluster_file}: no master named {config.name!r}")
    return RestoreTarget(config.store_dir, list(members.values()))


def parse_members(text: str) -> list[str]:
    """`HOST:PORT,HOST:PORT,...` -> the addresses, in order; ValueError names a bad one."""
    members = [item.strip() for item in text.split(",")]
    for member in members:
        host, _, port = member.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--members: {member!r} is not HOST:PORT")
    return members


def _usage(args: argparse.Namespace, message: str) -> NoReturn:
    args.usage_error(message)  # prints usage and the message, exits 2
    raise AssertionError("unreachable")


def restore_target(args: argparse.Namespace) -> RestoreTarget:
    """The target named by exactly one of the two flag forms; exits 2 on bad usage."""
    if args.master_config is not None:
        if args.members is not None:
            _usage(args, "--members goes with --data-dir; --master-config reads the members "
                         "from the cluster file")
        return target_from_master_config(args.master_config)
    if args.members is None:
        _usage(args, "--data-dir needs --members HOST:PORT,... (the new cluster's Raft "
                     "addresses)")
    try:
        return RestoreTarget(args.data_dir, parse_members(args.members))
    except ValueError as e:
        _usage(args, str(e))


@command
def _restore(args: argparse.Namespace) -> int:
    target = restore_target(args)
    try:
        snap = bootstrap_from_snapshot(args.file, str(target.store_dir), target.members)
    except SnapshotError as e:
        raise CommandError(str(e)) from None
    except OSError as e:
        raise CommandError(f"{e.filename or target.store_dir}: {e.strerror or e}") from None
    revision = KVState.revision_of_snapshot(snap.state)
    print(f"Restored {args.file} (revision {revision}, cluster name {snap.cluster_name!r}) "
          f"into {target.store_dir}")
    print(f"Raft members of the new cluster: {', '.join(sorted(set(target.members)))}")
    print("Restore every member's store the same way, then start all the masters.")
    return 0
