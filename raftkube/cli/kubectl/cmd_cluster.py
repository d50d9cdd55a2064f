"""`cluster status|add-master|remove-master|rotate-secrets`, `token create`, `version`
(`snapshot save|restore`: cmd_snapshot)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import grpc

import raftkube
from raftkube import apierrors
from raftkube.api.v1 import admin_pb2, admin_pb2_grpc
from raftkube.cli.kubectl.common import (
    CommandError,
    add_config_flag,
    colour,
    command,
    make_client,
    parse_duration,
)
from raftkube.cli.kubectl.printers import align
from raftkube.security.client_config import load_client_config


def register(subparsers: argparse._SubParsersAction) -> None:
    cluster = subparsers.add_parser("cluster", help="masters: status and membership")
    verbs = cluster.add_subparsers(dest="cluster_verb", metavar="VERB", required=True)
    status = verbs.add_parser("status", help="every master's Raft role, term and indexes")
    status.add_argument("-o", "--output", choices=("json", "yaml"), default=None)
    status.set_defaults(func=_status)
    add = verbs.add_parser("add-master", help="add a master to the Raft membership")
    add.add_argument("name")
    add.add_argument("--api", required=True, metavar="HOST:PORT")
    add.add_argument("--raft", required=True, metavar="HOST:PORT")
    add.set_defaults(func=_add)
    remove = verbs.add_parser("remove-master", help="remove a master from the membership")
    remove.add_argument("name")
    remove.set_defaults(func=_remove)
    rotate = verbs.add_parser("rotate-secrets",
                              help="re-encrypt every Secret under the newest key")
    rotate.set_defaults(func=_rotate)
    for sub in (status, add, remove, rotate):
        add_config_flag(sub)

    token = subparsers.add_parser("token", help="join tokens for new workers")
    token_verbs = token.add_subparsers(dest="token_verb", metavar="VERB", required=True)
    create = token_verbs.add_parser("create", help="issue a join token")
    create.add_argument("--ttl", default="24h", help="validity (e.g. 30m, 24h; default 24h)")
    create.add_argument("--description", default="")
    add_config_flag(create)
    create.set_defaults(func=_token_create)

    version = subparsers.add_parser("version", help="client and server versions")
    version.add_argument("--client", action="store_true", help="only the client version")
    add_config_flag(version)
    version.set_defaults(func=_version)


def status_data(response: admin_pb2.ClusterStatusResponse) -> dict[str, Any]:
    """What `cluster status -o json` prints: leader, term, members and, per master, id,
    addresses, role, term, commit/applied index, process id, health and lag."""
    return {
        "leader": response.leader, "term": response.term, "members": list(response.members),
        "masters": [{
            "id": m.name, "apiAddress": m.api_address, "raftAddress": m.raft_address,
            "role": m.role, "term": m.term, "commitIndex": m.commit_index,
            "appliedIndex": m.applied_index, "pid": m.pid, "health": m.health,
            "lag": m.lag if m.lag >= 0 else None, "revision": m.revision,
            "version": m.version,
        } for m in response.masters],
    }


def status_table(response: admin_pb2.ClusterStatusResponse, stream: Any = None) -> str:
    rows = [["NAME", "API", "RAFT", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "PID",
             "HEALTH"]]
    for m in response.masters:
        unreachable = m.role == "unreachable"
        health = m.health if stream is None else colour(
            m.health, "32" if m.health == "ok" else "31", stream)
        rows.append([m.name, m.api_address, m.raft_address, m.role,
                     "" if unreachable else str(m.term),
                     "" if unreachable else str(m.commit_index),
                     "" if unreachable else str(m.applied_index),
                     str(m.lag) if m.lag >= 0 else "?", str(m.pid) if m.pid else "", health])
    return align(rows)


@command
def _status(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        response = client.admin.cluster_status()
    if args.output == "json":
        print(json.dumps(status_data(response), indent=2))
    elif args.output == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(status_data(response), sort_keys=False))
    else:
        sys.stdout.write(status_table(response, sys.stdout))
    healthy = all(m.health == "ok" for m in response.masters)
    return 0 if healthy else 1


@command
def _add(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        members = client.admin.add_master(args.name, args.api, args.raft)
    print(f"master/{args.name} added; Raft members: {', '.join(members)}")
    print(f"start it with `join: true` in its master config (API {args.api}, Raft {args.raft})")
    return 0


@command
def _remove(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        members = client.admin.remove_master(args.name)
    print(f"master/{args.name} removed; Raft members: {', '.join(members) or 'unknown'}")
    return 0


@command
def _rotate(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        rewritten, key = client.admin.rotate_secrets()
    print(f"{rewritten} secrets re-encrypted; every secret now uses key {key!r}")
    return 0


@command
def _token_create(args: argparse.Namespace) -> int:
    ttl = int(parse_duration(args.ttl))
    with make_client(args) as client:
        token = client.admin.create_join_token(ttl, args.description)
    expires = datetime.fromtimestamp(token.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(token.token)
    print(f"expires {expires}", file=sys.stderr)
    return 0


@command
def _version(args: argparse.Namespace) -> int:
    print(f"Client Version: raftkube {raftkube.__version__}")
    if args.client:
        return 0
    config = load_client_config(args.config)
    credentials = config.credentials()
    last: str = ""
    for address in config.masters:
        with grpc.secure_channel(address, credentials) as channel:
            try:
                status = admin_pb2_grpc.AdminStub(channel).LocalStatus(
                    admin_pb2.LocalStatusRequest(), timeout=5)
            except grpc.RpcError as e:
                last = apierrors.from_rpc_error(e).message
                continue
        print(f"Server Version: raftkube {status.version} (master {status.name} at {address})")
        return 0
    raise CommandError(f"no master answered ({last})")
