"""`init`: create a new cluster's CA, certificates, tokens and secrets in a directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raftkube.security.cluster_init import (
    InitConfig,
    InitError,
    InitResult,
    MasterSpec,
    init_cluster,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init", help="create a new cluster's credentials (CA, certificates, tokens, keys)",
        description="Create the CA, per-master server certificates, worker client "
                    "certificates and tokens, an admin credential, the Raft transport "
                    "secret, the secrets-at-rest key file and the admin client config.")
    parser.add_argument("--dir", required=True, type=Path,
                        help="cluster directory to create (refused if it holds files)")
    parser.add_argument("--master", action="append", required=True, metavar="SPEC",
                        help="NAME=IP[:API_PORT[,RAFT_PORT[,NODE_PORT]]] (repeat per master; "
                             "default ports 6443, api+1, api+2)")
    parser.add_argument("--worker", action="append", default=[], metavar="NAME",
                        help="a worker to issue credentials for now (repeatable)")
    parser.add_argument("--san", action="append", default=[], metavar="NAME_OR_IP",
                        help="extra DNS name or IP for every master certificate")
    parser.add_argument("--admin-user", default="admin", help="admin user name")
    parser.add_argument("--join-token-ttl", type=float, default=24 * 3600.0,
                        metavar="SECONDS", help="validity of the join token (default 24h)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing cluster directory")
    parser.set_defaults(func=_init)


def describe(result: InitResult) -> str:
    """The human summary printed by `raftkube init`: where everything is."""
    lay = result.layout
    lines = [
        f"cluster directory: {lay.root}",
        f"  client config (admin):  {lay.admin_config}",
        f"    use it: export RAFTKUBECONFIG={lay.admin_config}",
        f"  cluster description:    {lay.cluster_file}",
        f"  CA certificate:         {lay.ca_cert}",
        f"  CA key (keep offline):  {lay.ca_key}",
        f"  CA fingerprint:         {result.ca_fingerprint}",
        f"  node serving CA:        {lay.node_serving_ca_cert} (masters sign joining "
        f"workers' node agent certificates with it)",
        f"  admin token:            {lay.admin_token}",
        f"  admin certificate:      {lay.admin_cert} (key {lay.admin_key})",
        f"  Raft transport secret:  {lay.raft_secret}",
        f"  encryption key file:    {lay.encryption_keys}",
        f"  token table (hashes):   {lay.token_table}",
        f"  join token:             {lay.join_token} (valid until "
        f"{_utc(result.join_token_expires)})",
    ]
    for m in result.masters:
        lines.append(f"  master {m.name}: api {m.address(m.api_port)}, raft "
                     f"{m.address(m.raft_port)}, node api {m.address(m.node_port)}; "
                     f"certificate {lay.master_cert(m.name)}")
    for w in result.workers:
        lines.append(f"  worker {w}: config {lay.worker_config(w)}")
    return "\n".join(lines)


def _utc(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _init(args: argparse.Namespace) -> int:
    try:
        config = InitConfig(
            directory=args.dir,
            masters=tuple(MasterSpec.parse(m) for m in args.master),
            workers=tuple(args.worker),
            extra_sans=tuple(args.san),
            admin_user=args.admin_user,
            join_token_ttl=args.join_token_ttl,
            force=args.force,
        )
        result = init_cluster(config)
    except InitError as exc:
        print(f"raftkube init: {exc}", file=sys.stderr)
        return 1
    print(describe(result))
    return 0
