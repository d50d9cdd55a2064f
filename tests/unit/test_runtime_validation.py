"""Pure parts of the runtime layer: spec checks, cgroup conversions, labels, instances."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest

from raftkube.workers.runtime.interface import (
    LABEL_ATTEMPT,
    LABEL_MEMORY_LIMITED,
    LABEL_NODE,
    LABEL_POD_UID,
    ContainerPort,
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    InvalidSpecError,
    Mount,
    MountKind,
    PodSandboxSpec,
    PortMapping,
    container_labels,
    is_oom_suspected,
    latest_instances,
    previous_instance,
    sandbox_labels,
)
from raftkube.workers.runtime.podman_runtime import _parse_time
from raftkube.workers.runtime.validation import (
    container_argv,
    cpu_quota_us,
    cpu_shares,
    validate_container_spec,
    validate_sandbox_spec,
)

POD = PodSandboxSpec(uid="u1", namespace="default", name="web", node="n1")
IMAGE = "localhost/busybox:latest"


@pytest.mark.parametrize(("changes", "field"), [
    ({"uid": ""}, "sandbox.uid"),
    ({"namespace": "a b"}, "sandbox.namespace"),
    ({"hostname": "Not_A_Label"}, "sandbox.hostname"),
    ({"static_ip": "10.0.0.5"}, "sandbox.static_ip"),
    ({"port_mappings": (PortMapping(0, 80),)}, r"sandbox.port_mappings\[0\].container_port"),
    ({"port_mappings": (PortMapping(80, 8080, "sctp"),)}, r"port_mappings\[0\].protocol"),
    ({"port_mappings": (PortMapping(80, 8080), PortMapping(81, 8080))},
     r"port_mappings\[1\].host_port"),
])
def test_bad_sandbox_specs_name_the_field(changes: dict, field: str) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidSpecError, match=field):
        validate_sandbox_spec(replace(POD, **changes))


def test_good_specs_pass() -> None:
    validate_sandbox_spec(PodSandboxSpec(
        uid="u1", namespace="default", name="web", node="n1", hostname="web-0",
        network="podnet", static_ip="10.244.1.5",
        port_mappings=(PortMapping(80, 8080), PortMapping(80, 8080, "udp"))))
    validate_container_spec(ContainerSpec(
        name="app", image=IMAGE, command=("sh",), env={"A": "1"}, working_dir="/www",
        ports=(ContainerPort(80),), cpu_limit_millicores=500, memory_limit_bytes=64 << 20,
        mounts=(Mount(MountKind.BIND, "/data", "/srv/data", read_only=True),
                Mount(MountKind.TMPFS, "/tmp")), stop_signal=int(signal.SIGINT)))


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": "Upper"}, "container.name"),
    ({"image": " "}, r"container\[app\].image"),
    ({"env": {"A=B": "x"}}, r"container\[app\].env"),
    ({"working_dir": "relative"}, r"container\[app\].working_dir"),
    ({"cpu_limit_millicores": -1}, r"container\[app\].cpu_limit_millicores"),
    ({"memory_limit_bytes": 1024}, r"container\[app\].memory_limit_bytes"),
    ({"stop_signal": 99}, r"container\[app\].stop_signal"),
    ({"mounts": (Mount(MountKind.BIND, "/d", "rel"),)}, r"mounts\[0\].source"),
    ({"mounts": (Mount(MountKind.TMPFS, "d"),)}, r"mounts\[0\].target"),
    ({"mounts": (Mount(MountKind.TMPFS, "/d"), Mount(MountKind.TMPFS, "/d"))},
     r"mounts\[1\].target"),
    ({"ports": (ContainerPort(0),)}, r"ports\[0\].container_port"),
])
def test_bad_container_specs_name_the_field(changes: dict, field: str) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidSpecError, match=field):
        validate_container_spec(replace(ContainerSpec(name="app", image=IMAGE), **changes))


def test_cpu_conversions() -> None:
    assert cpu_quota_us(0) == 0
    assert cpu_quota_us(1000) == 100_000
    assert cpu_quota_us(250) == 25_000
    assert cpu_quota_us(1) == 1_000, "the kernel's minimum quota"
    assert cpu_quota_us(2500) == 250_000
    assert cpu_shares(0) == 0
    assert cpu_shares(1000) == 1024
    assert cpu_shares(1) == 2
    assert cpu_shares(10**9) == 262_144


def test_kubernetes_command_and_args_rules() -> None:
    spec = ContainerSpec(name="a", image=IMAGE)
    assert container_argv(spec) == (None, None)
    assert container_argv(ContainerSpec(name="a", image=IMAGE, command=("echo",))) == (
        ["echo"], [])
    assert container_argv(ContainerSpec(name="a", image=IMAGE, command=("echo",),
                                        args=("x",))) == (["echo"], ["x"])
    assert container_argv(ContainerSpec(name="a", image=IMAGE, args=("x",))) == (None, ["x"])


def test_raftkube_labels_win_over_user_labels() -> None:
    pod = PodSandboxSpec(uid="u1", namespace="default", name="web", node="n1",
                         labels={LABEL_NODE: "spoofed", "team": "a"})
    labels = sandbox_labels(pod)
    assert labels[LABEL_NODE] == "n1" and labels["team"] == "a"
    spec = ContainerSpec(name="app", image=IMAGE, memory_limit_bytes=64 << 20,
                         labels={LABEL_POD_UID: "spoofed", "tier": "web"})
    container = container_labels(pod, spec, 3)
    assert container[LABEL_POD_UID] == "u1" and container["tier"] == "web"
    assert container[LABEL_ATTEMPT] == "3" and container[LABEL_MEMORY_LIMITED] == "true"
    assert container_labels(labels, spec, 3) == container


def _status(name: str, attempt: int, state: ContainerState = ContainerState.EXITED,
            code: int | None = 0, oom: bool = False) -> ContainerStatus:
    return ContainerStatus(
        container_id=f"{name}-{attempt}", name=name, pod_uid="u1", namespace="default",
        pod_name="web", node="n1", attempt=attempt, image=IMAGE, state=state,
        exit_code=code, created_at=None, started_at=None, finished_at=None,
        oom_suspected=oom, stopped_by_runtime=False, init_container=False, labels={})


def test_instances_and_reasons() -> None:
    statuses = [_status("app", 0, code=1), _status("app", 2, ContainerState.RUNNING, None),
                _status("app", 1, code=137, oom=True), _status("side", 0)]
    latest = latest_instances(statuses)
    assert latest[("u1", "app")].attempt == 2 and latest[("u1", "side")].attempt == 0
    previous = previous_instance(statuses, "u1", "app")
    assert previous is not None and previous.attempt == 1
    assert previous.reason == "OOMKilled"
    assert previous_instance(statuses, "u1", "side") is None
    assert statuses[0].reason == "Error" and statuses[3].reason == "Completed"
    assert statuses[1].reason == ""


def test_oom_rule() -> None:
    assert is_oom_suspected(137, memory_limited=True, stopped_by_runtime=False)
    assert not is_oom_suspected(137, memory_limited=False, stopped_by_runtime=False)
    assert not is_oom_suspected(137, memory_limited=True, stopped_by_runtime=True)
    assert not is_oom_suspected(1, memory_limited=True, stopped_by_runtime=False)


def test_podman_times_parse() -> None:
    assert _parse_time("0001-01-01T00:00:00Z") is None
    assert _parse_time("") is None and _parse_time(None) is None
    assert _parse_time("2026-11-26T15:29:47.450812345Z") == datetime(
        2026, 11, 26, 15, 29, 47, 450812, tzinfo=UTC)
    assert _parse_time("2026-11-26T15:29:47.5+01:00") == datetime(
        2026, 11, 26, 14, 29, 47, 500000, tzinfo=UTC)
    assert _parse_time(1795707229) == datetime.fromtimestamp(1795707229, tz=UTC)
