"""The Runtime contract, run against Podman and against the fake (so the fake cannot drift).

Each contract point of interface.py's docstrings is one test here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from raftkube.testing.podman_node import ScratchPodmanNode
from raftkube.workers.runtime.interface import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerCreateError,
    ContainerEvent,
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerStartError,
    ContainerState,
    EventAction,
    ImageNotPresentError,
    InvalidSpecError,
    PodSandboxNotFoundError,
    PortMapping,
    Runtime,
    TerminalSize,
    previous_instance,
)
from tests.integration.runtime_harness import (
    IMAGE,
    RuntimeHarness,
    fake_harness,
    podman_harness,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def podman_node() -> Iterator[ScratchPodmanNode]:
    node = ScratchPodmanNode.start(prefix="rkc")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(params=["fake", pytest.param("podman", marks=pytest.mark.podman)])
def harness(request: pytest.FixtureRequest) -> Iterator[RuntimeHarness]:
    if request.param == "podman":
        made = podman_harness(request.getfixturevalue("podman_node"))
    else:
        made = fake_harness()
    try:
        yield made
    finally:
        made.cleanup()


def test_both_implementations_satisfy_the_protocol(harness: RuntimeHarness) -> None:
    assert isinstance(harness.runtime, Runtime)


def test_prepare_sandbox_is_idempotent_and_listed(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    spec = harness.sandbox("web")
    first = rt.prepare_pod_sandbox(spec)
    again = rt.prepare_pod_sandbox(spec)
    assert first.sandbox_id == again.sandbox_id
    assert first.ready and first.ip
    assert (first.uid, first.namespace, first.name, first.node) == (spec.uid, "ns1", "web",
                                                                     rt.node)
    assert spec.uid in [s.uid for s in rt.list_pod_sandboxes()]
    assert rt.pod_sandbox_status(spec.uid) is not None
    assert rt.pod_sandbox_status("no-such-uid") is None


def test_invalid_specs_name_the_field(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    with pytest.raises(InvalidSpecError, match=r"sandbox.port_mappings\[0\].host_port"):
        rt.prepare_pod_sandbox(harness.sandbox(port_mappings=(PortMapping(80, 70000),)))
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    with pytest.raises(InvalidSpecError, match=r"container\[c\].memory_limit_bytes"):
        rt.create_container(sandbox.uid, ContainerSpec(name="c", image=IMAGE,
                                                       memory_limit_bytes=1000), 0)
    with pytest.raises(InvalidSpecError, match=r"container\.name"):
        rt.create_container(sandbox.uid, ContainerSpec(name="Bad_Name", image=IMAGE), 0)


def test_create_needs_a_sandbox(harness: RuntimeHarness) -> None:
    with pytest.raises(PodSandboxNotFoundError, match="no-such-uid"):
        harness.runtime.create_container("no-such-uid", harness.long_running("c"), 0)


def test_missing_image_is_a_clear_error_and_leaves_nothing(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    spec = ContainerSpec(name="c", image="localhost/absent:1.0")
    assert not rt.image_present("localhost/absent:1.0")
    with pytest.raises(ImageNotPresentError, match=r"localhost/absent:1\.0") as info:
        rt.create_container(sandbox.uid, spec, 0)
    assert info.value.image == "localhost/absent:1.0"
    assert rt.list_containers(sandbox.uid) == []
    assert rt.image_present(IMAGE)
    assert any(IMAGE in image.names for image in rt.list_images())


def test_lifecycle_labels_and_idempotent_start(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox("web"))
    container_id = rt.create_container(sandbox.uid, harness.long_running("app"), 0)
    created = rt.container_status(container_id)
    assert created.state is ContainerState.CREATED
    assert created.started_at is None and created.exit_code is None
    rt.start_container(container_id)
    rt.start_container(container_id)
    running = rt.container_status(container_id)
    assert running.state is ContainerState.RUNNING and running.started_at is not None
    assert (running.name, running.pod_uid, running.namespace, running.pod_name,
            running.node, running.attempt) == ("app", sandbox.uid, "ns1", "web", rt.node, 0)
    assert running.labels[LABEL_POD_UID] == sandbox.uid
    assert running.labels[LABEL_POD_NAMESPACE] == "ns1"
    assert running.labels[LABEL_POD_NAME] == "web"
    assert running.labels[LABEL_NODE] == rt.node
    assert running.labels[LABEL_CONTAINER_NAME] == "app"
    assert running.labels[LABEL_ATTEMPT] == "0"
    listed = rt.list_containers(sandbox.uid)
    assert [c.container_id for c in listed] == [container_id]
    assert container_id in [c.container_id for c in rt.list_containers()]


def test_same_instance_twice_is_refused(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    rt.create_container(sandbox.uid, harness.long_running("app"), 0)
    with pytest.raises(ContainerCreateError):
        rt.create_container(sandbox.uid, harness.long_running("app"), 0)


def test_exit_code_is_observed_and_exited_is_not_restarted(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.exiting("job", code=3, after=0.3))
    status = harness.wait_exited(container_id)
    assert status.exit_code == 3 and status.reason == "Error"
    assert not status.oom_suspected and not status.stopped_by_runtime
    assert status.finished_at is not None
    with pytest.raises(ContainerStartError):
        rt.start_container(container_id)
    done = harness.run(sandbox.uid, harness.exiting("ok", code=0, after=0.1))
    assert harness.wait_exited(done).reason == "Completed"


def test_start_failure_leaves_a_created_container(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = rt.create_container(sandbox.uid, harness.failing_start("bad"), 0)
    with pytest.raises(ContainerStartError, match=r"not found|no such file"):
        rt.start_container(container_id)
    status = rt.container_status(container_id)
    assert status.state is ContainerState.CREATED and status.started_at is None
    rt.remove_container(container_id)
    retry = rt.create_container(sandbox.uid, harness.long_running("bad"), 1)
    rt.start_container(retry)
    assert rt.container_status(retry).state is ContainerState.RUNNING


def test_graceful_stop_is_idempotent(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.long_running("app"))
    began = time.monotonic()
    stopped = rt.stop_container(container_id, grace_seconds=10)
    assert time.monotonic() - began < 8, "a process that exits on SIGTERM must not wait"
    assert stopped.state is ContainerState.EXITED and stopped.stopped_by_runtime
    assert stopped.exit_code != 137 and not stopped.oom_suspected
    assert rt.stop_container(container_id, grace_seconds=10) == rt.container_status(
        container_id)


def test_stop_kills_after_the_grace_period(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.ignoring_sigterm(
        "stubborn", memory_limit_bytes=64 * 1024 * 1024))
    time.sleep(0.3)  # let the shell install its trap
    began = time.monotonic()
    stopped = rt.stop_container(container_id, grace_seconds=1)
    elapsed = time.monotonic() - began
    assert 0.9 <= elapsed < 15
    assert stopped.exit_code == 137
    assert not stopped.oom_suspected, "a kill the runtime sent is not an OOM"


def test_stop_of_a_created_container_leaves_it_created(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = rt.create_container(sandbox.uid, harness.long_running("app"), 0)
    assert rt.stop_container(container_id, 1).state is ContainerState.CREATED


def test_remove_is_idempotent_and_missing_containers_raise(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.long_running("app"))
    rt.remove_container(container_id)
    rt.remove_container(container_id)
    assert rt.list_containers(sandbox.uid) == []
    with pytest.raises(ContainerNotFoundError):
        rt.container_status(container_id)
    with pytest.raises(ContainerNotFoundError):
        rt.stop_container(container_id, 1)
    with pytest.raises(ContainerNotFoundError):
        rt.start_container(container_id)
    with pytest.raises(ContainerNotFoundError):
        list(rt.logs(container_id))


def test_logs_tail_timestamps_since_and_follow(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.printing("talker", ["one", "two", "three"]))
    deadline = time.monotonic() + 10
    while b"three" not in b"".join(rt.logs(container_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"".join(rt.logs(container_id)) == b"one\ntwo\nthree\n"
    assert b"".join(rt.logs(container_id, tail=1)) == b"three\n"
    stamped = b"".join(rt.logs(container_id, timestamps=True)).decode().splitlines()
    assert len(stamped) == 3 and stamped[0].endswith(" one")
    assert datetime.fromisoformat(stamped[0].split(" ")[0].replace("Z", "+00:00"))
    future = datetime.now(tz=UTC) + timedelta(hours=1)
    assert b"".join(rt.logs(container_id, since=future)) == b""
    job = harness.run(sandbox.uid, harness.exiting("job", 0, 0.5, lines=("done",)))
    began = time.monotonic()
    followed = b"".join(rt.logs(job, follow=True))
    assert followed == b"done\n" and time.monotonic() - began < 10


def test_previous_instance_keeps_its_logs(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    first = harness.run(sandbox.uid, harness.exiting("app", 1, 0.1, lines=("first",)))
    harness.wait_exited(first)
    second = harness.run(sandbox.uid, harness.exiting("app", 1, 5, lines=("second",)), 1)
    statuses = rt.list_containers(sandbox.uid)
    assert [(s.name, s.attempt) for s in statuses] == [("app", 0), ("app", 1)]
    previous = previous_instance(statuses, sandbox.uid, "app")
    assert previous is not None and previous.container_id == first
    assert b"".join(rt.logs(first)) == b"first\n"
    assert second != first


def test_exec_output_codes_stdin_and_tty(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.long_running("app"))
    echoed = rt.exec(container_id, ["echo", "hello"])
    assert (echoed.exit_code, echoed.stdout, echoed.stderr) == (0, b"hello\n", b"")
    assert rt.exec(container_id, ["sh", "-c", "exit 3"]).exit_code == 3
    assert rt.exec(container_id, ["false"]).exit_code == 1
    assert rt.exec(container_id, ["cat"], stdin=b"piped\n").stdout == b"piped\n"
    missing = rt.exec(container_id, ["no-such-command"])
    assert missing.exit_code in (126, 127) and missing.stderr
    with_tty = rt.exec(container_id, ["echo", "tty"], tty=True)
    assert with_tty.exit_code == 0 and with_tty.stdout == b"tty\r\n"
    session = rt.exec_stream(container_id, ["echo", "streamed"])
    try:
        assert b"".join(data for _, data in session.output()) == b"streamed\n"
        assert session.exit_code() == 0
    finally:
        session.close()


def test_exec_terminal_has_the_size_asked_for(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.long_running("app"))
    session = rt.exec_stream(container_id, ["stty", "size"], tty=True,
                             size=TerminalSize(33, 101))
    try:
        assert b"".join(data for _, data in session.output()) == b"33 101\r\n"
    finally:
        session.close()
    if harness.fake is not None:
        return  # the fake runs a command on all of its stdin at once: no live session
    lines: queue.Queue[bytes | None] = queue.Queue()
    session = rt.exec_stream(container_id, ["sh", "-c", "read go; stty size"],
                             stdin=iter(lines.get, None), tty=True, size=TerminalSize(20, 70))
    try:
        session.resize(TerminalSize(41, 123))
        lines.put(b"go\n")
        lines.put(None)
        assert b"41 123" in b"".join(data for _, data in session.output())
        assert session.exit_code() == 0
    finally:
        session.close()


def test_usage_grows_for_a_busy_container_and_ends_with_it(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox("usage"))
    busy = harness.run(sandbox.uid, harness.busy("busy"))
    idle = harness.run(sandbox.uid, harness.long_running("idle"))
    harness.wait_exited(harness.run(sandbox.uid, harness.exiting("done", code=0, after=0.1)))
    first = rt.container_usage()
    started = time.monotonic()
    time.sleep(2.0)
    second = rt.container_usage()
    elapsed_ns = (time.monotonic() - started) * 1e9
    assert set(second) == {busy, idle}, "only running containers, infra excluded"
    busy_rate = (second[busy].cpu_nanoseconds - first[busy].cpu_nanoseconds) / elapsed_ns
    idle_rate = (second[idle].cpu_nanoseconds - first[idle].cpu_nanoseconds) / elapsed_ns
    assert busy_rate > 0.1, f"a spinning shell used {busy_rate:.2f} cores"
    assert idle_rate < busy_rate / 2
    assert second[busy].memory_bytes > 0
    rt.stop_container(busy, 1)
    assert busy not in rt.container_usage()


def test_exec_needs_a_running_container(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    container_id = harness.run(sandbox.uid, harness.exiting("job", 0, 0.1))
    harness.wait_exited(container_id)
    with pytest.raises(ContainerRuntimeError):
        rt.exec(container_id, ["true"])
    with pytest.raises(ContainerNotFoundError):
        rt.exec("0" * 64, ["true"])


def test_remove_sandbox_removes_its_containers_and_is_idempotent(
        harness: RuntimeHarness) -> None:
    rt = harness.runtime
    keep = rt.prepare_pod_sandbox(harness.sandbox("keep"))
    kept = harness.run(keep.uid, harness.long_running("app"))
    sandbox = rt.prepare_pod_sandbox(harness.sandbox("gone"))
    harness.run(sandbox.uid, harness.long_running("a"))
    harness.run(sandbox.uid, harness.ignoring_sigterm("b"))
    time.sleep(0.3)
    began = time.monotonic()
    rt.remove_pod_sandbox(sandbox.uid, grace_seconds=1)
    assert time.monotonic() - began < 15, "containers are stopped in parallel"
    rt.remove_pod_sandbox(sandbox.uid, grace_seconds=1)
    assert rt.pod_sandbox_status(sandbox.uid) is None
    assert rt.list_containers(sandbox.uid) == []
    assert rt.container_status(kept).state is ContainerState.RUNNING


def test_a_host_port_cannot_be_published_twice(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    port = 20000 + int(harness.sandbox().uid[:4], 16) % 20000
    ports = (PortMapping(container_port=80, host_port=port, host_ip="127.0.0.1"),)
    rt.prepare_pod_sandbox(harness.sandbox("first", port_mappings=ports))
    second = harness.sandbox("second", port_mappings=ports)
    with pytest.raises(ContainerRuntimeError):
        rt.prepare_pod_sandbox(second)
    assert rt.pod_sandbox_status(second.uid) is None, "nothing is left behind on failure"


def test_events_report_create_start_died_remove_in_order(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    stop = threading.Event()
    seen: list[ContainerEvent] = []

    def watch() -> None:
        seen.extend(rt.events(stop))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        time.sleep(0.5)  # the stream is open
        container_id = harness.run(sandbox.uid, harness.exiting("job", code=5, after=0.3))
        harness.wait_exited(container_id)
        rt.remove_container(container_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and EventAction.REMOVED not in [
                e.action for e in seen if e.container_id == container_id]:
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert not watcher.is_alive(), "the stream ends once stop is set"
    mine = [e for e in seen if e.container_id == container_id]
    assert [e.action for e in mine] == [EventAction.CREATED, EventAction.STARTED,
                                        EventAction.DIED, EventAction.REMOVED]
    died = mine[2]
    assert died.exit_code == 5 and died.pod_uid == sandbox.uid and died.name == "job"
