"""The fencing watchdog's parts: the stamp, which containers it kills, when it exits, and
the agent's link spawning a real watchdog process (no Podman needed: nothing is overdue)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from raftkube.api.v1 import pod_pb2
from raftkube.workers.agent.config import ResolvConfig, RuntimeConfig, WorkerConfig
from raftkube.workers.agent.fence_link import FenceLink
from raftkube.workers.agent.fence_stamp import (
    FenceStamp,
    fence_dir,
    process_alive,
    stop_watchdog,
    watchdog_pid,
)
from raftkube.workers.agent.fence_watchdog import Watchdog, fence_node
from raftkube.workers.agent.pod_spec import pod_facts, sandbox_spec
from raftkube.workers.runtime.fake_runtime import FakeRuntime, FakeRuntimeConfig
from raftkube.workers.runtime.interface import (
    LABEL_FENCE,
    ContainerSpec,
    ContainerState,
    PodSandboxSpec,
)

IMAGE = "localhost/busybox:latest"


def _stamp(**fields: object) -> FenceStamp:
    base = FenceStamp(node="w1", renewed_at=time.monotonic(), timeout=6.0,
                      agent_pid=os.getpid(), podman_socket="/nonexistent/podman.sock")
    return replace(base, **fields)  # type: ignore[arg-type]


def _running_pod(fake: FakeRuntime, uid: str, fenced: bool) -> str:
    labels = {LABEL_FENCE: "true"} if fenced else {}
    fake.prepare_pod_sandbox(PodSandboxSpec(uid=uid, namespace="default", name=uid,
                                            node=fake.node, labels=labels))
    container_id = fake.create_container(uid, ContainerSpec(name="main", image=IMAGE), 0)
    fake.start_container(container_id)
    return container_id


def test_stamp_round_trips_and_says_when_it_is_overdue(tmp_path: Path) -> None:
    stamp = _stamp(renewed_at=100.0)
    stamp.write(tmp_path)
    assert FenceStamp.read(tmp_path) == stamp
    assert not stamp.overdue(106.0) and stamp.overdue(106.01)
    (tmp_path / "lease.json").write_text("{half")
    assert FenceStamp.read(tmp_path) is None
    assert FenceStamp.read(tmp_path / "missing") is None


def test_fence_node_kills_only_statefulset_pods() -> None:
    fake = FakeRuntime(FakeRuntimeConfig(node="w1"))
    stateful = _running_pod(fake, "sts-pod", fenced=True)
    plain = _running_pod(fake, "plain-pod", fenced=False)
    assert fence_node(fake) == 1
    assert fake.container_status(stateful).state is ContainerState.EXITED
    assert fake.container_status(plain).state is ContainerState.RUNNING
    assert fence_node(fake) == 0, "nothing left to kill"


def _statefulset_pod() -> pod_pb2.Pod:
    pod = pod_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "db-0", "default", "u1"
    pod.metadata.owner_references.add(kind="StatefulSet", name="db", controller=True)
    pod.spec.termination_grace_period_seconds = 30
    pod.spec.containers.add(name="main", image=IMAGE)
    return pod


def test_statefulset_sandboxes_are_labelled_and_fenced_pods_get_no_grace() -> None:
    pod = _statefulset_pod()
    assert sandbox_spec(pod, "w1", "", ResolvConfig()).labels == {LABEL_FENCE: "true"}
    assert pod_facts(pod).grace_seconds == 30
    assert pod_facts(pod, fenced=True).grace_seconds == 0
    del pod.metadata.owner_references[:]
    assert sandbox_spec(pod, "w1", "", ResolvConfig()).labels == {}


class _FakeWatchdog(Watchdog):
    def __init__(self, directory: Path, runtime: FakeRuntime) -> None:
        super().__init__(directory)
        self.fake = runtime

    def runtime(self, stamp: FenceStamp) -> FakeRuntime:  # type: ignore[override]
        return self.fake


def test_watchdog_fences_when_overdue_and_exits_once_the_agent_is_gone(
        tmp_path: Path) -> None:
    fake = FakeRuntime(FakeRuntimeConfig(node="w1"))
    stateful = _running_pod(fake, "sts-pod", fenced=True)
    dog = _FakeWatchdog(tmp_path, fake)
    dog.claim()
    _stamp().write(tmp_path)
    assert dog.step() and fake.container_status(stateful).state is ContainerState.RUNNING
    _stamp(renewed_at=time.monotonic() - 7).write(tmp_path)
    assert dog.step(), "the agent still runs: keep watching after fencing"
    assert fake.container_status(stateful).state is ContainerState.EXITED
    _stamp(renewed_at=time.monotonic() - 7, agent_stopped=True).write(tmp_path)
    assert not dog.step(), "overdue, agent stopped, nothing left: exit"
    _stamp(agent_stopped=True).write(tmp_path)
    assert dog.step(), "the agent stopped but the Lease is fresh: wait for the timeout"
    (tmp_path / "watchdog.pid").write_text("1")
    assert not dog.step(), "another watchdog took over"


def test_watchdog_exits_when_the_stamp_is_removed(tmp_path: Path) -> None:
    dog = _FakeWatchdog(tmp_path, FakeRuntime(FakeRuntimeConfig(node="w1")))
    dog.claim()
    assert not dog.step()


@pytest.mark.timeout(60)
def test_link_spawns_one_watchdog_process_and_respawns_a_dead_one(tmp_path: Path) -> None:
    config = WorkerConfig(node_name="w1", client_config=tmp_path / "client.yaml",
                          data_dir=tmp_path / "agent",
                          runtime=RuntimeConfig(podman_socket=tmp_path / "podman.sock"))
    link = FenceLink(config, time.monotonic()).start()
    directory = fence_dir(config.data_dir)
    try:
        first = link.ensure()
        deadline = time.monotonic() + 30
        while watchdog_pid(directory) != first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watchdog_pid(directory) == first, (directory / "watchdog.log").read_text()
        assert link.ensure() == first, "a live watchdog is kept"
        link.renewed(time.monotonic())
        assert FenceStamp.read(directory).agent_pid == os.getpid()  # type: ignore[union-attr]
        assert stop_watchdog(directory)
        assert not process_alive(first)
        second = link.ensure()
        assert second != first
        link.stop()
        assert FenceStamp.read(directory).agent_stopped  # type: ignore[union-attr]
    finally:
        stop_watchdog(directory)


def test_watchdog_command_refuses_a_missing_directory(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "raftkube.workers.agent.fence_watchdog",
                             str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a directory" in result.stderr
