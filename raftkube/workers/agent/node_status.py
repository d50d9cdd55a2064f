"""The Node object an agent registers, built from the machine and the config (pure apart
from `machine_facts()`, which reads /proc and the OS once).

    machine_facts() -> MachineFacts (cpus, memory, disk, kernel, OS, ids)
    build_node(config, facts, images, ready, now) -> Node (labels, taints, podCIDR,
        capacity/allocatable, addresses, conditions, nodeInfo, images)
    node_status_differs(a, b): whether two statuses differ beyond heartbeat times
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from raftkube.api.v1 import core_pb2, meta_pb2
from raftkube.objects.quantity import parse_quantity
from raftkube.workers.agent.config import WorkerConfig
from raftkube.workers.runtime.interface import ImageInfo

DEFAULT_MAX_PODS = 110
AGENT_VERSION = "raftkube-agent/0.1"


@dataclass(frozen=True)
class MachineFacts:
    cpus: int
    memory_bytes: int
    disk_bytes: int
    kernel: str
    os_image: str
    machine_id: str
    boot_id: str
    architecture: str


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _meminfo_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def machine_facts(data_dir: Path) -> MachineFacts:
    """What this machine has: CPU count, MemTotal, the data dir's filesystem size, ids."""
    probe = Path(data_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return MachineFacts(
        cpus=os.cpu_count() or 1, memory_bytes=_meminfo_bytes(),
        disk_bytes=shutil.disk_usage(probe).total, kernel=platform.release(),
        os_image=_os_image(), machine_id=_read("/etc/machine-id"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"), architecture=arch)


def capacity_of(config: WorkerConfig, facts: MachineFacts) -> dict[str, str]:
    capacity = {"cpu": str(facts.cpus), "memory": f"{facts.memory_bytes // 1024}Ki",
                "pods": str(DEFAULT_MAX_PODS),
                "ephemeral-storage": f"{facts.disk_bytes // 1024}Ki"}
    capacity.update(config.capacity)
    return capacity


def allocatable_of(capacity: dict[str, str], reserved: dict[str, str]) -> dict[str, str]:
    """capacity - reserved (never below zero); cpu in millicores, memory in Ki."""
    out = dict(capacity)
    for resource, amount in reserved.items():
        if resource not in capacity:
            continue
        if resource == "cpu":
            left = parse_quantity(capacity["cpu"]).milli_value() - parse_quantity(
                amount).milli_value()
            out["cpu"] = f"{max(0, left)}m"
        else:
            left = parse_quantity(capacity[resource]).int_value() - parse_quantity(
                amount).int_value()
            out[resource] = f"{max(0, left) // 1024}Ki" if resource != "pods" \
                else str(max(0, left))
    return out


def build_node(config: WorkerConfig, facts: MachineFacts, images: list[ImageInfo],
               node_ip: str, ready: bool, now: str, runtime_version: str,
               agent_port: int = 0) -> core_pb2.Node:
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = config.node_name
    node.metadata.labels.update({"kubernetes.io/hostname": config.node_name,
                                 "kubernetes.io/os": "linux",
                                 "kubernetes.io/arch": facts.architecture})
    node.metadata.labels.update(config.labels)
    if config.pod_cidr:
        node.spec.pod_cidr = config.pod_cidr
        node.spec.pod_cidrs.append(config.pod_cidr)
    for taint in config.taints:
        node.spec.taints.add(key=taint["key"], value=taint.get("value", ""),
                             effect=taint["effect"])
    capacity = capacity_of(config, facts)
    node.status.capacity.update(capacity)
    node.status.allocatable.update(allocatable_of(capacity, config.reserved))
    if node_ip:
        node.status.addresses.add(type="InternalIP", address=node_ip)
    node.status.addresses.add(type="Hostname", address=config.node_name)
    node.status.conditions.append(meta_pb2.Condition(
        type="Ready", status="True" if ready else "False",
        reason="KubeletReady" if ready else "KubeletNotReady",
        message="agent is posting ready status" if ready else "container runtime is down",
        last_heartbeat_time=now, last_transition_time=now))
    for kind, reason in (("MemoryPressure", "KubeletHasSufficientMemory"),
                         ("DiskPressure", "KubeletHasNoDiskPressure"),
                         ("PIDPressure", "KubeletHasSufficientPID")):
        node.status.conditions.append(meta_pb2.Condition(
            type=kind, status="False", reason=reason, last_heartbeat_time=now,
            last_transition_time=now))
    for image in images:
        node.status.images.add(names=list(image.names), size_bytes=image.size_bytes)
    info = node.status.node_info
    info.machine_id, info.boot_id = facts.machine_id, facts.boot_id
    info.system_uuid = facts.machine_id
    info.kernel_version, info.os_image = facts.kernel, facts.os_image
    info.container_runtime_version = runtime_version
    info.kubelet_version = AGENT_VERSION
    info.kube_proxy_version = AGENT_VERSION
    info.operating_system, info.architecture = "linux", facts.architecture
    if agent_port:
        node.status.daemon_endpoints.kubelet_endpoint.port = agent_port
    return node


def _without_times(status: core_pb2.NodeStatus) -> bytes:
    copy = core_pb2.NodeStatus()
    copy.CopyFrom(status)
    for condition in copy.conditions:
        condition.last_heartbeat_time = ""
        condition.last_transition_time = ""
    return copy.SerializeToString(deterministic=True)


def node_status_differs(a: core_pb2.NodeStatus, b: core_pb2.NodeStatus) -> bool:
    """Whether the statuses differ in anything but heartbeat/transition times."""
    return _without_times(a) != _without_times(b)


def carry_transition_times(new: core_pb2.NodeStatus, old: core_pb2.NodeStatus) -> None:
    """Keep lastTransitionTime of conditions whose status did not change."""
    previous = {c.type: c for c in old.conditions}
    for condition in new.conditions:
        before = previous.get(condition.type)
        if before is not None and before.status == condition.status and \
                before.last_transition_time:
            condition.last_transition_time = before.last_transition_time
