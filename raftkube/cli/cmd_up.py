"""`raftkube up` and `raftkube down`: a whole cluster on this machine (see
raftkube.cluster.local_cluster)."""

from __future__ import annotations

import argparse
from pathlib import Path

from raftkube.security.client_config import default_config_path


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="start a local cluster (masters + worker hosts)")
    up.add_argument("--masters", type=int, default=3, help="number of masters (default 3)")
    up.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    up.add_argument("--state-dir", type=Path, default=Path("/var/lib/raftkube-up"),
                    help="where the cluster's files go (default /var/lib/raftkube-up)")
    up.add_argument("--demo", action="store_true",
                    help="also deploy the sample application and print how to look at it")
    up.add_argument("--timeout", type=float, default=240.0,
                    help="seconds to wait for the cluster to be ready")
    up.set_defaults(func=_up)
    down = subparsers.add_parser("down", help="remove everything `raftkube up` made")
    down.add_argument("--state-dir", type=Path, default=Path("/var/lib/raftkube-up"))
    down.set_defaults(func=_down)


def _up(args: argparse.Namespace) -> int:
    from raftkube.cluster.local_cluster import LocalClusterConfig, LocalClusterError, up

    config = LocalClusterConfig(masters=args.masters, workers=args.workers,
                                state_dir=args.state_dir, client_config=default_config_path(),
                                timeout=args.timeout)
    try:
        up(config)
        if args.demo:
            from raftkube.cluster.demo import deploy_demo

            deploy_demo(config, timeout=args.timeout)
    except LocalClusterError as e:
        print(f"error: {e}")
        return 1
    print("\nnext: raftkubectl get nodes; raftkubectl cluster status; raftkube down")
    return 0


def _down(args: argparse.Namespace) -> int:
    from raftkube.cluster.local_cluster import down

    if not down(args.state_dir):
        print(f"no cluster is up from {args.state_dir}")
    return 0
