"""`raftkube join`: make this machine a worker of a running cluster.

    raftkube join --token ID.SECRET --master HOST:PORT --ca-file ca.crt --name w3

The join token (from `raftkubectl token create`) is traded at a master for this node's own
token; the node's client config and a worker config are written to --dir, and the command
prints how to start the worker. The CA file comes from the cluster's admin (the same file
`raftkube init` wrote as ca/ca.crt); it is what lets the worker trust the masters.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import grpc
import yaml

from raftkube import apierrors
from raftkube.api.v1 import admin_pb2, admin_pb2_grpc
from raftkube.security.client_config import ClientConfig, write_client_config
from raftkube.security.grpc_auth import channel_credentials
from raftkube.security.pki import write_private


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "join", help="join this machine to a cluster as a worker (or, with --control-plane, "
                     "as a master)")
    parser.add_argument("--name", required=True, help="this node's name")
    parser.add_argument("--control-plane", action="store_true",
                        help="join as a master: needs --cluster-file, --data-dir and "
                             "--admin-config")
    parser.add_argument("--cluster-file", type=Path,
                        help="cluster.yaml listing this master (raftkube credentials "
                             "add-master)")
    parser.add_argument("--data-dir", type=Path, help="the new master's data directory")
    parser.add_argument("--admin-config", type=Path,
                        help="a cluster-admin client config (default: $RAFTKUBECONFIG)")
    parser.add_argument("--token", help="a join token (raftkubectl token create)")
    parser.add_argument("--master", help="API address of any master, HOST:PORT")
    parser.add_argument("--ca-file", type=Path, help="the cluster CA (PEM)")
    parser.add_argument("--node-ip", default="", help="this node's address (default: found)")
    parser.add_argument("--pod-cidr", default="", help="this node's pod subnet")
    parser.add_argument("--dir", type=Path, default=Path("/etc/raftkube"),
                        help="where to write the configs (default /etc/raftkube)")
    parser.set_defaults(func=_join)


def join(token: str, master: str, ca_file: Path, name: str, directory: Path,
         node_ip: str = "", pod_cidr: str = "") -> Path:
    """Trade the join token for node credentials; write them; return the worker config."""
    ca_pem = ca_file.read_bytes()
    channel = grpc.secure_channel(master, channel_credentials(ca_pem, token=token))
    try:
        reply = admin_pb2_grpc.AdminStub(channel).JoinNode(
            admin_pb2.JoinNodeRequest(node_name=name), timeout=15)
    except grpc.RpcError as e:
        raise apierrors.from_rpc_error(e) from None
    finally:
        channel.close()
    node_dir = directory / "node"
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(ca_file, node_dir / "ca.crt")
    write_private(node_dir / "token", (reply.token + "\n").encode())
    client_config = node_dir / "config.yaml"
    write_client_config(client_config, ClientConfig(
        masters=tuple(reply.masters), ca_file=node_dir / "ca.crt",
        token_file=node_dir / "token", user=f"system:node:{name}"))
    worker = {"nodeName": name, "clientConfig": str(client_config)}
    if node_ip:
        worker["nodeIP"] = node_ip
    if pod_cidr:
        worker["podCIDR"] = pod_cidr
    worker_config = directory / "worker.yaml"
    write_private(worker_config, yaml.safe_dump(worker, sort_keys=False).encode())
    return worker_config


def _join_master(args: argparse.Namespace) -> int:
    import subprocess
    import sys

    from raftkube.client import Client
    from raftkube.masters.membership import join_control_plane

    if not args.cluster_file or not args.data_dir:
        print("error: --control-plane needs --cluster-file and --data-dir")
        return 2

    def start(config_path: Path) -> None:
        log_path = args.data_dir / "master.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "raftkube.cli.raftkube_main", "master", "--config",
                 str(config_path)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        print(f"master {args.name} started (pid {proc.pid}, log {log_path})")

    try:
        with Client.from_config(args.admin_config) as admin:
            members = join_control_plane(admin, args.cluster_file, args.name, args.data_dir,
                                         start)
    except (apierrors.ApiError, ValueError, TimeoutError, OSError) as e:
        print(f"error: {getattr(e, 'message', e)}")
        return 1
    print(f"master {args.name} joined; Raft members: {', '.join(members)}")
    return 0


def _join(args: argparse.Namespace) -> int:
    if args.control_plane:
        return _join_master(args)
    missing = [flag for flag, value in (("--token", args.token), ("--master", args.master),
                                        ("--ca-file", args.ca_file)) if not value]
    if missing:
        print(f"error: joining a worker needs {', '.join(missing)}")
        return 2
    try:
        path = join(args.token, args.master, args.ca_file, args.name, args.dir,
                    args.node_ip, args.pod_cidr)
    except apierrors.ApiError as e:
        print(f"error: join refused by {args.master}: {e.message}")
        return 1
    except OSError as e:
        print(f"error: {e}")
        return 1
    print(f"node {args.name} joined; start it with: raftkube worker --config {path}")
    return 0
