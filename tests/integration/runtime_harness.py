"""One harness per Runtime implementation, so the same contract tests run against both.

A harness makes specs for a few workloads. Against Podman they are busybox shell commands;
against the fake the same specs are created and the harness sets the fake's behaviour for
that container name, so both runtimes are asked to do the same thing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from dataclasses import replace as _replace

from raftkube.testing.podman_node import ScratchPodmanNode
from raftkube.workers.runtime.fake_runtime import (
    FakeBehavior,
    FakeRuntime,
    FakeRuntimeConfig,
)
from raftkube.workers.runtime.interface import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    PodSandboxSpec,
    Runtime,
)

IMAGE = "localhost/busybox:latest"
# Runs until stopped; exits 0 on SIGTERM within ~0.2 s.
_LOOP = 'trap "exit 0" TERM; while true; do sleep 0.1; done'


@dataclass
class RuntimeHarness:
    runtime: Runtime
    network: str = ""
    fake: FakeRuntime | None = None
    created_pods: list[str] = field(default_factory=list)

    def sandbox(self, name: str = "pod", **changes: object) -> PodSandboxSpec:
        uid = uuid.uuid4().hex
        self.created_pods.append(uid)
        spec = PodSandboxSpec(uid=uid, namespace="ns1", name=name, node=self.runtime.node,
                              network=self.network)
        return _replace(spec, **changes)

    def _spec(self, name: str, script: str, behavior: FakeBehavior,
              **changes: object) -> ContainerSpec:
        if self.fake is not None:
            self.fake.set_behavior(name, behavior)
        return _replace(ContainerSpec(name=name, image=IMAGE, command=("sh", "-c", script)),
                        **changes)

    def long_running(self, name: str, **changes: object) -> ContainerSpec:
        return self._spec(name, _LOOP, FakeBehavior(stop_delay_seconds=0.1), **changes)

    def busy(self, name: str, **changes: object) -> ContainerSpec:
        """Burns a CPU until stopped (the fake: 1000 millicores, 4 MiB)."""
        return self._spec(name, 'trap "exit 0" TERM; while true; do :; done',
                          FakeBehavior(cpu_millicores=1000, memory_bytes=4 << 20), **changes)

    def printing(self, name: str, lines: list[str], **changes: object) -> ContainerSpec:
        script = "; ".join(f"echo {line}" for line in lines) + "; " + _LOOP
        return self._spec(name, script, FakeBehavior(log_lines=tuple(lines)), **changes)

    def exiting(self, name: str, code: int, after: float, lines: tuple[str, ...] = (),
                **changes: object) -> ContainerSpec:
        echo = "".join(f"echo {line}; " for line in lines)
        return self._spec(name, f"{echo}sleep {after}; exit {code}",
                          FakeBehavior(exit_after_seconds=after, exit_code=code,
                                       log_lines=lines), **changes)

    def ignoring_sigterm(self, name: str, **changes: object) -> ContainerSpec:
        return self._spec(name, 'trap "" TERM; while true; do sleep 0.1; done',
                          FakeBehavior(ignore_stop_signal=True), **changes)

    def failing_start(self, name: str) -> ContainerSpec:
        if self.fake is not None:
            self.fake.set_behavior(name, FakeBehavior(fail_start="exec: not found"))
        return ContainerSpec(name=name, image=IMAGE, command=("/no/such/binary",))

    def run(self, pod_uid: str, spec: ContainerSpec, attempt: int = 0) -> str:
        container_id = self.runtime.create_container(pod_uid, spec, attempt)
        self.runtime.start_container(container_id)
        return container_id

    def wait_exited(self, container_id: str, timeout: float = 20.0) -> ContainerStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.runtime.container_status(container_id)
            if status.state is ContainerState.EXITED:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{container_id} still {status.state} after {timeout} s")
            time.sleep(0.05)

    def cleanup(self) -> None:
        for uid in self.created_pods:
            self.runtime.remove_pod_sandbox(uid, grace_seconds=0)


def podman_harness(node: ScratchPodmanNode) -> RuntimeHarness:
    return RuntimeHarness(runtime=node.runtime, network=node.network)


def fake_harness(node_name: str = "fake-node") -> RuntimeHarness:
    fake = FakeRuntime(FakeRuntimeConfig(node=node_name))
    return RuntimeHarness(runtime=fake, fake=fake)
