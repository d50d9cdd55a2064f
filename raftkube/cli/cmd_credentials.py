"""`raftkube credentials add-master|add-worker`: issue credentials for a new machine in an
existing cluster directory (needs the CA key, so run it where `raftkube init` ran).
`raftkube credentials add-node-serving-ca`: give a cluster directory made before the node
serving CA existed one, so masters sign joining workers' node agent certificates."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from raftkube.security.cluster_init import (
    InitError,
    MasterSpec,
    add_master,
    add_node_serving_ca,
    add_worker,
)


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
    serving = sub.add_parser("add-node-serving-ca",
                             help="the CA masters sign joining workers' node agent "
                                  "certificates with (for directories made before it)")
    serving.add_argument("--dir", required=True, type=Path, help="the cluster directory")
    serving.set_defaults(func=_add_node_serving_ca)


def _reported(action: Callable[[], str]) -> int:
    """Run `action` and print what it reports (exit 0), or the InitError (exit 1)."""
    try:
        report = action()
    except InitError as e:
        print(f"error: {e}")
        return 1
    print(report)
    return 0


def _add_master(args: argparse.Namespace) -> int:
    def add() -> str:
        spec = MasterSpec.parse(args.spec)
        cluster_file = add_master(args.dir, spec)
        return (f"master {spec.name} added to {cluster_file}; on its machine run: raftkube "
                f"join --control-plane --name {spec.name} --cluster-file {cluster_file} "
                f"--data-dir DIR")
    return _reported(add)


def _add_worker(args: argparse.Namespace) -> int:
    return _reported(lambda: f"worker {args.name}: client config "
                             f"{add_worker(args.dir, args.name).config_file}")


def _add_node_serving_ca(args: argparse.Namespace) -> int:
    def add() -> str:
        cert = add_node_serving_ca(args.dir)
        return (f"node serving CA {cert} added to the cluster file; copy {cert.parent} to "
                f"every master machine and restart each master. Workers joined from then on "
                f"get a node agent certificate; join earlier ones again (or use add-worker)")
    return _reported(add)
