"""`raftkube worker --config FILE` as a real process for tests, next to an AgentHarness
(its masters and scratch Podman): write a config, spawn, stop (SIGTERM, then SIGKILL),
and stop the fencing watchdog the worker leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from raftkube.testing.agent_harness import REPO_ROOT, AgentHarness
from raftkube.workers.agent.fence_stamp import fence_dir, stop_watchdog


def write_worker_config(harness: AgentHarness, path: Path, name: str = "w1",
                        **fields: object) -> Path:
    """A worker.yaml for node `name` on the harness's masters and Podman; `fields` (YAML
    names) are added or override. Returns the data dir the worker will use."""
    assert harness.podman is not None
    data_dir = harness.root / f"proc-{name}"
    doc = {
        "nodeName": name,
        "clientConfig": str(harness.cluster.layout.worker_config(name)),
        "runtime": {"kind": "podman", "podmanSocket": str(harness.podman.store.socket_path),
                    "network": harness.podman.network, "startService": False},
        "nodeIP": "127.0.0.1",
        "dataDir": str(data_dir),
        "leaseIntervalSeconds": 0.5,
        **fields,
    }
    path.write_text(yaml.safe_dump(doc))
    return Path(str(doc["dataDir"]))


def spawn_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start `raftkube worker --config CONFIG`, output appended to `log`."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "raftkube.cli.raftkube_main", "worker",
                                 "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=str(REPO_ROOT))


def stop_worker(process: subprocess.Popen[bytes] | None, data_dir: Path | None = None) -> None:
    """SIGTERM a worker process still running (SIGKILL after 30 s); with `data_dir`, also
    stop the fencing watchdog it started (which outlives it on purpose)."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    if data_dir is not None:
        stop_watchdog(fence_dir(data_dir))
