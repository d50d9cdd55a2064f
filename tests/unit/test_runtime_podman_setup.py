"""containers.conf / storage.conf rendering and idempotent writing (no Podman needed)."""

from __future__ import annotations

import resource
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkube.workers.podman_setup import (
    PODMAN_NPROC_CAP,
    HostStoreConfig,
    SetupError,
    Ulimits,
    current_ulimits,
    detect_cgroup_manager,
    render_containers_conf,
    write_host_configs,
    write_system_config,
)


def test_ulimits_come_from_the_current_limits() -> None:
    limits = current_ulimits()
    _, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if nofile_hard != resource.RLIM_INFINITY:
        assert limits.nofile == (nofile_hard, nofile_hard)
    expected_nproc = PODMAN_NPROC_CAP if nproc_hard == resource.RLIM_INFINITY else min(
        nproc_hard, PODMAN_NPROC_CAP)
    assert limits.nproc == (expected_nproc, expected_nproc)


def test_system_config_selects_what_these_machines_need() -> None:
    conf = tomllib.loads(render_containers_conf(Ulimits((1024, 4096), (100, 200))))
    assert conf["containers"]["default_ulimits"] == ["nofile=1024:4096", "nproc=100:200"]
    assert conf["containers"]["log_driver"] == "k8s-file"
    assert conf["engine"]["runtime"] == "runc"
    assert conf["engine"]["cgroup_manager"] == detect_cgroup_manager()
    assert conf["engine"]["events_logger"] == "file"
    assert conf["engine"]["runtimes"]["runc"] == ["/usr/sbin/runc"]
    assert conf["network"]["network_backend"] == "netavark"
    assert "tmp_dir" not in conf["engine"]


def test_cgroup_manager_follows_the_machine(tmp_path: Path) -> None:
    systemd, unified = tmp_path / "run-systemd-system", tmp_path / "cgroup.controllers"
    assert detect_cgroup_manager(systemd, unified) == "cgroupfs", "no systemd, no v2"
    unified.write_text("cpu memory pids\n")
    assert detect_cgroup_manager(systemd, unified) == "cgroupfs", "v2 without systemd"
    systemd.mkdir()
    assert detect_cgroup_manager(systemd, unified) == "systemd"
    unified.unlink()
    assert detect_cgroup_manager(systemd, unified) == "cgroupfs", "systemd on v1/hybrid"
    conf = tomllib.loads(render_containers_conf(Ulimits((1, 1), (1, 1)),
                                                cgroup_manager="systemd"))
    assert conf["engine"]["cgroup_manager"] == "systemd"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rkt-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_host_configs_are_separate_and_idempotent(short_dir: Path) -> None:
    tmp_path = short_dir
    store = HostStoreConfig(tmp_path / "host-a", default_subnet="10.231.7.0/24")
    written = write_host_configs(store, Ulimits((10, 10), (20, 20)))
    assert written == [store.containers_conf, store.storage_conf]
    assert write_host_configs(store, Ulimits((10, 10), (20, 20))) == []
    conf = tomllib.loads(store.containers_conf.read_text())
    assert conf["engine"]["tmp_dir"] == str(tmp_path / "host-a" / "tmp")
    assert conf["network"]["network_config_dir"] == str(tmp_path / "host-a" / "networks")
    assert conf["network"]["default_subnet"] == "10.231.7.0/24"
    storage = tomllib.loads(store.storage_conf.read_text())["storage"]
    assert storage["graphroot"] == str(tmp_path / "host-a" / "storage")
    assert storage["runroot"] == str(tmp_path / "host-a" / "run")
    for directory in (store.graphroot, store.runroot, store.tmp_dir, store.network_config_dir):
        assert directory.is_dir()
    assert store.env() == {"CONTAINERS_CONF": str(store.containers_conf),
                           "CONTAINERS_STORAGE_CONF": str(store.storage_conf)}
    assert write_host_configs(store, Ulimits((5, 5), (20, 20))) == [store.containers_conf]


def test_bad_subnet_is_refused_before_writing(short_dir: Path) -> None:
    store = HostStoreConfig(short_dir / "h", default_subnet="10.300.0.0/24")
    with pytest.raises(SetupError, match="default_subnet"):
        write_host_configs(store)
    assert not store.containers_conf.exists()


def test_long_host_dirs_are_refused(tmp_path: Path) -> None:
    store = HostStoreConfig(Path("/tmp") / ("x" * 60))
    with pytest.raises(SetupError, match="at most 40 characters"):
        write_host_configs(store)
    with pytest.raises(SetupError, match="absolute"):
        write_host_configs(HostStoreConfig(Path("relative/dir")))
    assert not store.host_dir.exists()


def test_system_config_write_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "containers.conf"
    assert write_system_config(path)
    assert not write_system_config(path)
    assert "runc" in path.read_text()
