"""The fencing watchdog: a small process that stops a node's StatefulSet pods when the
node's Lease went unrenewed for the fencing timeout, also when the agent cannot.

Why: the masters replace a StatefulSet pod of a silent node once its Lease is older than
the fencing timeout plus a margin, trusting that the node stopped the old copy by then
(node_lifecycle.py). A running agent does that itself; but when only the agent process
dies, hangs or is stopped, its containers run on under conmon, and without this process
two copies of one StatefulSet ordinal would run at once.

    python -m raftkube.workers.agent.fence_watchdog FENCE_DIR     (spawned by the agent)

    every 0.25 s: read FENCE_DIR/lease.json (fence_stamp.FenceStamp)
      missing, or watchdog.pid names another process          -> exit
      overdue (monotonic now - renewed_at > timeout)           -> kill (no grace) every running
            container of this node's sandboxes labelled LABEL_FENCE (StatefulSet pods)
      overdue, the agent gone (dead or stopped), nothing left  -> exit (a new agent spawns a
            new watchdog)
    Podman unreachable when a kill is due -> start a Podman service on the agent's socket
    with the agent's store (stopped again on exit).

SIGINT is ignored (a Ctrl-C meant for the agent in a terminal must not end the watchdog);
SIGTERM ends it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from raftkube.logging_config import LoggingConfig, configure_logging, get_logger
from raftkube.workers.agent.fence_stamp import PID_FILE, FenceStamp, process_alive
from raftkube.workers.podman_setup import HostStoreConfig
from raftkube.workers.runtime.interface import (
    LABEL_FENCE,
    ContainerRuntimeError,
    ContainerState,
    Runtime,
)
from raftkube.workers.runtime.podman_runtime import PodmanRuntime, PodmanRuntimeConfig
from raftkube.workers.runtime.podman_service import (
    PodmanService,
    PodmanServiceConfig,
    ping,
)

log = get_logger(__name__)

POLL_SECONDS = 0.25


def fence_node(runtime: Runtime) -> int:
    """Kill every running container of the node's fenced (StatefulSet) sandboxes; returns
    how many were running. Raises ContainerRuntimeError when the runtime fails."""
    uids = {s.uid for s in runtime.list_pod_sandboxes() if s.labels.get(LABEL_FENCE) == "true"}
    running = [c for c in runtime.list_containers()
               if c.pod_uid in uids and c.state is ContainerState.RUNNING]
    for container in running:
        log.warning("fencing: killing a StatefulSet pod's container", pod=container.pod_name,
                    namespace=container.namespace, container=container.name)
        runtime.stop_container(container.container_id, 0)
    return len(running)


class Watchdog:
    """The loop of the module docstring, for one fence directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._service: PodmanService | None = None
        self._runtime: PodmanRuntime | None = None

    def claim(self) -> None:
        """Write our pid: from now on we are this node's watchdog."""
        tmp = self.directory / f".{PID_FILE}.{self.pid}"
        tmp.write_text(str(self.pid))
        os.replace(tmp, self.directory / PID_FILE)

    def superseded(self) -> bool:
        try:
            return int((self.directory / PID_FILE).read_text().strip()) != self.pid
        except (OSError, ValueError):
            return True

    def runtime(self, stamp: FenceStamp) -> PodmanRuntime:
        """A runtime on the agent's Podman, starting a service when none answers."""
        socket = Path(stamp.podman_socket)
        if not ping(socket, timeout_seconds=1.0) and self._service is None:
            store = HostStoreConfig(Path(stamp.host_dir)) if stamp.host_dir else None
            self._service = PodmanService(PodmanServiceConfig(
                socket_path=socket, containers_conf=store.containers_conf if store else None,
                storage_conf=store.storage_conf if store else None,
                netns=stamp.netns or None, reuse_existing=True))
            log.info("the agent's Podman service is gone; starting one", socket=str(socket))
            self._service.start()
        if self._runtime is None:
            self._runtime = PodmanRuntime(PodmanRuntimeConfig(node=stamp.node,
                                                              socket_path=str(socket)))
        return self._runtime

    def step(self) -> bool:
        """One look; False when the watchdog should exit."""
        stamp = FenceStamp.read(self.directory)
        if stamp is None or self.superseded():
            return False
        if not stamp.overdue(time.monotonic()):
            return True
        try:
            killed = fence_node(self.runtime(stamp))
        except ContainerRuntimeError as exc:
            log.warning("fencing failed; retrying", error=str(exc))
            return True
        agent_gone = stamp.agent_stopped or not process_alive(stamp.agent_pid)
        return not (agent_gone and killed == 0)

    def run(self) -> None:
        self.claim()
        log.info("fencing watchdog running", directory=str(self.directory))
        try:
            while self.step():
                time.sleep(POLL_SECONDS)
        finally:
            if self._runtime is not None:
                self._runtime.close()
            if self._service is not None:
                self._service.stop()
        log.info("fencing watchdog exits", directory=str(self.directory))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m raftkube.workers.agent.fence_watchdog FENCE_DIR",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    configure_logging(LoggingConfig(component="fence-watchdog"))
    directory = Path(args[0])
    if not directory.is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return 2
    Watchdog(directory).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
