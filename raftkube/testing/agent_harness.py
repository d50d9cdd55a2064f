"""An agent under test: real masters (MasterCluster), a scratch Podman node, and an Agent
in this process, with helpers to make pods and wait for their status.

    with AgentHarness.start(workers=("w1",)) as h:
        h.start_agent("w1")
        pod = h.create_pod(h.pod("web", containers=[...]))
        h.wait_pod(pod, lambda p: p.status.phase == "Running")

Every namespace this harness creates starts with a random prefix and is deleted again;
the Podman store, masters and data dirs go away with `close()`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from raftkube import apierrors
from raftkube.api.v1 import core_pb2, node_agent_pb2_grpc, pod_pb2
from raftkube.client import Client
from raftkube.security import pki
from raftkube.security.grpc_auth import channel_credentials
from raftkube.testing.master_cluster import MasterCluster
from raftkube.testing.podman_node import ScratchPodmanNode
from raftkube.workers.agent.agent import Agent, AgentClients
from raftkube.workers.agent.config import (
    BackoffConfig,
    NodeAgentServiceConfig,
    ResolvConfig,
    RuntimeConfig,
    WorkerConfig,
)
from raftkube.workers.agent.fence_stamp import stop_watchdog
from raftkube.workers.runtime.interface import Runtime

IMAGE = "localhost/busybox:latest"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class AgentHarness:
    cluster: MasterCluster
    podman: ScratchPodmanNode | None
    root: Path
    admin: Client
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    agents: dict[str, Agent] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    _channels: list[grpc.Channel] = field(default_factory=list)
    _overrides: dict[str, tuple[Runtime | None, dict]] = field(default_factory=dict)

    @classmethod
    def start(cls, workers: tuple[str, ...] = ("w1",), podman: bool = True) -> AgentHarness:
        cluster = MasterCluster(3, workers=workers)
        node = None
        try:
            cluster.start()
            node = ScratchPodmanNode.start(prefix="rka") if podman else None
            admin = Client.from_config(cluster.layout.admin_config)
        except BaseException:
            if node is not None:
                node.stop()
            cluster.close()
            raise
        return cls(cluster, node, Path(tempfile.mkdtemp(prefix="rk-agent-")), admin)

    def worker_config(self, name: str, **overrides: object) -> WorkerConfig:
        assert self.podman is not None
        base = WorkerConfig(
            node_name=name, client_config=self.cluster.layout.worker_config(name),
            runtime=RuntimeConfig(kind="podman", podman_socket=self.podman.store.socket_path,
                                  network=self.podman.network),
            node_ip="127.0.0.1",
            data_dir=self.root / name, lease_interval_seconds=0.5,
            resolv_conf=ResolvConfig(nameservers=("10.96.0.10",),
                                     searches=("svc.cluster.local",)),
            backoff=BackoffConfig(initial_seconds=1.0, max_seconds=4.0),
            relist_interval_seconds=0.3, config_refresh_seconds=2.0,
            fence_watchdog=False)  # on where a test asks for it (it outlives the agent)
        return WorkerConfig(**{**base.__dict__, **overrides})  # type: ignore[arg-type]

    def serving_config(self, name: str) -> NodeAgentServiceConfig:
        """A node agent service on 127.0.0.1 (random port) with a CA-signed certificate."""
        layout = self.cluster.layout
        ca = pki.load_key_pair(layout.ca_cert, layout.ca_key)
        # The node's name too: the masters' proxy checks it (ssl_target_name_override).
        pair = pki.issue_server_cert(ca, f"node-{name}", ips=["127.0.0.1"], dns_names=[name])
        cert, key = self.root / f"{name}-serving.crt", self.root / f"{name}-serving.key"
        pki.write_key_pair(pair, cert, key)
        return NodeAgentServiceConfig(listen="127.0.0.1:0", cert_file=cert, key_file=key,
                                      ca_file=layout.ca_cert)

    def node_agent_stub(self, agent: Agent, admin: bool = True,
                        ) -> node_agent_pb2_grpc.NodeAgentStub:
        """A NodeAgent stub with the admin's client certificate (or the node's own)."""
        layout = self.cluster.layout
        cert = layout.admin_cert if admin else layout.worker_cert(agent.config.node_name)
        key = layout.admin_key if admin else layout.worker_key(agent.config.node_name)
        creds = channel_credentials(layout.ca_cert.read_bytes(),
                                    client_cert_pem=cert.read_bytes(),
                                    client_key_pem=key.read_bytes())
        assert agent.server is not None
        channel = grpc.secure_channel(f"127.0.0.1:{agent.server.port}", creds)
        self._channels.append(channel)
        return node_agent_pb2_grpc.NodeAgentStub(channel)

    def start_agent(self, name: str = "w1", runtime: Runtime | None = None,
                    **overrides: object) -> Agent:
        self._overrides[name] = (runtime, overrides)
        config = self.worker_config(name, **overrides)
        rt = runtime if runtime is not None else self.podman.runtime  # type: ignore[union-attr]
        agent = Agent(config, rt, AgentClients.from_config(config))
        agent.start()
        self.agents[name] = agent
        return agent

    def restart_agent(self, name: str = "w1") -> Agent:
        """Start node `name`'s agent again with the settings of its last start."""
        runtime, overrides = self._overrides[name]
        return self.start_agent(name, runtime, **overrides)

    def stop_agent(self, name: str = "w1") -> None:
        agent = self.agents.pop(name)
        agent.stop()
        agent.clients.close()

    # -- objects ---------------------------------------------------------------------------
    def namespace(self) -> str:
        name = f"t{self.tag}-{len(self.namespaces)}"
        ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
        ns.metadata.name = name
        self.admin.create(ns)
        self.namespaces.append(name)
        return name

    @staticmethod
    def pod(name: str, namespace: str, node: str = "w1",
            containers: list[pod_pb2.Container] | None = None, **spec: object) -> pod_pb2.Pod:
        pod = pod_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name = name
        pod.metadata.namespace = namespace
        pod.spec.node_name = node
        for c in containers or [container("main", ["sleep", "3600"])]:
            pod.spec.containers.append(c)
        for key, value in spec.items():
            setattr(pod.spec, key, value)
        return pod

    def create(self, obj):
        return self.admin.create(obj)

    def get_pod(self, pod: pod_pb2.Pod) -> pod_pb2.Pod:
        return self.admin.pods.get(pod.metadata.name, pod.metadata.namespace)

    def wait_pod(self, pod: pod_pb2.Pod, predicate: Callable[[pod_pb2.Pod], bool],
                 timeout: float = 60.0, what: str = "") -> pod_pb2.Pod:
        deadline = time.monotonic() + timeout
        current = pod
        while True:
            with contextlib.suppress(apierrors.NotFound):
                current = self.get_pod(pod)
                if predicate(current):
                    return current
            if time.monotonic() > deadline:
                raise AssertionError(f"pod {pod.metadata.name}: timed out waiting for "
                                     f"{what or predicate}; last status:\n{current.status}")
            time.sleep(0.1)

    def wait_gone(self, pod: pod_pb2.Pod, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get_pod(pod)
            except apierrors.NotFound:
                return
            time.sleep(0.1)
        raise AssertionError(f"pod {pod.metadata.name} still exists after {timeout}s")

    def events(self, pod: pod_pb2.Pod) -> list[core_pb2.Event]:
        return [e for e in self.admin.list("Event", pod.metadata.namespace)
                if e.involved_object.uid == pod.metadata.uid]

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        for name in list(self.agents):
            with contextlib.suppress(Exception):
                self.stop_agent(name)
        for fence in self.root.glob("*/fence"):
            stop_watchdog(fence)
        if self.podman is not None:
            self.podman.stop()
        self.admin.close()
        self.cluster.close()
        for child in sorted(self.root.rglob("*"), key=lambda p: len(str(p)), reverse=True):
            if child.is_mount():
                import subprocess
                subprocess.run(["umount", "-l", str(child)], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> AgentHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def container(name: str, command: list[str], image: str = IMAGE, **fields: object,
              ) -> pod_pb2.Container:
    c = pod_pb2.Container(name=name, image=image, command=command)
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(c, key).extend(value)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(c, key).CopyFrom(value)
        else:
            setattr(c, key, value)
    return c


def condition(pod: pod_pb2.Pod, kind: str) -> str:
    return next((c.status for c in pod.status.conditions if c.type == kind), "")


def container_state(pod: pod_pb2.Pod, name: str) -> pod_pb2.ContainerStatus:
    """The status of container `name` (an empty one while none is reported)."""
    for s in [*pod.status.container_statuses, *pod.status.init_container_statuses]:
        if s.name == name:
            return s
    return pod_pb2.ContainerStatus()
