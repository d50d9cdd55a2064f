"""`raftkube master --config FILE`: run one master until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from raftkube.interpreter_tuning import freeze_startup_objects, tune_for_daemon
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
    tune_for_daemon()
    master = Master(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    master.start()
    freeze_startup_objects()
    try:
        stop.wait()
    finally:
        master.stop()
    return 0
