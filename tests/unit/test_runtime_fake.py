"""The fake runtime's fault knobs, on a manual clock (no real waiting)."""

from __future__ import annotations

import pytest

from raftkube.workers.runtime.fake_runtime import (
    FakeBehavior,
    FakeRuntime,
    FakeRuntimeConfig,
    behavior_from_env,
)
from raftkube.workers.runtime.interface import (
    ContainerRuntimeError,
    ContainerSpec,
    ContainerStartError,
    ContainerState,
    ExecResult,
    InvalidSpecError,
    PodSandboxSpec,
    PortMapping,
)

IMAGE = "localhost/busybox:latest"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FakeRuntime:
    return FakeRuntime(FakeRuntimeConfig(node="hollow-1", clock=clock.time, sleep=clock.sleep))


def _pod(fake: FakeRuntime, uid: str = "u1", **kwargs: object) -> str:
    return fake.prepare_pod_sandbox(PodSandboxSpec(uid=uid, namespace="default", name=uid,
                                                   node=fake.node, **kwargs)).uid


def _run(fake: FakeRuntime, pod: str, spec: ContainerSpec, attempt: int = 0) -> str:
    container_id = fake.create_container(pod, spec, attempt)
    fake.start_container(container_id)
    return container_id


def test_exit_with_code_after_a_delay(fake: FakeRuntime, clock: ManualClock) -> None:
    fake.set_behavior("job", FakeBehavior(exit_after_seconds=5, exit_code=4))
    container_id = _run(fake, _pod(fake), ContainerSpec(name="job", image=IMAGE))
    clock.now += 4.9
    assert fake.container_status(container_id).state is ContainerState.RUNNING
    clock.now += 0.2
    status = fake.container_status(container_id)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 4,
                                                               "Error")
    assert status.finished_at is not None and status.started_at is not None
    assert (status.finished_at - status.started_at).total_seconds() == pytest.approx(5)


def test_oom_is_reported_only_with_a_memory_limit(fake: FakeRuntime, clock: ManualClock) -> None:
    pod = _pod(fake)
    fake.set_behavior("hog", FakeBehavior(oom_after_seconds=1))
    limited = _run(fake, pod, ContainerSpec(name="hog", image=IMAGE,
                                            memory_limit_bytes=32 << 20))
    unlimited = _run(fake, pod, ContainerSpec(name="hog", image=IMAGE), attempt=1)
    clock.now += 2
    assert fake.container_status(limited).reason == "OOMKilled"
    assert fake.container_status(unlimited).reason == "Error"
    assert fake.container_status(unlimited).exit_code == 137


def test_slow_start_and_failing_start(fake: FakeRuntime, clock: ManualClock) -> None:
    pod = _pod(fake)
    fake.set_behavior("slow", FakeBehavior(start_delay_seconds=3))
    _run(fake, pod, ContainerSpec(name="slow", image=IMAGE))
    assert clock.slept == [3]
    fake.set_behavior("broken", FakeBehavior(fail_start="exec: /app: not found"))
    broken = fake.create_container(pod, ContainerSpec(name="broken", image=IMAGE), 0)
    with pytest.raises(ContainerStartError, match="/app: not found"):
        fake.start_container(broken)
    assert fake.container_status(broken).state is ContainerState.CREATED


def test_hang_on_stop_waits_the_grace_then_kills(fake: FakeRuntime, clock: ManualClock) -> None:
    fake.set_behavior("stuck", FakeBehavior(ignore_stop_signal=True))
    container_id = _run(fake, _pod(fake), ContainerSpec(name="stuck", image=IMAGE))
    status = fake.stop_container(container_id, grace_seconds=30)
    assert clock.slept == [30] and status.exit_code == 137 and status.stopped_by_runtime


def test_graceful_stop_exit_code_follows_the_stop_signal(fake: FakeRuntime,
                                                         clock: ManualClock) -> None:
    fake.set_behavior("app", FakeBehavior(stop_delay_seconds=2))
    container_id = _run(fake, _pod(fake), ContainerSpec(name="app", image=IMAGE, stop_signal=2))
    status = fake.stop_container(container_id, grace_seconds=30)
    assert clock.slept == [2] and status.exit_code == 130


def test_kill_knob_is_not_a_runtime_stop(fake: FakeRuntime) -> None:
    container_id = _run(fake, _pod(fake), ContainerSpec(name="app", image=IMAGE,
                                                        memory_limit_bytes=32 << 20))
    fake.kill(container_id)
    status = fake.container_status(container_id)
    assert status.exit_code == 137 and status.oom_suspected and not status.stopped_by_runtime


def test_env_knobs_let_a_pod_spec_ask_for_faults(fake: FakeRuntime, clock: ManualClock) -> None:
    env = {"RAFTKUBE_FAKE_EXIT_AFTER_SECONDS": "2", "RAFTKUBE_FAKE_EXIT_CODE": "9",
           "RAFTKUBE_FAKE_LOG_LINES": "a\\nb"}
    container_id = _run(fake, _pod(fake), ContainerSpec(name="app", image=IMAGE, env=env))
    assert b"".join(fake.logs(container_id)) == b"a\nb\n"
    clock.now += 3
    assert fake.container_status(container_id).exit_code == 9
    with pytest.raises(InvalidSpecError, match="RAFTKUBE_FAKE_EXIT_CODE"):
        behavior_from_env({"RAFTKUBE_FAKE_EXIT_CODE": "nine"})
    assert behavior_from_env({}) == FakeBehavior()


def test_images_ports_and_exec_handler(fake: FakeRuntime) -> None:
    pod = _pod(fake, port_mappings=(PortMapping(80, 8080),))
    with pytest.raises(ContainerRuntimeError, match="8080/tcp is already allocated"):
        _pod(fake, uid="u2", port_mappings=(PortMapping(81, 8080, host_ip="127.0.0.1"),))
    _pod(fake, uid="u3", port_mappings=(PortMapping(80, 8080, "udp"),))
    fake.add_image("localhost/app:1")
    assert fake.image_present("localhost/app:1")
    container_id = _run(fake, pod, ContainerSpec(name="app", image="localhost/app:1",
                                                 env={"X": "1"}))
    assert b"X=1\n" in fake.exec(container_id, ["env"]).stdout
    assert fake.exec(container_id, ["hostname"]).stdout == b"u1\n"
    fake.set_exec_handler(lambda argv, stdin, env: ExecResult(0, b"ok", b"")
                          if argv[0] == "probe" else None)
    assert fake.exec(container_id, ["probe"]).stdout == b"ok"
    assert fake.exec(container_id, ["true"]).exit_code == 0


def test_sandbox_addresses_are_distinct_and_static_ips_honoured(fake: FakeRuntime) -> None:
    ips = {fake.prepare_pod_sandbox(PodSandboxSpec(
        uid=f"u{i}", namespace="d", name=f"p{i}", node=fake.node)).ip for i in range(50)}
    assert len(ips) == 50
    static = fake.prepare_pod_sandbox(PodSandboxSpec(
        uid="s", namespace="d", name="s", node=fake.node, network="n", static_ip="10.9.9.9"))
    assert static.ip == "10.9.9.9"
