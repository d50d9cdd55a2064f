"""`raftkube worker --config FILE`: build the runtime the config names, run the agent until
SIGTERM/SIGINT, then stop the agent only: pods keep running, and the next agent adopts them.

    podman: PodmanService (started on runtime.podmanSocket unless one answers; with
            runtime.hostDir as its per-node store, inside runtime.netns if set)
            -> PodmanRuntime(node name, socket)
    fake:   FakeRuntime (hollow node: no process runs)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import Client
from raftkube.logging_config import get_logger
from raftkube.workers.agent.agent import Agent, AgentClients
from raftkube.workers.agent.config import WorkerConfig
from raftkube.workers.agent.masters_wait import until_masters_answer
from raftkube.workers.network.network_sync import NetworkSync
from raftkube.workers.network.node_network import NodeNetwork, NodeNetworkConfig
from raftkube.workers.podman_setup import HostStoreConfig, write_host_configs
from raftkube.workers.runtime.fake_runtime import FakeRuntime, FakeRuntimeConfig
from raftkube.workers.runtime.interface import Runtime
from raftkube.workers.runtime.podman_runtime import PodmanRuntime, PodmanRuntimeConfig
from raftkube.workers.runtime.podman_service import PodmanService, PodmanServiceConfig

log = get_logger(__name__)


@dataclass
class BuiltRuntime:
    runtime: Runtime
    version: str
    service: PodmanService | None = None

    def close(self) -> None:
        """Release the runtime; a Podman service we started is stopped (its containers
        keep running under conmon)."""
        self.runtime.close()
        if self.service is not None:
            self.service.stop()


def build_runtime(config: WorkerConfig) -> BuiltRuntime:
    rt = config.runtime
    if rt.kind == "fake":
        fake = FakeRuntime(FakeRuntimeConfig(
            node=config.node_name, pod_cidr=config.pod_cidr or "10.250.0.0/16",
            images=frozenset(rt.fake_images)))
        return BuiltRuntime(fake, "fake://0")
    containers_conf = storage_conf = None
    if rt.host_dir is not None:
        # The host's default Podman network is its pod subnet, so pods get pod IPs.
        store = HostStoreConfig(rt.host_dir, default_subnet=config.pod_cidr)
        write_host_configs(store)
        containers_conf, storage_conf = store.containers_conf, store.storage_conf
    service = None
    if rt.start_service:
        service = PodmanService(PodmanServiceConfig(
            socket_path=rt.podman_socket, containers_conf=containers_conf,
            storage_conf=storage_conf, netns=rt.netns or None, reuse_existing=True))
        service.start()
    runtime = PodmanRuntime(PodmanRuntimeConfig(node=config.node_name,
                                                socket_path=str(rt.podman_socket)))
    return BuiltRuntime(runtime, "podman://4", service)


def start_network(config: WorkerConfig, clients: AgentClients, node_ip: str
                  ) -> NetworkSync | None:
    """The worker's network role from `config.network` (None when not configured)."""
    settings = config.network
    if settings is None:
        return None
    network = NodeNetwork(NodeNetworkConfig(
        node_name=config.node_name, node_address=node_ip,
        cluster_cidr=settings.cluster_cidr, service_cidr=settings.service_cidr,
        cluster_domain=settings.cluster_domain, dns_port=settings.dns_port or None,
        ingress_port=settings.ingress_port or None, proxy_table=settings.proxy_table,
        node_ports_on_localhost=settings.node_ports_on_localhost))
    return NetworkSync(clients.api, network).start()


def ensure_pod_cidr(config: WorkerConfig, client: Client) -> WorkerConfig:
    """`config` with this node's pod subnet: the configured one, else the one the masters
    allocated when the Node was registered (registering a bare Node first if needed)."""
    if config.pod_cidr:
        return config
    try:
        node = client.nodes.get(config.node_name)
    except apierrors.NotFound:
        bare = core_pb2.Node(api_version="v1", kind="Node")
        bare.metadata.name = config.node_name
        bare.metadata.labels["kubernetes.io/hostname"] = config.node_name
        try:
            node = client.create(bare)
        except apierrors.AlreadyExists:
            node = client.nodes.get(config.node_name)
    if not node.spec.pod_cidr:
        log.warning("no pod subnet allocated to this node (the cluster range is used up)",
                    node=config.node_name)
        return config
    log.info("pod subnet allocated by the masters", node=config.node_name,
             pod_cidr=node.spec.pod_cidr)
    return replace(config, pod_cidr=node.spec.pod_cidr)


def run_worker(config: WorkerConfig, stop: threading.Event) -> int:
    """Run until `stop` is set; 0 on a clean stop."""
    clients = AgentClients.from_config(config)
    try:
        config = until_masters_answer(lambda: ensure_pod_cidr(config, clients.api), stop,
                                      "pod subnet of this node")
        built = build_runtime(config)
    except BaseException:
        clients.close()
        raise
    agent = Agent(config, built.runtime, clients, runtime_version=built.version)
    network: NetworkSync | None = None
    try:
        agent.start()
        network = start_network(config, clients, agent.node_ip)
        log.info("worker agent running", node=config.node_name,
                 pods_port=agent.server.port if agent.server else 0,
                 network=network is not None)
        stop.wait()
    finally:
        if network is not None:
            network.stop()
        agent.stop()
        clients.close()
        built.close()
    log.info("worker agent stopped; pods keep running", node=config.node_name)
    return 0
