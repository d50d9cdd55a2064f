"""`raftkube encryption add-key|remove-key`: manage the secrets-at-rest key file.

Rotation: `add-key` on every master's key file (the new key becomes primary), wait a second
for the masters to reload it, `raftkubectl cluster rotate-secrets`, then `remove-key` of the
old key everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raftkube.security import encryption


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("encryption", help="manage the secrets-at-rest key file")
    sub = parser.add_subparsers(dest="encryption_command", required=True)
    add = sub.add_parser("add-key", help="add a new primary key")
    add.add_argument("--file", required=True, type=Path, help="the key file")
    add.add_argument("--name", required=True, help="name of the new key")
    add.set_defaults(func=_add)
    remove = sub.add_parser("remove-key", help="remove a key no value uses any more")
    remove.add_argument("--file", required=True, type=Path, help="the key file")
    remove.add_argument("--name", required=True, help="name of the key to remove")
    remove.set_defaults(func=_remove)


def _add(args: argparse.Namespace) -> int:
    try:
        encryption.add_key(args.file, args.name)
    except encryption.EncryptionError as e:
        print(f"error: {e}")
        return 1
    print(f"key {args.name!r} added to {args.file} as the primary key")
    return 0


def _remove(args: argparse.Namespace) -> int:
    try:
        encryption.remove_key(args.file, args.name)
    except encryption.EncryptionError as e:
        print(f"error: {e}")
        return 1
    print(f"key {args.name!r} removed from {args.file}")
    return 0
