"""`raftkube worker setup`, `raftkube image ...` and the Podman service supervisor, for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkube.testing.podman_node import ScratchPodmanNode
from raftkube.workers.images import BUSYBOX_IMAGE, PodmanCli
from raftkube.workers.podman_setup import HostStoreConfig
from raftkube.workers.runtime.interface import (
    ContainerSpec,
    ContainerState,
    PodSandboxSpec,
    RuntimeUnavailableError,
)
from raftkube.workers.runtime.podman_runtime import PodmanRuntime, PodmanRuntimeConfig
from raftkube.workers.runtime.podman_service import (
    PodmanService,
    PodmanServiceConfig,
    PodmanServiceError,
    ping,
)

pytestmark = [pytest.mark.podman, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]


def raftkube(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "raftkube.cli.raftkube_main", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=False,
                          timeout=120)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory for host stores (see MAX_HOST_DIR_LENGTH); pytest's are too long."""
    path = Path(tempfile.mkdtemp(prefix="rkt-", dir="/tmp"))
    try:
        yield path
    finally:
        for host in path.iterdir():
            if (host / "storage.conf").exists():
                PodmanCli(HostStoreConfig(host)).run(["rmi", "-af"], check=False)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host_dirs(short_dir: Path) -> tuple[Path, Path]:
    return short_dir / "host-a", short_dir / "host-b"


def test_setup_build_save_load_between_two_host_stores(host_dirs: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    host_a, host_b = host_dirs
    first = raftkube("worker", "setup", "--no-install", "--host-dir", str(host_a),
                     "--default-subnet", "10.233.1.0/24", "--build-busybox")
    assert first.returncode == 0, first.stderr
    assert "containers.conf" in first.stdout
    again = raftkube("worker", "setup", "--no-install", "--host-dir", str(host_a),
                     "--default-subnet", "10.233.1.0/24")
    assert again.returncode == 0 and "up to date" in again.stdout
    too_long = raftkube("worker", "setup", "--no-install", "--host-dir", "/tmp/" + "x" * 50)
    assert too_long.returncode == 1 and "at most 40 characters" in too_long.stderr
    rebuilt = raftkube("image", "build-busybox", "--store", str(host_a))
    assert rebuilt.returncode == 0 and "up to date" in rebuilt.stdout

    archive = tmp_path / "busybox.tar"
    saved = raftkube("image", "save", BUSYBOX_IMAGE, "-o", str(archive), "--store", str(host_a))
    assert saved.returncode == 0, saved.stderr
    assert archive.stat().st_size > 500_000

    assert raftkube("worker", "setup", "--no-install", "--host-dir", str(host_b),
                    "--default-subnet", "10.233.2.0/24").returncode == 0
    store_b = PodmanCli(HostStoreConfig(host_b))
    assert not store_b.image_exists(BUSYBOX_IMAGE), "stores are separate"
    loaded = raftkube("image", "load", str(archive), "--store", str(host_b))
    assert loaded.returncode == 0 and BUSYBOX_IMAGE in loaded.stdout, loaded.stderr
    ran = store_b.run(["run", "--rm", "--network", "none", BUSYBOX_IMAGE, "sh", "-c",
                       "cat /www/index.html; grep root /etc/passwd; echo $PATH"])
    out = ran.stdout.decode()
    assert "raftkube busybox" in out and "root:x:0:0" in out and "/bin" in out


def test_image_commands_report_bad_input() -> None:
    missing = raftkube("image", "load", "/nonexistent/image.tar")
    assert missing.returncode == 1 and "/nonexistent/image.tar: no such file" in missing.stderr
    no_store = raftkube("image", "build-busybox", "--store", "/nonexistent-host")
    assert no_store.returncode == 1 and "--store /nonexistent-host" in no_store.stderr


def test_service_starts_is_found_again_and_stops(tmp_path: Path) -> None:
    node = ScratchPodmanNode.start(prefix="rks")
    try:
        # A second supervisor on the same socket finds the running service and leaves it.
        finder = PodmanService(PodmanServiceConfig(socket_path=node.store.socket_path))
        finder.start()
        assert not finder.owned and finder.pid is None
        finder.stop()
        assert ping(node.store.socket_path)
        strict = PodmanService(PodmanServiceConfig(socket_path=node.store.socket_path,
                                                   reuse_existing=False))
        with pytest.raises(PodmanServiceError, match="already answers"):
            strict.start()
        pid = node.service.pid
        assert pid is not None
        node.service.stop()
        assert not ping(node.store.socket_path)
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()
        node.service.start()
        assert ping(node.store.socket_path) and node.service.pid != pid
    finally:
        node.stop()


def test_service_reports_a_missing_netns(tmp_path: Path) -> None:
    service = PodmanService(PodmanServiceConfig(socket_path=tmp_path / "p.sock",
                                                netns=f"rk-absent-{uuid.uuid4().hex[:6]}"))
    with pytest.raises(PodmanServiceError, match="does not exist"):
        service.start()


@pytest.mark.netns
def test_service_inside_a_network_namespace(short_dir: Path) -> None:
    """A host in its own netns: its Podman (started through nsenter) puts pods there."""
    netns = f"rk-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    store = HostStoreConfig(short_dir / "host", default_subnet="10.234.9.0/24")
    service = None
    runtime = None
    try:
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"],
                       check=True)
        assert raftkube("worker", "setup", "--no-install", "--host-dir", str(store.host_dir),
                        "--default-subnet", "10.234.9.0/24",
                        "--build-busybox").returncode == 0
        service = PodmanService(PodmanServiceConfig(
            socket_path=store.socket_path, containers_conf=store.containers_conf,
            storage_conf=store.storage_conf, netns=netns, reuse_existing=False))
        service.start()
        runtime = PodmanRuntime(PodmanRuntimeConfig(node=netns,
                                                    socket_path=str(store.socket_path)))
        runtime.ensure_network("hostnet", "10.234.10.0/24", "10.234.10.1", "rkhost0")
        sandbox = runtime.prepare_pod_sandbox(PodSandboxSpec(
            uid="u1", namespace="default", name="web", node=netns, network="hostnet"))
        container_id = runtime.create_container("u1", ContainerSpec(
            name="web", image=BUSYBOX_IMAGE, command=("httpd", "-f", "-p", "80", "-h", "/www")),
            0)
        runtime.start_container(container_id)
        inside = subprocess.run(
            ["nsenter", f"--net=/run/netns/{netns}", "busybox", "wget", "-q", "-O", "-",
             f"http://{sandbox.ip}/"], capture_output=True, text=True, timeout=20, check=False)
        assert "raftkube busybox" in inside.stdout, inside.stderr
        links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
        assert "rkhost0" not in links, "the pod bridge lives in the host's namespace only"
    finally:
        if runtime is not None:
            runtime.remove_pod_sandbox("u1", grace_seconds=0)
            runtime.remove_network("hostnet")
            runtime.close()
        if service is not None:
            service.stop()
        subprocess.run(["ip", "netns", "del", netns], check=False)


def test_runtime_survives_a_service_restart() -> None:
    node = ScratchPodmanNode.start(prefix="rkr")
    try:
        rt = node.runtime
        sandbox = rt.prepare_pod_sandbox(PodSandboxSpec(
            uid="u1", namespace="default", name="web", node=node.node, network=node.network))
        container_id = rt.create_container("u1", ContainerSpec(
            name="app", image=BUSYBOX_IMAGE, command=("sleep", "3600"),
            use_init_process=True), 0)
        rt.start_container(container_id)
        node.service.stop()
        with pytest.raises(RuntimeUnavailableError, match="podman service"):
            rt.list_containers()
        with pytest.raises(RuntimeUnavailableError):
            rt.exec(container_id, ["true"])
        node.service.start()
        statuses = rt.list_containers()
        assert [(s.container_id, s.state) for s in statuses] == [
            (container_id, ContainerState.RUNNING)], "containers outlive the API service"
        assert rt.exec(container_id, ["true"]).exit_code == 0
        assert rt.pod_sandbox_status("u1") is not None
        assert sandbox.ip == rt.pod_sandbox_status("u1").ip
    finally:
        node.stop()
