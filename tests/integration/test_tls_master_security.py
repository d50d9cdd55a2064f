"""A master's security end to end: init output -> MasterSecurity -> a real gRPC server
(health service) on a TLS user port and a mutual-TLS node port, authorizing each call
and auditing denials."""

from __future__ import annotations

import json
import os
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from raftkube.security import tokens
from raftkube.security.client_config import load_client_config
from raftkube.security.cluster_init import InitConfig, MasterSpec, init_cluster
from raftkube.security.grpc_auth import channel_credentials, current_principal, secure_channel
from raftkube.security.master_security import (
    MasterSecurity,
    MasterSecurityConfig,
    SecurityConfigError,
    load_raft_secret,
)
from raftkube.testing.ports import free_ports

T_NOW = 1_700_000_000.0


class GuardedHealth(health.HealthServicer):
    """Check(service=NAME) is treated as `get nodes NAME`; Watch as `update nodes NAME`."""

    def __init__(self, sec: MasterSecurity) -> None:
        super().__init__()
        self.sec = sec

    def Check(self, request, context):
        principal = current_principal()
        self.sec.enforce(context, principal, "get", "Node", "", request.service)
        self.sec.record(principal, "get", "Node", "", request.service, code="OK")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    def Watch(self, request, context, send_response_callback=None):
        principal = current_principal()
        self.sec.enforce(context, principal, "update", "Node", "", request.service)
        self.sec.record(principal, "update", "Node", "", request.service, code="OK")
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def master(tmp_path):
    api, raft, node = free_ports(3)
    result = init_cluster(InitConfig(
        directory=tmp_path / "cluster",
        masters=(MasterSpec("m1", "127.0.0.1", api_port=api, raft_port=raft,
                            node_port=node),),
        workers=("w1",)))
    config = MasterSecurityConfig.from_cluster_file(
        result.layout.cluster_file, "m1", audit_path=tmp_path / "audit.log")
    table = dict(tokens.loads(result.layout.token_table.read_text()))
    table, bob = tokens.issue_token(table, user="bob", now=T_NOW)
    sec = MasterSecurity(config, token_table=lambda: table)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         interceptors=[sec.interceptor()])
    health_pb2_grpc.add_HealthServicer_to_server(GuardedHealth(sec), server)
    server.add_secure_port(f"127.0.0.1:{api}", sec.user_port_credentials())
    server.add_secure_port(f"127.0.0.1:{node}", sec.node_port_credentials())
    server.start()
    try:
        yield result.layout, sec, bob, tmp_path / "audit.log"
    finally:
        server.stop(grace=None)


def _call(target, creds, method: str, service: str):
    with secure_channel(target, creds) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        req = health_pb2.HealthCheckRequest(service=service)
        if method == "check":
            return stub.Check(req, timeout=10)
        return next(stub.Watch(req, timeout=10))


def test_authorization_and_audit_through_a_real_server(master) -> None:
    layout, _sec, bob, audit = master
    admin = load_client_config(layout.admin_config)
    worker = load_client_config(layout.worker_config("w1"))
    user_port, node_port = admin.masters[0], worker.masters[0]
    bob_creds = channel_credentials(layout.ca_cert.read_bytes(), token=bob)

    assert _call(user_port, admin.credentials(), "watch", "w9")  # admin updates any node
    assert _call(node_port, worker.credentials(), "check", "w2")  # nodes read nodes
    assert _call(node_port, worker.credentials(), "watch", "w1")  # its own Node
    with pytest.raises(grpc.RpcError) as info:
        _call(node_port, worker.credentials(), "watch", "w2")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'only their own Node "w1"' in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        _call(user_port, bob_creds, "check", "w1")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details().startswith(
        'user "bob" cannot get nodes at the cluster scope: no role binding')

    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [(x["user"], x["verb"], x["name"], x["decision"], x["code"]) for x in lines] == [
        ("admin", "update", "w9", "allow", "OK"),
        ("system:node:w1", "update", "w1", "allow", "OK"),
        ("system:node:w1", "update", "w2", "deny", "PERMISSION_DENIED"),
        ("bob", "get", "w1", "deny", "PERMISSION_DENIED"),
    ]  # reads that were allowed are not audited by default


def test_raft_secret_and_keyring_from_the_cluster(master) -> None:
    layout, sec, _bob, _audit = master
    assert len(bytes.fromhex(sec.raft_secret())) == 32
    assert sec.keyring.decrypt(sec.keyring.encrypt(b"s", "/secrets/a/b"), "/secrets/a/b") == b"s"
    os.chmod(layout.raft_secret, 0o644)
    with pytest.raises(SecurityConfigError, match="chmod 600"):
        load_raft_secret(layout.raft_secret)
    os.chmod(layout.raft_secret, 0o600)
    layout.raft_secret.write_text("abcd\n")
    with pytest.raises(SecurityConfigError, match="has 2 bytes"):
        load_raft_secret(layout.raft_secret)


def test_unknown_master_is_named(master) -> None:
    layout, *_ = master
    with pytest.raises(SecurityConfigError, match="no master named 'm7'"):
        MasterSecurityConfig.from_cluster_file(layout.cluster_file, "m7")
