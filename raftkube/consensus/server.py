"""Process entry: one store replica plus the KV and Maintenance gRPC services.

    python -m raftkube.consensus.server --config replica.json

replica.json:  {"store": {StoreConfig fields...},
                "server": {"grpc_address": "127.0.0.1:23791", "log_level": "info",
                           "max_workers": 256}}

`--force-new-cluster` first turns this replica's data into a new single-member cluster
(recovery from permanent quorum loss; loud). SIGTERM/SIGINT stop cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from raftkube.api.v1 import kv_pb2_grpc
from raftkube.consensus.config import StoreConfig
from raftkube.consensus.errors import ConfigError, StoreError
from raftkube.consensus.grpc_service import KVServicer, MaintenanceServicer
from raftkube.consensus.snapshot_file import force_new_cluster
from raftkube.consensus.store import Store
from raftkube.interpreter_tuning import freeze_startup_objects, tune_for_daemon
from raftkube.logging_config import LoggingConfig, configure_logging, get_logger

log = get_logger(__name__)


@dataclass
class ServerConfig:
    """The process around a replica.

    grpc_address: host:port of the KV/Maintenance gRPC server (plain gRPC; TLS is added
        by the master process that mounts the servicers itself).
    log_level: logging level name.
    max_workers: gRPC worker threads (each open watch holds one).
    """

    grpc_address: str = "127.0.0.1:0"
    log_level: str = "info"
    max_workers: int = 256


def load(path: str) -> tuple[StoreConfig, ServerConfig]:
    """Parse a replica config file; errors name the file and field."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(raw, dict) or "store" not in raw:
        raise ConfigError(f"{path}: needs a top-level object with a 'store' section")
    unknown = sorted(set(raw) - {"store", "server"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}")
    store = StoreConfig.from_dict(raw["store"], source=f"{path}: store")
    server_raw = raw.get("server", {})
    bad = sorted(set(server_raw) - set(ServerConfig.__dataclass_fields__))
    if bad:
        raise ConfigError(f"{path}: server: unknown field(s) {', '.join(bad)}")
    return store, ServerConfig(**server_raw)


def serve(store_config: StoreConfig, server_config: ServerConfig,
          stop: threading.Event) -> int:
    """Run until `stop` is set. Returns the process exit code."""
    store = Store(store_config)
    store.start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=server_config.max_workers),
                         options=[("grpc.so_reuseport", 0),  # a taken port must fail
                                  ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                                  ("grpc.max_send_message_length", 64 * 1024 * 1024)])
    kv_pb2_grpc.add_KVServicer_to_server(KVServicer(store), server)
    kv_pb2_grpc.add_MaintenanceServicer_to_server(MaintenanceServicer(store), server)
    port = server.add_insecure_port(server_config.grpc_address)
    if port == 0:
        store.stop()
        raise StoreError(f"server.grpc_address {server_config.grpc_address}: cannot bind")
    server.start()
    freeze_startup_objects()
    log.info("store server ready", grpc_port=port, raft=store_config.raft_address,
             node=store_config.node_id)
    stop.wait()
    log.info("store server stopping")
    server.stop(grace=1.0).wait(5)
    store.stop()
    log.info("store server stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raftkube.consensus.server",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="replica JSON config file")
    parser.add_argument("--force-new-cluster", action="store_true",
                        help="DANGER: first make this replica a new single-member cluster")
    args = parser.parse_args(argv)
    try:
        store_config, server_config = load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(LoggingConfig(level=server_config.log_level, component="store"))
    tune_for_daemon()
    if args.force_new_cluster:
        force_new_cluster(store_config.data_dir, store_config.raft_address,
                          store_config.cluster_name, store_config.history_max_revisions)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        return serve(store_config, server_config, stop)
    except (ConfigError, StoreError) as exc:
        log.error("store server failed", error=str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
