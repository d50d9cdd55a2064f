"""Makes Podman work on a worker: packages, containers.conf, and per-host stores.

On these machines Podman fails out of the box (crun refuses hybrid cgroups; the default
rlimits cannot be raised), so a worker writes a containers.conf that selects runc,
cgroupfs, k8s-file logs, file events and netavark, with default ulimits read from the
process's current limits at run time.

Several "hosts" on one machine each run their own Podman with its own storage, run dir,
temp dir, network configs and default subnet: `write_host_configs(host_dir, ...)` writes a
containers.conf + storage.conf pair under `host_dir` for CONTAINERS_CONF /
CONTAINERS_STORAGE_CONF.

Contract: every function is idempotent; files are rewritten only when their content
changes (atomically, through a temporary file and rename).
"""

from __future__ import annotations

import ipaddress
import os
import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Podman refuses an NPROC ulimit above this.
PODMAN_NPROC_CAP = 32768
# Debian packages a worker needs to run containers. catatonit is only recommended by podman,
# but without it no pod can start (podman builds its pause image from it).
WORKER_PACKAGES: tuple[str, ...] = (
    "podman", "runc", "conmon", "catatonit", "netavark", "aardvark-dns", "busybox-static",
    "iptables",
)
SYSTEM_CONTAINERS_CONF = Path("/etc/containers/containers.conf")
# Longest per-host directory path accepted. Measured with Podman 4.3 / conmon 2.1.6: from
# 48 characters on, conmon no longer reports container exits and every exit waits out
# Podman's 20 s conmon timeout (46 still worked); keep a margin.
MAX_HOST_DIR_LENGTH = 40


class SetupError(Exception):
    """Setup could not complete; the message names the step and the cause."""


@dataclass(frozen=True)
class Ulimits:
    """Soft:hard limits given to containers by default."""

    nofile: tuple[int, int]
    nproc: tuple[int, int]


@dataclass(frozen=True)
class HostStoreConfig:
    """Where one host's Podman keeps its state (for several hosts on one machine).

    host_dir: root of everything below; created if missing; an absolute path of at most
        MAX_HOST_DIR_LENGTH characters (longer ones make Podman miss container exits).
    default_subnet: subnet of this host's default "podman" network, e.g. "10.88.3.0/24";
        must not overlap with other hosts' pod subnets.
    runtime_path: the OCI runtime binary.
    """

    host_dir: Path
    default_subnet: str = ""
    runtime_path: str = "/usr/sbin/runc"

    @property
    def containers_conf(self) -> Path:
        return self.host_dir / "containers.conf"

    @property
    def storage_conf(self) -> Path:
        return self.host_dir / "storage.conf"

    @property
    def graphroot(self) -> Path:
        return self.host_dir / "storage"

    @property
    def runroot(self) -> Path:
        return self.host_dir / "run"

    @property
    def tmp_dir(self) -> Path:
        return self.host_dir / "tmp"

    @property
    def network_config_dir(self) -> Path:
        return self.host_dir / "networks"

    @property
    def socket_path(self) -> Path:
        return self.host_dir / "podman.sock"

    def env(self) -> dict[str, str]:
        """Environment variables that point Podman at this store."""
        return {"CONTAINERS_CONF": str(self.containers_conf),
                "CONTAINERS_STORAGE_CONF": str(self.storage_conf)}


def current_ulimits() -> Ulimits:
    """Default container ulimits at or below this process's limits (so they can be set
    without CAP_SYS_RESOURCE); NPROC is capped at Podman's maximum."""
    return Ulimits(nofile=_bounded(resource.RLIMIT_NOFILE, None),
                   nproc=_bounded(resource.RLIMIT_NPROC, PODMAN_NPROC_CAP))


def _bounded(which: int, cap: int | None) -> tuple[int, int]:
    _soft, hard = resource.getrlimit(which)
    if hard == resource.RLIM_INFINITY:
        hard = cap if cap is not None else 1_048_576
    if cap is not None:
        hard = min(hard, cap)
    # The container gets soft == hard: the most it may have, never more than we have.
    return hard, hard


def detect_cgroup_manager(systemd_dir: Path = Path("/run/systemd/system"),
                          unified_marker: Path = Path("/sys/fs/cgroup/cgroup.controllers")
                          ) -> str:
    """"systemd" on a machine booted with systemd and the unified cgroup v2 hierarchy (there,
    runc refuses pod sandboxes under cgroupfs: "error reopening /dev/null ... operation not
    permitted", seen on Debian 12 VMs), else "cgroupfs" (no systemd, or cgroups v1/hybrid as
    on the project's development machines)."""
    return "systemd" if systemd_dir.is_dir() and unified_marker.exists() else "cgroupfs"


def render_containers_conf(ulimits: Ulimits, store: HostStoreConfig | None = None,
                           runtime_path: str = "/usr/sbin/runc",
                           cgroup_manager: str | None = None) -> str:
    """The containers.conf text: runc, the cgroup manager (default: detect_cgroup_manager()),
    k8s-file logs, file events, netavark; with `store`, also that host's temp dir, network
    config dir and default subnet."""
    runtime = store.runtime_path if store else runtime_path
    manager = cgroup_manager or detect_cgroup_manager()
    lines = [
        "# Written by `raftkube worker setup`; rewritten when the limits change.",
        "[containers]",
        f'default_ulimits = ["nofile={ulimits.nofile[0]}:{ulimits.nofile[1]}", '
        f'"nproc={ulimits.nproc[0]}:{ulimits.nproc[1]}"]',
        'log_driver = "k8s-file"',
        "",
        "[engine]",
        'runtime = "runc"',
        f'cgroup_manager = "{manager}"',
        'events_logger = "file"',
    ]
    if store:
        lines.append(f'tmp_dir = "{store.tmp_dir}"')
    lines += ["", "[engine.runtimes]", f'runc = ["{runtime}"]', "", "[network]",
              'network_backend = "netavark"']
    if store:
        lines.append(f'network_config_dir = "{store.network_config_dir}"')
        if store.default_subnet:
            lines.append(f'default_subnet = "{store.default_subnet}"')
    return "\n".join(lines) + "\n"


def render_storage_conf(store: HostStoreConfig) -> str:
    """The storage.conf text of one host's store (overlay driver)."""
    return ("# Written by `raftkube worker setup --host-dir`.\n[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{store.graphroot}"\n'
            f'runroot = "{store.runroot}"\n')


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` to `path` atomically unless it already holds it; True when written."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def write_host_configs(store: HostStoreConfig, ulimits: Ulimits | None = None) -> list[Path]:
    """Create the host's directories and write its containers.conf and storage.conf.
    Returns the files that changed (empty when all were up to date)."""
    if not store.host_dir.is_absolute() or len(str(store.host_dir)) > MAX_HOST_DIR_LENGTH:
        raise SetupError(f"host_dir: {str(store.host_dir)!r} must be an absolute path of at "
                         f"most {MAX_HOST_DIR_LENGTH} characters (with longer paths conmon "
                         "misses container exits and each exit stalls 20 s)")
    if store.default_subnet:
        try:
            ipaddress.ip_network(store.default_subnet)
        except ValueError as exc:
            raise SetupError(f"default_subnet: {store.default_subnet!r}: {exc}") from exc
    for directory in (store.graphroot, store.runroot, store.tmp_dir, store.network_config_dir):
        directory.mkdir(parents=True, exist_ok=True)
    limits = ulimits or current_ulimits()
    changed = []
    if write_if_changed(store.containers_conf, render_containers_conf(limits, store)):
        changed.append(store.containers_conf)
    if write_if_changed(store.storage_conf, render_storage_conf(store)):
        changed.append(store.storage_conf)
    return changed


def write_system_config(path: Path = SYSTEM_CONTAINERS_CONF,
                        ulimits: Ulimits | None = None) -> bool:
    """Write the machine-wide containers.conf; True when it changed."""
    return write_if_changed(path, render_containers_conf(ulimits or current_ulimits()))


def missing_packages(packages: Sequence[str] = WORKER_PACKAGES) -> list[str]:
    """The Debian packages among `packages` that are not installed."""
    missing = []
    for package in packages:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                capture_output=True, text=True, check=False)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def install_packages(packages: Sequence[str]) -> None:
    """apt-get install `packages` (no-op when empty). Raises SetupError on failure."""
    if not packages:
        return
    if shutil.which("apt-get") is None:
        raise SetupError(f"packages {', '.join(packages)} are missing and apt-get is absent")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SetupError(f"{' '.join(argv[:2])} failed ({result.returncode}): "
                             f"{result.stderr.strip()[-500:]}")
