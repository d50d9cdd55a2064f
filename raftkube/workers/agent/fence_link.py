"""The agent's side of fencing by a separate process (fence_watchdog.py).

    FenceLink.start()       write the first stamp, make sure a watchdog runs
    FenceLink.renewed(t)    a Lease renewal sent at monotonic t succeeded: new stamp
    FenceLink.ensure()      called every second by the agent: a dead watchdog is respawned
    FenceLink.stop()        the agent stops: the stamp says so (the watchdog stays, fences
                            the node's StatefulSet pods if no agent renews in time, exits)

Only agents on Podman have a watchdog (a fake runtime's containers die with the agent).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import raftkube
from raftkube.logging_config import get_logger
from raftkube.workers.agent.config import WorkerConfig
from raftkube.workers.agent.fence_stamp import (
    LOG_FILE,
    WATCHDOG_MODULE,
    FenceStamp,
    fence_dir,
    watchdog_pid,
)

log = get_logger(__name__)


class FenceLink:
    """Keeps the stamp current and one watchdog alive for an agent (see module docstring)."""

    def __init__(self, config: WorkerConfig, renewed_at: float) -> None:
        runtime = config.runtime
        self.directory = fence_dir(config.data_dir)
        self._stamp = FenceStamp(
            node=config.node_name, renewed_at=renewed_at,
            timeout=config.fencing_timeout_seconds, agent_pid=os.getpid(),
            podman_socket=str(runtime.podman_socket),
            host_dir=str(runtime.host_dir) if runtime.host_dir else "", netns=runtime.netns)
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None

    def start(self) -> FenceLink:
        with self._lock:
            self._stamp.write(self.directory)
        self.ensure()
        return self

    def renewed(self, sent_at: float) -> None:
        with self._lock:
            if sent_at > self._stamp.renewed_at and not self._stamp.agent_stopped:
                self._stamp = replace(self._stamp, renewed_at=sent_at)
                self._stamp.write(self.directory)

    def ensure(self) -> int:
        """The watchdog's pid, spawning one when none is alive."""
        if self._child is not None and self._child.poll() is None:
            return self._child.pid  # ours, perhaps not yet claimed in watchdog.pid
        pid = watchdog_pid(self.directory)
        if pid is not None:
            return pid
        self._child = self._spawn()
        log.info("fencing watchdog started", pid=self._child.pid, directory=str(self.directory))
        return self._child.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        source_root = str(Path(raftkube.__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH"))
                                            if p)
        with open(self.directory / LOG_FILE, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", WATCHDOG_MODULE, str(self.directory)],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=self.directory)

    def stop(self) -> None:
        with self._lock:
            self._stamp = replace(self._stamp, agent_stopped=True)
            self._stamp.write(self.directory)
