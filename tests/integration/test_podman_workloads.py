"""Real workloads on real Podman: what a user of a pod would check."""

from __future__ import annotations

import ipaddress
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from raftkube.testing.podman_node import ScratchPodmanNode
from raftkube.workers.runtime.interface import (
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    Mount,
    MountKind,
    PodSandboxSpec,
    PortMapping,
)
from raftkube.workers.runtime.podman_runtime import PodmanRuntime, PodmanRuntimeConfig
from tests.integration.runtime_harness import IMAGE, RuntimeHarness, podman_harness

pytestmark = [pytest.mark.podman, pytest.mark.timeout(120)]

HTTPD = ContainerSpec(name="web", image=IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/www"))


@pytest.fixture(scope="module")
def node() -> Iterator[ScratchPodmanNode]:
    made = ScratchPodmanNode.start(prefix="rkw")
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def harness(node: ScratchPodmanNode) -> Iterator[RuntimeHarness]:
    made = podman_harness(node)
    try:
        yield made
    finally:
        made.cleanup()
        assert node.runtime.list_containers() == [], "every test cleans up what it made"


def fetch(url: str, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def cgroup_dir(pid: int, controller: str) -> Path:
    """The cgroup v1 directory of `pid` for `controller` (e.g. "cpu", "memory")."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controllers / path.lstrip("/")
    raise AssertionError(f"pid {pid} has no {controller} cgroup")


def test_httpd_answers_on_pod_ip_and_published_port(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    port = 20000 + uuid.uuid4().int % 20000
    sandbox = rt.prepare_pod_sandbox(harness.sandbox(
        "web", port_mappings=(PortMapping(80, port, host_ip="127.0.0.1"),)))
    harness.run(sandbox.uid, HTTPD)
    assert b"raftkube busybox" in fetch(f"http://{sandbox.ip}/")
    assert b"raftkube busybox" in fetch(f"http://127.0.0.1:{port}/index.html")


def test_containers_of_a_pod_share_localhost(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox("pair"))
    harness.run(sandbox.uid, HTTPD)
    sidecar = harness.run(sandbox.uid, harness.long_running("sidecar"))
    deadline = time.monotonic() + 10
    while True:
        got = rt.exec(sidecar, ["wget", "-q", "-O", "-", "http://127.0.0.1:80/"])
        if got.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got.exit_code == 0 and b"raftkube busybox" in got.stdout
    assert rt.exec(sidecar, ["hostname"]).stdout == b"pair\n"


def test_static_ip_dns_and_env(harness: RuntimeHarness, node: ScratchPodmanNode) -> None:
    rt = harness.runtime
    static_ip = str(list(node.subnet.hosts())[200])
    sandbox = rt.prepare_pod_sandbox(harness.sandbox(
        "cfg", hostname="custom-host", static_ip=static_ip, dns_servers=("10.96.0.10",),
        dns_search=("ns1.svc.cluster.local",), dns_options=("ndots:5",)))
    assert sandbox.ip == static_ip and sandbox.network == node.network
    app = harness.run(sandbox.uid, harness.long_running(
        "app", env={"GREETING": "hello world", "EMPTY": ""}, working_dir="/www"))
    env = rt.exec(app, ["env"]).stdout.decode().splitlines()
    assert "GREETING=hello world" in env and "EMPTY=" in env
    assert rt.exec(app, ["pwd"]).stdout == b"/www\n"
    assert rt.exec(app, ["hostname"]).stdout == b"custom-host\n"
    resolv = rt.exec(app, ["cat", "/etc/resolv.conf"]).stdout.decode()
    assert "nameserver 10.96.0.10" in resolv
    assert "search ns1.svc.cluster.local" in resolv and "ndots:5" in resolv
    ip_out = rt.exec(app, ["ip", "-o", "-4", "addr"]).stdout.decode()
    assert static_ip in ip_out
    assert ipaddress.ip_address(sandbox.ip) in node.subnet


def test_command_replaces_entrypoint_and_args_replace_cmd(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    only_command = harness.run(sandbox.uid, ContainerSpec(
        name="cmd", image=IMAGE, command=("echo", "from-command")))
    with_args = harness.run(sandbox.uid, ContainerSpec(
        name="args", image=IMAGE, command=("echo",), args=("a", "b")))
    only_args = harness.run(sandbox.uid, ContainerSpec(
        name="onlyargs", image=IMAGE, args=("echo", "from-args")))
    for container_id, expected in ((only_command, b"from-command\n"),
                                   (with_args, b"a b\n"), (only_args, b"from-args\n")):
        harness.wait_exited(container_id)
        assert b"".join(rt.logs(container_id)) == expected


def test_bind_and_tmpfs_mounts(harness: RuntimeHarness, tmp_path: Path) -> None:
    rt = harness.runtime
    (tmp_path / "config.txt").write_text("from the host\n")
    writable = tmp_path / "out"
    writable.mkdir()
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    app = harness.run(sandbox.uid, harness.long_running("app", mounts=(
        Mount(MountKind.BIND, "/config", str(tmp_path), read_only=True),
        Mount(MountKind.BIND, "/out", str(writable)),
        Mount(MountKind.TMPFS, "/scratch", tmpfs_size_bytes=4 * 1024 * 1024),
    )))
    assert rt.exec(app, ["cat", "/config/config.txt"]).stdout == b"from the host\n"
    assert rt.exec(app, ["touch", "/config/x"]).exit_code != 0, "read-only bind"
    assert rt.exec(app, ["sh", "-c", "echo written > /out/file"]).exit_code == 0
    assert (writable / "file").read_text() == "written\n"
    mounts = rt.exec(app, ["cat", "/proc/mounts"]).stdout.decode().splitlines()
    scratch = [line for line in mounts if line.split()[1] == "/scratch"]
    assert scratch and scratch[0].split()[0] == "tmpfs" and "size=4096k" in scratch[0]
    assert rt.exec(app, ["sh", "-c", "echo x > /scratch/f && cat /scratch/f"]).stdout == b"x\n"


def test_cpu_and_memory_limits_reach_the_cgroup(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    app = harness.run(sandbox.uid, harness.long_running(
        "app", cpu_limit_millicores=250, cpu_request_millicores=500,
        memory_limit_bytes=48 * 1024 * 1024))
    pid = rt._inspect(app)["State"]["Pid"]
    cpu_dir, memory_dir = cgroup_dir(pid, "cpu"), cgroup_dir(pid, "memory")
    assert (cpu_dir / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "25000"
    assert (cpu_dir / "cpu.shares").read_text().strip() == "512"
    assert (memory_dir / "memory.limit_in_bytes").read_text().strip() == str(48 * 1024 * 1024)


def test_memory_hog_is_reported_as_oom(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    hog = harness.run(sandbox.uid, ContainerSpec(
        name="hog", image=IMAGE, memory_limit_bytes=16 * 1024 * 1024,
        command=("sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done")))
    status = harness.wait_exited(hog, timeout=60)
    assert status.exit_code == 137
    assert status.oom_suspected and status.reason == "OOMKilled"
    listed = [c for c in rt.list_containers(sandbox.uid) if c.container_id == hog]
    assert listed[0].oom_suspected, "list_containers reports it too"


def test_killed_process_is_observed_as_an_error_exit(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    app = harness.run(sandbox.uid, harness.long_running("app"))
    os.kill(rt._inspect(app)["State"]["Pid"], signal.SIGKILL)
    status = harness.wait_exited(app)
    assert status.exit_code == 137 and status.reason == "Error"
    assert not status.oom_suspected and not status.stopped_by_runtime


def test_init_process_forwards_the_stop_signal(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    app = harness.run(sandbox.uid, ContainerSpec(
        name="sleeper", image=IMAGE, command=("sleep", "1000"), use_init_process=True))
    began = time.monotonic()
    stopped = rt.stop_container(app, grace_seconds=20)
    assert time.monotonic() - began < 10, "sleep under an init dies on SIGTERM"
    assert stopped.state is ContainerState.EXITED and stopped.exit_code != 137


def test_a_new_runtime_instance_adopts_running_containers(
        harness: RuntimeHarness, node: ScratchPodmanNode) -> None:
    sandbox = harness.runtime.prepare_pod_sandbox(harness.sandbox())
    app = harness.run(sandbox.uid, harness.long_running("app"))
    started = harness.runtime.container_status(app).started_at
    restarted_agent = PodmanRuntime(PodmanRuntimeConfig(
        node=node.node, socket_path=str(node.store.socket_path)))
    try:
        assert [s.uid for s in restarted_agent.list_pod_sandboxes()] == [sandbox.uid]
        adopted = restarted_agent.list_containers(sandbox.uid)
        assert [(c.container_id, c.state) for c in adopted] == [(app, ContainerState.RUNNING)]
        assert restarted_agent.container_status(app).started_at == started
        again = restarted_agent.prepare_pod_sandbox(PodSandboxSpec(
            uid=sandbox.uid, namespace="ns1", name="pod", node=node.node))
        assert again.sandbox_id == sandbox.sandbox_id, "prepare finds the existing sandbox"
    finally:
        restarted_agent.close()
    other_node = PodmanRuntime(PodmanRuntimeConfig(
        node="some-other-node", socket_path=str(node.store.socket_path)))
    try:
        assert other_node.list_containers() == [] and other_node.list_pod_sandboxes() == []
    finally:
        other_node.close()


def test_exec_streams_stdin_chunks_and_times_out(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    sandbox = rt.prepare_pod_sandbox(harness.sandbox())
    app = harness.run(sandbox.uid, harness.long_running("app"))
    session = rt.exec_stream(app, ["sh", "-c", "cat; echo bye >&2"],
                             stdin=iter([b"first\n", b"second\n"]))
    try:
        chunks = list(session.output())
        assert session.exit_code() == 0
    finally:
        session.close()
    assert b"".join(d for s, d in chunks if s == "stdout") == b"first\nsecond\n"
    assert b"".join(d for s, d in chunks if s == "stderr") == b"bye\n"
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        rt.exec(app, ["sleep", "30"], timeout_seconds=0.5)
    assert time.monotonic() - began < 10


def test_unknown_network_is_a_clear_error_and_leaves_nothing(harness: RuntimeHarness) -> None:
    rt = harness.runtime
    spec = harness.sandbox(network="rk-no-such-network")
    with pytest.raises(ContainerRuntimeError, match="rk-no-such-network"):
        rt.prepare_pod_sandbox(spec)
    assert rt.pod_sandbox_status(spec.uid) is None


def test_many_pods_in_parallel_through_one_runtime(harness: RuntimeHarness) -> None:
    rt = harness.runtime

    def start_pod(index: int) -> tuple[str, str]:
        sandbox = rt.prepare_pod_sandbox(harness.sandbox(f"par{index}"))
        return sandbox.uid, harness.run(sandbox.uid, harness.long_running("app"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        started = list(pool.map(start_pod, range(8)))
    states = {s.container_id: s.state for s in rt.list_containers()}
    assert all(states[cid] is ContainerState.RUNNING for _, cid in started)
    ips = {rt.pod_sandbox_status(uid).ip for uid, _ in started}
    assert len(ips) == 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda pair: rt.remove_pod_sandbox(pair[0], grace_seconds=5), started))
    assert rt.list_containers() == []
