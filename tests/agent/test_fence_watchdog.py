"""Fencing when only the agent dies: its containers run on under conmon, so the masters'
replacement of a StatefulSet pod is safe only because the node's fencing watchdog kills
the old copy first. Real masters, real Podman, a real `raftkube worker` process killed
with SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from raftkube.objects.manifests import load_text
from raftkube.testing.agent_harness import AgentHarness, condition, container_state
from raftkube.testing.worker_process import spawn_worker, stop_worker, write_worker_config
from raftkube.workers.agent.fence_stamp import fence_dir, process_alive, watchdog_pid
from raftkube.workers.runtime.interface import ContainerState
from raftkube.workers.runtime.podman_runtime import PodmanRuntime, PodmanRuntimeConfig

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]

# ignores SIGTERM and asks for 30 s of grace: only a kill stops it in time
STATEFULSET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: main
        image: localhost/busybox:latest
        command: [sh, -c, 'trap "" TERM; while true; do sleep 1; done']
"""


def _runtime_id(pod, name: str = "main") -> str:
    """The runtime's id of a container from its status (`podman://ID`)."""
    return container_state(pod, name).container_id.removeprefix("podman://")


def _ready_on(node: str):
    return lambda p: (p.spec.node_name == node and condition(p, "Ready") == "True"
                      and not p.metadata.deletion_timestamp)


def test_a_killed_agents_statefulset_pod_is_stopped_before_its_replacement_starts(
        tmp_path: Path) -> None:
    harness = AgentHarness.start(workers=("w1", "w2"))
    process, data_dir = None, None
    try:
        assert harness.podman is not None
        socket = str(harness.podman.store.socket_path)
        ns = harness.namespace()
        data_dir = write_worker_config(harness, tmp_path / "w1.yaml", "w1")
        process = spawn_worker(tmp_path / "w1.yaml", tmp_path / "w1.log")
        harness.create(load_text(STATEFULSET, "db.yaml", namespace=ns)[0].obj)
        plain = harness.create(harness.pod("plain", ns, node="w1"))
        db0 = harness.pod("db-0", ns)
        first = harness.wait_pod(db0, _ready_on("w1"), timeout=120, what="db-0 Ready on w1")
        harness.wait_pod(plain, lambda p: condition(p, "Ready") == "True", what="Ready")
        old_id = _runtime_id(first)
        watchdog = watchdog_pid(fence_dir(data_dir))
        assert watchdog is not None, "the worker runs a fencing watchdog"
        harness.start_agent("w2")

        killed_at = datetime.now(UTC)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        second = harness.wait_pod(db0, _ready_on("w2"), timeout=90, what="db-0 Ready on w2")
        new_id = _runtime_id(second)

        w1 = PodmanRuntime(PodmanRuntimeConfig(node="w1", socket_path=socket))
        w2 = PodmanRuntime(PodmanRuntimeConfig(node="w2", socket_path=socket))
        old, new = w1.container_status(old_id), w2.container_status(new_id)
        assert old.state is ContainerState.EXITED, "the old copy was stopped"
        assert old.finished_at is not None and new.started_at is not None
        overlap = (old.finished_at - new.started_at).total_seconds()
        assert overlap < 0, f"db-0 ran twice for {overlap:.2f} s"
        fenced_after = (old.finished_at - killed_at).total_seconds()
        # the watchdog kills once the last renewal (at most one interval before the kill)
        # is the fencing timeout (6 s) old; 20 s is a generous bound for a loaded machine
        assert 4.0 < fenced_after < 20.0, f"fenced {fenced_after:.1f} s after the kill"
        print(f"old copy killed {fenced_after:.2f} s after the agent died; the new one "
              f"started {-overlap:.2f} s after that")

        plain_id = _runtime_id(harness.get_pod(plain))
        assert w1.container_status(plain_id).state is ContainerState.RUNNING, (
            "a pod that is not a StatefulSet's keeps running on a node without its agent")
        deadline = time.monotonic() + 15
        while process_alive(watchdog) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not process_alive(watchdog), "the watchdog exits once it fenced a dead agent"
        w1.close()
        w2.close()
    finally:
        stop_worker(process, data_dir)
        harness.close()
