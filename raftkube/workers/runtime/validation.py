"""Pure checks and conversions of runtime specs, shared by every Runtime implementation.

Contract: `validate_*` raise InvalidSpecError naming the field path and the reason, and
return nothing; they never change anything. The conversions are total on valid specs.
"""

from __future__ import annotations

import re
import signal

from raftkube.workers.runtime.interface import (
    ContainerSpec,
    InvalidSpecError,
    MountKind,
    PodSandboxSpec,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VALID_SIGNALS = {int(s) for s in signal.Signals}

# CFS period used for CPU limits (the Kubernetes default: 100 ms).
CFS_PERIOD_US = 100_000
# Smallest quota the kernel accepts (1 ms).
MIN_CFS_QUOTA_US = 1_000
# cgroup v1 cpu.shares bounds.
MIN_CPU_SHARES = 2
MAX_CPU_SHARES = 262_144


def validate_sandbox_spec(spec: PodSandboxSpec) -> None:
    """Raise InvalidSpecError on the first invalid field of `spec`."""
    for field_name in ("uid", "namespace", "name", "node"):
        value = getattr(spec, field_name)
        if not value or not _NAME_PART.match(value):
            raise InvalidSpecError(
                f"sandbox.{field_name}: {value!r} must be non-empty letters, digits, '_.-'")
    if spec.hostname and not _DNS_LABEL.match(spec.hostname):
        raise InvalidSpecError(f"sandbox.hostname: {spec.hostname!r} is not a DNS label")
    if spec.static_ip and not spec.network:
        raise InvalidSpecError("sandbox.static_ip: needs sandbox.network to be set")
    seen: set[tuple[str, int, str]] = set()
    for index, port in enumerate(spec.port_mappings):
        path = f"sandbox.port_mappings[{index}]"
        for attr in ("container_port", "host_port"):
            value = getattr(port, attr)
            if not 1 <= value <= 65535:
                raise InvalidSpecError(f"{path}.{attr}: {value} is not in 1-65535")
        if port.protocol not in ("tcp", "udp"):
            raise InvalidSpecError(f"{path}.protocol: {port.protocol!r} is not tcp or udp")
        key = (port.host_ip, port.host_port, port.protocol)
        if key in seen:
            raise InvalidSpecError(f"{path}.host_port: {port.host_port}/{port.protocol} "
                                   "is published twice")
        seen.add(key)


def validate_container_spec(spec: ContainerSpec) -> None:
    """Raise InvalidSpecError on the first invalid field of `spec`."""
    if not _DNS_LABEL.match(spec.name):
        raise InvalidSpecError(f"container.name: {spec.name!r} is not a DNS label")
    path = f"container[{spec.name}]"
    if not spec.image.strip():
        raise InvalidSpecError(f"{path}.image: must not be empty")
    for key in spec.env:
        if not key or "=" in key or "\0" in key:
            raise InvalidSpecError(f"{path}.env: {key!r} is not a valid variable name")
    if spec.working_dir and not spec.working_dir.startswith("/"):
        raise InvalidSpecError(f"{path}.working_dir: {spec.working_dir!r} is not absolute")
    for attr in ("cpu_limit_millicores", "cpu_request_millicores", "memory_limit_bytes"):
        if getattr(spec, attr) < 0:
            raise InvalidSpecError(f"{path}.{attr}: must not be negative")
    if 0 < spec.memory_limit_bytes < 4 * 1024 * 1024:
        raise InvalidSpecError(f"{path}.memory_limit_bytes: {spec.memory_limit_bytes} is "
                               "below the 4 MiB minimum")
    if spec.stop_signal not in _VALID_SIGNALS:
        raise InvalidSpecError(f"{path}.stop_signal: {spec.stop_signal} is not a signal")
    targets: set[str] = set()
    for index, mount in enumerate(spec.mounts):
        mpath = f"{path}.mounts[{index}]"
        if not mount.target.startswith("/"):
            raise InvalidSpecError(f"{mpath}.target: {mount.target!r} is not absolute")
        if mount.target in targets:
            raise InvalidSpecError(f"{mpath}.target: {mount.target!r} is mounted twice")
        targets.add(mount.target)
        if mount.kind is MountKind.BIND and not mount.source.startswith("/"):
            raise InvalidSpecError(f"{mpath}.source: {mount.source!r} is not an absolute "
                                   "host path")
        if mount.tmpfs_size_bytes < 0:
            raise InvalidSpecError(f"{mpath}.tmpfs_size_bytes: must not be negative")
    for index, port in enumerate(spec.ports):
        if not 1 <= port.container_port <= 65535:
            raise InvalidSpecError(f"{path}.ports[{index}].container_port: "
                                   f"{port.container_port} is not in 1-65535")


def cpu_quota_us(cpu_limit_millicores: int) -> int:
    """CFS quota (per CFS_PERIOD_US) for a CPU limit; 0 when there is no limit."""
    if cpu_limit_millicores <= 0:
        return 0
    return max(MIN_CFS_QUOTA_US, cpu_limit_millicores * CFS_PERIOD_US // 1000)


def cpu_shares(cpu_request_millicores: int) -> int:
    """cgroup cpu.shares for a CPU request (1000m = 1024 shares); 0 = runtime default."""
    if cpu_request_millicores <= 0:
        return 0
    return min(MAX_CPU_SHARES, max(MIN_CPU_SHARES, cpu_request_millicores * 1024 // 1000))


def container_argv(spec: ContainerSpec) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, cmd) overrides for the image: None keeps the image's value.

    Kubernetes rules: `command` replaces the entrypoint and drops the image's cmd; `args`
    replace the cmd.
    """
    if spec.command:
        return list(spec.command), list(spec.args)
    if spec.args:
        return None, list(spec.args)
    return None, None
