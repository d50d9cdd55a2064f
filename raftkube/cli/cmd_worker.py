"""`raftkube worker --config FILE`: run the worker agent until SIGTERM/SIGINT.

The `worker` command tree itself is registered by cmd_worker_setup (with `setup`); its
`--config` option lands here. SIGTERM stops the agent only: pods keep running."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from raftkube.logging_config import LoggingConfig, configure_logging


def run_from_file(path: Path) -> int:
    from raftkube.workers.agent.config import WorkerConfigError, load_worker_config
    from raftkube.workers.agent.runner import run_worker

    try:
        config = load_worker_config(path)
    except WorkerConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    configure_logging(LoggingConfig(component=f"worker/{config.node_name}"))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run_worker(config, stop)
