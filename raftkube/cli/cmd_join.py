"""`raftkube join`: make this machine a worker of a running cluster.

    raftkube join --token ID.SECRET --master HOST:PORT --ca-file ca.crt --name w3

The join token (from `raftkubectl token create`) is traded at a master for this node's own
token; the node's client config and a worker config are written to --dir, and the command
prints how to start the worker. The CA file comes from the cluster's admin (the same file
`raftkube init` wrote as ca/ca.crt); it is what lets the worker trust the masters.

The node agent service (logs, exec, port-forward, top) gets its serving certificate in the
same call: a new key is made here and never leaves this machine; its certificate signing
request (this node's name and IPs only) goes with JoinNode, and the master signs it with
the cluster's node serving CA. Masters of a cluster directory made before the node serving
CA existed sign nothing; the worker then runs without the service and a warning says how to
get it.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from raftkube import apierrors
from raftkube.api.v1 import admin_pb2, admin_pb2_grpc
from raftkube.security.client_config import ClientConfig, write_client_config
from raftkube.security.grpc_auth import channel_credentials
from raftkube.security.node_serving import serving_request
from raftkube.security.pki import KeyPair, write_key_pair, write_private
from raftkube.workers.agent.heartbeat import detect_node_ip

DEFAULT_NODE_AGENT_PORT = 10250


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
    parser.add_argument("--node-agent-port", type=int, default=DEFAULT_NODE_AGENT_PORT,
                        help="port of the node agent service (logs/exec) on this node "
                             f"(default {DEFAULT_NODE_AGENT_PORT}; 0 = any free port)")
    parser.add_argument("--dir", type=Path, default=Path("/etc/raftkube"),
                        help="where to write the configs (default /etc/raftkube)")
    parser.set_defaults(func=_join)


@dataclass(frozen=True)
class JoinResult:
    """What `join` wrote: the worker config, and whether it has a node agent service
    (False when the masters hold no node serving CA and signed no certificate)."""

    worker_config: Path
    node_agent: bool


def join(token: str, master: str, ca_file: Path, name: str, directory: Path,
         node_ip: str = "", pod_cidr: str = "",
         node_agent_port: int = DEFAULT_NODE_AGENT_PORT) -> JoinResult:
    """Trade the join token for node credentials and the node agent's serving certificate;
    write them under `directory`. Raises apierrors.ApiError when the master refuses (the
    message says why), OSError when a file cannot be read or written, ValueError for a bad
    port or a certificate from the master that is not for our key."""
    if not 0 <= node_agent_port < 65536:
        raise ValueError(f"--node-agent-port: {node_agent_port} is not a port number")
    ca_pem = ca_file.read_bytes()
    serving_key = ec.generate_private_key(ec.SECP256R1())
    csr = serving_request(serving_key, name, [node_ip or detect_node_ip((master,))])
    channel = grpc.secure_channel(master, channel_credentials(ca_pem, token=token))
    try:
        reply = admin_pb2_grpc.AdminStub(channel).JoinNode(
            admin_pb2.JoinNodeRequest(node_name=name, serving_csr=csr), timeout=15)
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
    worker: dict = {"nodeName": name, "clientConfig": str(client_config)}
    if node_ip:
        worker["nodeIP"] = node_ip
    if pod_cidr:
        worker["podCIDR"] = pod_cidr
    if reply.serving_certificate:
        worker["nodeAgent"] = _write_node_agent(
            node_dir, _signed_pair(reply.serving_certificate, serving_key, master), node_ip,
            node_agent_port)
    worker_config = directory / "worker.yaml"
    write_private(worker_config, yaml.safe_dump(worker, sort_keys=False).encode())
    return JoinResult(worker_config, bool(reply.serving_certificate))


def _signed_pair(pem: bytes, key: ec.EllipticCurvePrivateKey, master: str) -> KeyPair:
    """The master's certificate with our key; ValueError when it is not PEM or not for
    this key."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValueError(f"{master} sent a serving certificate that is not PEM: {exc}") from exc
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError(f"{master} sent a serving certificate for another key")
    return KeyPair(cert, key)


def _write_node_agent(node_dir: Path, serving: KeyPair, node_ip: str, port: int) -> dict:
    """Write the serving certificate and key; return the worker config's `nodeAgent`
    section. Its callers are the masters, whose certificates chain to the cluster CA
    (`ca.crt`)."""
    write_key_pair(serving, node_dir / "serving.crt", node_dir / "serving.key")
    host = node_ip or "0.0.0.0"
    host = f"[{host}]" if ":" in host else host
    return {"listen": f"{host}:{port}", "certFile": str(node_dir / "serving.crt"),
            "keyFile": str(node_dir / "serving.key"), "caFile": str(node_dir / "ca.crt")}


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
        result = join(args.token, args.master, args.ca_file, args.name, args.dir,
                      args.node_ip, args.pod_cidr, args.node_agent_port)
    except apierrors.ApiError as e:
        print(f"error: join refused by {args.master}: {e.message}")
        return 1
    except (OSError, ValueError) as e:
        print(f"error: {e}")
        return 1
    if result.node_agent:
        print(f"node {args.name}: node agent serving certificate signed by the masters "
              f"(logs, exec, port-forward and top reach this node)")
    else:
        print(f"warning: the masters hold no node serving CA (a cluster directory made "
              f"before it existed), so {args.name} has no node agent service: logs, exec, "
              f"port-forward and top will not reach it. Where the cluster directory lives, "
              f"run `raftkube credentials add-node-serving-ca --dir DIR`, restart every "
              f"master and join again; or use `raftkube credentials add-worker --dir DIR "
              f"{args.name}`")
    print(f"node {args.name} joined; start it with: raftkube worker --config "
          f"{result.worker_config}")
    return 0
