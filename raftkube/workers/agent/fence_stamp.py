"""What the agent tells its fencing watchdog, through files in `<dataDir>/fence/`.

    lease.json     FenceStamp: when the last successful Lease renewal was *sent*
                   (CLOCK_MONOTONIC, shared by every process of the machine), the fencing
                   timeout, the agent's pid and whether it stopped, and where its Podman is
    watchdog.pid   the pid of the watchdog serving this node (written by the watchdog)
    watchdog.log   the watchdog's log

The stamp is replaced atomically (write + rename), so a reader sees the old or the new
stamp, never half of one. A missing `lease.json` tells the watchdog to exit.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

STAMP_FILE = "lease.json"
PID_FILE = "watchdog.pid"
LOG_FILE = "watchdog.log"
WATCHDOG_MODULE = "raftkube.workers.agent.fence_watchdog"


def fence_dir(data_dir: Path) -> Path:
    """Where an agent with this dataDir keeps its fencing files."""
    return data_dir / "fence"


@dataclass(frozen=True)
class FenceStamp:
    """One node's fencing facts.

    node: the node name (the runtime labels every sandbox with it).
    renewed_at: time.monotonic() when the last successful renewal was sent (the masters
        saw it commit later, so a fence counted from here is never late).
    timeout: fencingTimeoutSeconds: past renewed_at + timeout the node's StatefulSet pods
        must be stopped.
    agent_pid: the agent's process; agent_stopped: it stopped on purpose (in-process
        agents of a test run in a process that lives on).
    podman_socket, host_dir, netns: the Podman service the agent used, so the watchdog
        can reach the containers (and start a service when the agent's is gone).
    """

    node: str
    renewed_at: float
    timeout: float
    agent_pid: int
    podman_socket: str
    host_dir: str = ""
    netns: str = ""
    agent_stopped: bool = False

    def overdue(self, now: float) -> bool:
        """The node's StatefulSet pods must be stopped now."""
        return now - self.renewed_at > self.timeout

    def write(self, directory: Path) -> None:
        """Replace `directory/lease.json` atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{STAMP_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, directory / STAMP_FILE)

    @classmethod
    def read(cls, directory: Path) -> FenceStamp | None:
        """The current stamp; None when there is none (or it cannot be parsed)."""
        try:
            data = json.loads((directory / STAMP_FILE).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def watchdog_pid(directory: Path) -> int | None:
    """The pid of the live watchdog serving `directory`, or None."""
    try:
        pid = int((directory / PID_FILE).read_text().strip() or 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if WATCHDOG_MODULE.encode() not in cmdline or not process_alive(pid):
        return None
    return pid


def stop_watchdog(directory: Path, timeout: float = 10.0) -> bool:
    """SIGTERM the watchdog serving `directory` (if any) and wait for it to go; True when
    one was running. For whoever tears a node down on purpose (tests, `raftkube down`)."""
    pid = watchdog_pid(directory)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True
