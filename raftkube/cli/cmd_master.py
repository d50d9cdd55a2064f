"""`raftkube master --config FILE`: run one master until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from pathlib import Path

from raftkube.logging_config import LoggingConfig, configure_logging


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("master", help="run a master (store, API, controllers)")
    parser.add_argument("--config", required=True, type=Path, help="master config file (YAML)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from raftkube.masters.config import MasterConfigError, load_master_config
    from raftkube.masters.master_process import Master

    try:
        config = load_master_config(args.config)
    except MasterConfigError as e:
        print(f"error: {e}")
        return 2
    configure_logging(LoggingConfig(level=config.log_level, component=f"master/{config.name}"))
    # Hand the GIL over every 1 ms (default 5 ms): the Raft thread blocks on fsync and
    # sockets many times per tick and must not queue behind API and controller threads.
    sys.setswitchinterval(0.001)
    # The cyclic collector's default thresholds (700, 10, 10) ran ~550 collections and
    # took 1.5 s of the leader's 15 s while 10,000 pods were created and bound (gen-2
    # passes up to 0.17 s, stalling every thread). Objects here are mostly acyclic
    # (protobuf messages, tuples, dicts of strings): collect young objects far less often.
    gc.set_threshold(100_000, 50, 50)
    master = Master(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    master.start()
    gc.freeze()  # what start-up created lives for the process: never scan it again
    try:
        stop.wait()
    finally:
        master.stop()
    return 0
