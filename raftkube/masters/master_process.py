"""One master: the store replica, the API servers, metrics and the leader-only loops.

```
            user API port (TLS + bearer)      node API port (mutual TLS)
                         \\                    /
                  gRPC server: auth interceptor, metrics interceptor
           Resources · Admin · KV · Health · Reflection  (one ObjectApi behind them)
                                    |
                    ObjectStore (secrets encrypted) ── Store (Raft replica, Raft port)
                                    |
              LeaderRunner: bootstrap + controllers, only while this master leads
```

Contract: `start()` returns once every port listens (the store may still be electing a
leader). Health answers SERVING once this master sees a leader and its replica holds the
system namespaces (the first leader's bootstrap), so a caller that waited for SERVING can
use `default` and renew node leases at once. `stop()` stops the loops, the servers
(in-flight calls get a grace period) and the store, in that order. Killing the process at
any point loses nothing acknowledged (the store's guarantee).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from raftkube.api.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    kv_pb2,
    kv_pb2_grpc,
    node_agent_pb2,
    node_agent_pb2_grpc,
    resources_pb2,
    resources_pb2_grpc,
)
from raftkube.consensus.config import StoreConfig
from raftkube.consensus.grpc_service import KVServicer
from raftkube.consensus.store import Store
from raftkube.logging_config import get_logger
from raftkube.masters import system_keys
from raftkube.masters.admin_service import AdminConfig, AdminServicer
from raftkube.masters.bootstrap_loop import SYSTEM_NAMESPACES, BootstrapLoop
from raftkube.masters.config import MasterConfig
from raftkube.masters.controllers.manager import ControllerManager
from raftkube.masters.controllers.registry import controller_factories
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.leader_runner import LeaderRunner, LoopFactory
from raftkube.masters.metrics import MasterMetrics, MetricsInterceptor
from raftkube.masters.node_references import reference_check
from raftkube.masters.node_serving_certs import ServingCertificates, node_address_owners
from raftkube.masters.object_api import ObjectApi
from raftkube.masters.object_store import ObjectStore
from raftkube.masters.pod_streams import PodStreamsProxy
from raftkube.masters.resource_service import ResourcesServicer
from raftkube.masters.secret_encryption import KeyFile, SecretEncryption
from raftkube.metrics_http import MetricsServer
from raftkube.objects import registry
from raftkube.security.audit import AuditConfig, AuditLog
from raftkube.security.cluster_init import load_cluster_file, master_raft_addresses
from raftkube.security.grpc_auth import channel_credentials, current_principal
from raftkube.security.master_security import MasterSecurity, MasterSecurityConfig
from raftkube.security.principal import MASTERS_GROUP
from raftkube.security.rbac import Policy

log = get_logger(__name__)

PUBLIC_METHODS = frozenset({
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/raftkube.api.v1.Admin/LocalStatus",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
})
SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
)


@dataclass(frozen=True)
class MasterAddresses:
    """Where this master listens and how peers reach it."""

    api: str
    node: str
    raft: str
    bind_api: str
    bind_node: str
    bind_raft: str


def _addresses(config: MasterConfig, entry: dict) -> MasterAddresses:
    ip = entry["ip"]
    bind = config.bind_ip or ip

    def join(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    return MasterAddresses(
        api=join(ip, entry["apiPort"]), node=join(ip, entry["nodePort"]),
        raft=join(ip, entry["raftPort"]), bind_api=join(bind, entry["apiPort"]),
        bind_node=join(bind, entry["nodePort"]), bind_raft=join(bind, entry["raftPort"]))


class KVAdminOnly(KVServicer):
    """The raw key-value API, for cluster administrators only."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)

    def _check(self, context: grpc.ServicerContext) -> None:
        try:
            principal = current_principal()
        except LookupError:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "credentials required")
        if MASTERS_GROUP not in principal.groups:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"{principal.describe()} may not use the raw key-value API: "
                          "it is for cluster administrators (group system:masters)")

    def Range(self, request, context):
        self._check(context)
        return super().Range(request, context)

    def Put(self, request, context):
        self._check(context)
        return super().Put(request, context)

    def DeleteRange(self, request, context):
        self._check(context)
        return super().DeleteRange(request, context)

    def Txn(self, request, context):
        self._check(context)
        return super().Txn(request, context)

    def Watch(self, request, context):
        self._check(context)
        yield from super().Watch(request, context)


class Master:
    """A master process's parts, started and stopped together."""

    def __init__(self, config: MasterConfig,
                 extra_loops: Sequence[Callable[[Master], LoopFactory]] = ()) -> None:
        self.config = config
        cluster = load_cluster_file(config.cluster_file)
        entry = next((m for m in cluster.get("masters", []) if m.get("name") == config.name),
                     None)
        if entry is None:
            raise ValueError(f"{config.cluster_file}: no master named {config.name!r}")
        self.addresses = _addresses(config, entry)
        store_overrides = dict(config.store)
        if config.join:
            # Joining a running cluster: its current members are the peers (given by
            # `raftkube join --control-plane`), never the cluster file's list.
            peers = list(store_overrides.pop("peers", []))
            if not peers:
                raise ValueError(f"{config.name}: join: true needs store.peers (the running "
                                 "cluster's Raft members)")
        else:
            peers = [address for name, address in master_raft_addresses(cluster).items()
                     if name != config.name]
            store_overrides.pop("peers", None)
        self._ca_pem = Path(cluster["caFile"]).read_bytes()
        sec_config = MasterSecurityConfig.from_cluster_file(config.cluster_file, config.name)
        sec_config = MasterSecurityConfig(**{**sec_config.__dict__,
                                             "public_methods": PUBLIC_METHODS})
        self.store = Store(StoreConfig(
            raft_address=self.addresses.raft, data_dir=str(config.store_dir),
            cluster_secret=Path(cluster["raftSecretFile"]), peers=peers,
            node_id=config.name, **store_overrides))
        self.tokens = system_keys.TokenTableCache(self.store)
        self._seed_tokens: Callable[[], dict] = lambda: {}
        self.security = MasterSecurity(
            sec_config, token_table=self._token_table, policy=Policy,
            node_references=None)
        self._seed_tokens = self.security.seed_token_table
        self.encryption = SecretEncryption(KeyFile(Path(cluster["encryptionKeyFile"])))
        self.objects = ObjectStore(self.store, self.encryption)
        audit = (AuditLog(AuditConfig(config.audit_log)) if config.audit_log else None)
        self.gatekeeper = Gatekeeper(
            _SecurityAuthorizer(self.security, self._node_references()), audit)
        self.api = ObjectApi(self.objects, self.gatekeeper)
        self.metrics = MasterMetrics()
        self._metrics_server: MetricsServer | None = None
        self._peer_channels: dict[str, grpc.Channel] = {}
        self._peer_lock = threading.Lock()
        self.admin = AdminServicer(
            AdminConfig(config.name, self.addresses.api, self.addresses.raft),
            self.store, self.gatekeeper, self._fetch_peer_status, self.tokens,
            self.encryption,
            ServingCertificates(self.security.node_serving_signer(),
                                node_address_owners(self.objects)))
        self.pod_streams = PodStreamsProxy(self.objects, self.gatekeeper,
                                           self.security.node_agent_trust_pem(),
                                           sec_config.cert_file, sec_config.key_file)
        self.health = health.HealthServicer()
        self._health_stop = threading.Event()
        self._health_thread: threading.Thread | None = None
        factories: list[LoopFactory] = [
            lambda term: BootstrapLoop(self.api, self.store, self._seed_tokens),
            lambda term: ControllerManager(self.api, self.objects, controller_factories(),
                                           term, options=config.controllers)]
        factories += [make(self) for make in extra_loops]
        self.leader_runner = LeaderRunner(factories)
        self.server: grpc.Server | None = None

    # -- wiring helpers -----------------------------------------------------------------
    def _token_table(self) -> dict:
        table = self.tokens.table()
        return dict(table) if table else self._seed_tokens()

    def _node_references(self) -> Callable[[str, str, str, str], bool]:
        pods = registry.by_kind("Pod")
        claims = registry.by_kind("PersistentVolumeClaim")

        def pods_on_node(node: str, namespace: str) -> list:
            items, _, _ = self.objects.list(
                pods, namespace, keep=lambda p: p.spec.node_name == node)
            return items

        def volume_of_claim(namespace: str, claim: str) -> str | None:
            obj = self.objects.get_many(claims, namespace, claim)
            return obj.spec.volume_name if obj is not None else None

        return reference_check(pods_on_node, volume_of_claim)

    def _fetch_peer_status(self, api_address: str) -> admin_pb2.MasterStatus:
        with self._peer_lock:
            channel = self._peer_channels.get(api_address)
            if channel is None:
                channel = grpc.secure_channel(api_address, channel_credentials(self._ca_pem))
                self._peer_channels[api_address] = channel
        return admin_pb2_grpc.AdminStub(channel).LocalStatus(
            admin_pb2.LocalStatusRequest(), timeout=1.0)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the store, the servers, metrics and the leader runner."""
        os.makedirs(self.config.data_dir, mode=0o700, exist_ok=True)
        self.store.start()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="api"),
            interceptors=[MetricsInterceptor(self.metrics), self.security.interceptor()],
            options=SERVER_OPTIONS, maximum_concurrent_rpcs=2000)
        resources_pb2_grpc.add_ResourcesServicer_to_server(ResourcesServicer(self.api), server)
        admin_pb2_grpc.add_AdminServicer_to_server(self.admin, server)
        kv_pb2_grpc.add_KVServicer_to_server(KVAdminOnly(self.store), server)
        node_agent_pb2_grpc.add_NodeAgentServicer_to_server(self.pod_streams, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((
            resources_pb2.DESCRIPTOR.services_by_name["Resources"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
            kv_pb2.DESCRIPTOR.services_by_name["KV"].full_name,
            node_agent_pb2.DESCRIPTOR.services_by_name["NodeAgent"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ), server)
        for bind, creds in ((self.addresses.bind_api, self.security.user_port_credentials()),
                            (self.addresses.bind_node, self.security.node_port_credentials())):
            if server.add_secure_port(bind, creds) == 0:
                self.store.stop()
                raise OSError(f"cannot listen on {bind}")
        server.start()
        self.server = server
        if self.config.metrics_address:
            self._metrics_server = self.metrics.serve(self.config.metrics_address)
        self.leader_runner.attach(self.store)
        self.leader_runner.start()
        self._health_thread = threading.Thread(target=self._watch_health, daemon=True,
                                               name="health")
        self._health_thread.start()
        log.info("master started", name=self.config.name, api=self.addresses.api,
                 node_api=self.addresses.node, raft=self.addresses.raft, pid=os.getpid())

    def _bootstrapped(self) -> bool:
        """Whether the local replica holds every system namespace."""
        namespaces = registry.by_kind("Namespace")
        return all(self.objects.get_many(namespaces, "", name) is not None
                   for name in SYSTEM_NAMESPACES)

    def _watch_health(self) -> None:
        registered = False
        bootstrapped = False
        while not self._health_stop.wait(0.5 if bootstrapped else 0.1):
            try:
                status = self.store.status(with_hash=False)
                # once seen, for good: a namespace deleted later does not unready masters
                bootstrapped = bootstrapped or self._bootstrapped()
            except Exception:
                self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
                continue
            serving = status.leader is not None and bootstrapped
            self.health.set("", health_pb2.HealthCheckResponse.SERVING if serving
                            else health_pb2.HealthCheckResponse.NOT_SERVING)
            self.metrics.is_leader.set(1 if status.is_leader else 0)
            self.metrics.revision.set(status.revision)
            self.metrics.term.set(status.term)
            if serving and not registered:
                try:
                    system_keys.register_master(self.store, self.config.name,
                                                self.addresses.api, self.addresses.raft)
                    registered = True
                except Exception as e:
                    log.debug("master registration deferred", error=str(e))

    def stop(self, grace: float = 2.0) -> None:
        """Stop everything this master started. Idempotent."""
        self._health_stop.set()
        self.leader_runner.stop()
        if self.server is not None:
            self.server.stop(grace).wait(grace + 1)
            self.server = None
        if self._metrics_server is not None:
            self._metrics_server.close()
            self._metrics_server = None
        self.pod_streams.close()
        with self._peer_lock:
            for channel in self._peer_channels.values():
                channel.close()
            self._peer_channels.clear()
        self.store.stop()
        log.info("master stopped", name=self.config.name)


class _SecurityAuthorizer:
    """MasterSecurity's authorizer with the node-reference check of this master."""

    def __init__(self, security: MasterSecurity,
                 references: Callable[[str, str, str, str], bool]) -> None:
        self._security = security
        self._references = references

    def authorize(self, principal, verb, kind, namespace, name, *, subresource=None,
                  object_node=None):
        return self._security.authorize(principal, verb, kind, namespace, name,
                                        subresource=subresource, object_node=object_node,
                                        node_references=self._references)
