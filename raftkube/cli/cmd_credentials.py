"""`raftkube credentials add-master|add-worker`: issue credentials for a new machine in an
existing cluster directory (needs the CA key, so run it where `raftkube init` ran)."""

from __future__ import annotations

import argparse
from pathlib import Path

from raftkube.security.cluster_init import InitError, MasterSpec, add_master, add_worker


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("credentials", help="credentials for new masters/workers")
    sub = parser.add_subparsers(dest="credentials_command", required=True)
    master = sub.add_parser("add-master", help="certificate + cluster.yaml entry of a master")
    master.add_argument("--dir", required=True, type=Path, help="the cluster directory")
    master.add_argument("spec", help="NAME=IP[:API_PORT[,RAFT_PORT[,NODE_PORT]]]")
    master.set_defaults(func=_add_master)
    worker = sub.add_parser("add-worker", help="certificate, token and config of a worker")
    worker.add_argument("--dir", required=True, type=Path, help="the cluster directory")
    worker.add_argument("name")
    worker.set_defaults(func=_add_worker)


def _add_master(args: argparse.Namespace) -> int:
    try:
        spec = MasterSpec.parse(args.spec)
        cluster_file = add_master(args.dir, spec)
    except InitError as e:
        print(f"error: {e}")
        return 1
    print(f"master {spec.name} added to {cluster_file}; on its machine run: raftkube join "
          f"--control-plane --name {spec.name} --cluster-file {cluster_file} --data-dir DIR")
    return 0


def _add_worker(args: argparse.Namespace) -> int:
    try:
        creds = add_worker(args.dir, args.name)
    except InitError as e:
        print(f"error: {e}")
        return 1
    print(f"worker {args.name}: client config {creds.config_file}")
    return 0
