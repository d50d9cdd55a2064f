"""Real TLS on 127.0.0.1 with a real gRPC server (the standard health service).

Covers: TLS required, wrong CA, mutual TLS, bearer tokens, certificate identities, the
principal reaching handlers (unary and streaming), and `raftkube init` output in use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from raftkube.security import pki, tokens
from raftkube.security.client_config import load_client_config
from raftkube.security.cluster_init import InitConfig, MasterSpec, init_cluster
from raftkube.security.grpc_auth import (
    AuthConfig,
    AuthInterceptor,
    TokenTableAuthenticator,
    channel_credentials,
    current_principal,
    secure_channel,
    server_credentials,
    server_credentials_from_files,
)
from raftkube.security.principal import Principal
from raftkube.testing.ports import free_ports

CALL_TIMEOUT = 10.0
T0 = 1_700_000_000.0


class RecordingHealth(health.HealthServicer):
    """The standard health service, noting the principal each handler sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Principal | None] = []
        self._lock = threading.Lock()

    def _note(self) -> None:
        try:
            principal: Principal | None = current_principal()
        except LookupError:
            principal = None  # a public method runs anonymously
        with self._lock:
            self.seen.append(principal)

    def Check(self, request, context):
        self._note()
        return super().Check(request, context)

    def Watch(self, request, context, send_response_callback=None):
        self._note()
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        self._note()  # still set while the stream is being iterated


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Cluster:
    ca: pki.KeyPair
    server: pki.KeyPair
    table: dict
    admin_token: str
    short_token: str
    clock: Clock
    servers: list = field(default_factory=list)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    ca = pki.create_ca()
    server = pki.issue_server_cert(ca, "m1", ips=["127.0.0.1"], dns_names=["m1"])
    table, admin_token = tokens.issue_token({}, user="admin", groups=["system:masters"], now=T0)
    table, short = tokens.issue_token(table, user="temp", now=T0, ttl=60)
    return Cluster(ca, server, table, admin_token, short, Clock())


@dataclass
class Served:
    port: int
    servicer: RecordingHealth
    server: grpc.Server

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def _serve(cluster: Cluster, *, mtls: bool, public: frozenset[str] = frozenset(),
           credentials: grpc.ServerCredentials | None = None) -> Served:
    servicer = RecordingHealth()
    auth = AuthConfig(bearer=TokenTableAuthenticator(lambda: cluster.table, cluster.clock),
                      public_methods=public)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         interceptors=[AuthInterceptor(auth)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    creds = credentials or server_credentials(cluster.server.cert_pem, cluster.server.key_pem,
                                              cluster.ca.cert_pem, require_client_cert=mtls)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return Served(port, servicer, server)


@pytest.fixture
def tls_server(cluster) -> Iterator[Served]:
    served = _serve(cluster, mtls=False)
    try:
        yield served
    finally:
        served.server.stop(grace=None)


@pytest.fixture
def mtls_server(cluster) -> Iterator[Served]:
    served = _serve(cluster, mtls=True)
    try:
        yield served
    finally:
        served.server.stop(grace=None)


def _check(channel: grpc.Channel) -> health_pb2.HealthCheckResponse:
    with channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)


def _code_and_details(channel: grpc.Channel) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        _check(channel)
    return info.value.code(), info.value.details() or ""


def test_plaintext_client_cannot_talk_to_a_tls_server(cluster, tls_server) -> None:
    code, _ = _code_and_details(grpc.insecure_channel(tls_server.target))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert tls_server.servicer.seen == []


def test_client_trusting_another_ca_fails_the_handshake(cluster, tls_server) -> None:
    other = pki.create_ca()
    creds = channel_credentials(other.cert_pem, token=cluster.admin_token)
    code, _ = _code_and_details(secure_channel(tls_server.target, creds))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert tls_server.servicer.seen == []


def test_server_name_must_match_the_certificate(cluster, tls_server) -> None:
    creds = channel_credentials(cluster.ca.cert_pem, token=cluster.admin_token)
    code, _ = _code_and_details(
        secure_channel(tls_server.target, creds, server_name="not-m1.example"))
    assert code == grpc.StatusCode.UNAVAILABLE
    # The DNS SAN works when overriding to it.
    assert _check(secure_channel(tls_server.target, creds, server_name="m1")).status == (
        health_pb2.HealthCheckResponse.SERVING)


def test_good_bearer_token_reaches_the_handler_as_its_principal(cluster, tls_server) -> None:
    creds = channel_credentials(cluster.ca.cert_pem, token=cluster.admin_token)
    assert _check(secure_channel(tls_server.target, creds)).status == (
        health_pb2.HealthCheckResponse.SERVING)
    assert tls_server.servicer.seen == [Principal("admin", ("system:masters",), "token")]


@pytest.mark.parametrize(("token", "message"), [
    (None, "no credentials: send metadata 'authorization: Bearer <token>'"),
    ("abcdef.0123456789abcdefghijklmnopqrstuv", "invalid bearer token: unknown token id"),
    ("garbage", "invalid bearer token: malformed token"),
])
def test_missing_or_bad_token_is_unauthenticated(cluster, tls_server, token, message) -> None:
    creds = channel_credentials(cluster.ca.cert_pem, token=token)
    code, details = _code_and_details(secure_channel(tls_server.target, creds))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert message in details
    assert tls_server.servicer.seen == []


def test_wrong_secret_is_unauthenticated(cluster, tls_server) -> None:
    token_id, secret = tokens.split_token(cluster.admin_token)
    wrong = f"{token_id}.{secret[::-1]}"
    creds = channel_credentials(cluster.ca.cert_pem, token=wrong)
    code, details = _code_and_details(secure_channel(tls_server.target, creds))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert details == f"invalid bearer token: token {token_id!r}: wrong secret"


def test_expired_token_is_unauthenticated(cluster, tls_server) -> None:
    creds = channel_credentials(cluster.ca.cert_pem, token=cluster.short_token)
    assert _check(secure_channel(tls_server.target, creds))
    cluster.clock.now = T0 + 61
    try:
        code, details = _code_and_details(secure_channel(tls_server.target, creds))
    finally:
        cluster.clock.now = T0
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in details


def test_non_bearer_authorization_header_is_refused(cluster, tls_server) -> None:
    creds = channel_credentials(cluster.ca.cert_pem)
    with grpc.secure_channel(tls_server.target, creds) as channel, \
            pytest.raises(grpc.RpcError) as info:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT,
            metadata=[("authorization", "Basic YWRtaW46YWRtaW4=")])
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "must read 'Bearer <token>'" in (info.value.details() or "")


def test_streaming_calls_are_authenticated_and_see_the_principal(cluster, tls_server) -> None:
    good = channel_credentials(cluster.ca.cert_pem, token=cluster.admin_token)
    with secure_channel(tls_server.target, good) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()
    assert tls_server.servicer.seen[0].name == "admin"
    bad = channel_credentials(cluster.ca.cert_pem)
    with secure_channel(tls_server.target, bad) as channel, \
            pytest.raises(grpc.RpcError) as info:
        next(health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_mtls_server_refuses_a_client_without_a_certificate(cluster, mtls_server) -> None:
    creds = channel_credentials(cluster.ca.cert_pem, token=cluster.admin_token)
    code, _ = _code_and_details(secure_channel(mtls_server.target, creds))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert mtls_server.servicer.seen == []


def test_mtls_server_refuses_a_certificate_from_another_ca(cluster, mtls_server) -> None:
    rogue = pki.issue_node_cert(pki.create_ca(), "w1")
    creds = channel_credentials(cluster.ca.cert_pem, client_cert_pem=rogue.cert_pem,
                                client_key_pem=rogue.key_pem)
    code, _ = _code_and_details(secure_channel(mtls_server.target, creds))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert mtls_server.servicer.seen == []


def test_client_certificate_identity_becomes_the_principal(cluster, mtls_server) -> None:
    node = pki.issue_node_cert(cluster.ca, "w1")
    creds = channel_credentials(cluster.ca.cert_pem, client_cert_pem=node.cert_pem,
                                client_key_pem=node.key_pem)
    assert _check(secure_channel(mtls_server.target, creds))
    assert mtls_server.servicer.seen == [
        Principal("system:node:w1", ("system:nodes",), "certificate")]
    assert mtls_server.servicer.seen[0].node_name == "w1"


def test_a_bad_token_is_refused_even_with_a_good_certificate(cluster, mtls_server) -> None:
    node = pki.issue_node_cert(cluster.ca, "w1")
    creds = channel_credentials(cluster.ca.cert_pem, client_cert_pem=node.cert_pem,
                                client_key_pem=node.key_pem,
                                token="abcdef.0123456789abcdefghijklmnopqrstuv")
    code, details = _code_and_details(secure_channel(mtls_server.target, creds))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "unknown token id" in details


def test_public_methods_skip_authentication_but_keep_tls(cluster) -> None:
    served = _serve(cluster, mtls=False, public=frozenset({"/grpc.health.v1.Health/Check"}))
    try:
        creds = channel_credentials(cluster.ca.cert_pem)
        assert _check(secure_channel(served.target, creds))
        assert served.servicer.seen == [None]
        # Other methods of the same service still require credentials.
        with secure_channel(served.target, creds) as channel, \
                pytest.raises(grpc.RpcError) as info:
            next(health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        code, _ = _code_and_details(grpc.insecure_channel(served.target))
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        served.server.stop(grace=None)


def test_init_output_runs_a_secured_server_and_its_configs_work(tmp_path) -> None:
    api, raft, node = free_ports(3)
    result = init_cluster(InitConfig(
        directory=tmp_path / "cluster",
        masters=(MasterSpec("m1", "127.0.0.1", api_port=api, raft_port=raft,
                            node_port=node),),
        workers=("w1",)))
    lay = result.layout
    table = tokens.loads(lay.token_table.read_text())
    servicer = RecordingHealth()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[
        AuthInterceptor(AuthConfig(bearer=TokenTableAuthenticator(lambda: table)))])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    cert, key = lay.master_cert("m1"), lay.master_key("m1")
    server.add_secure_port(f"127.0.0.1:{api}", server_credentials_from_files(
        cert, key, lay.ca_cert, require_client_cert=False))
    server.add_secure_port(f"127.0.0.1:{node}", server_credentials_from_files(
        cert, key, lay.ca_cert, require_client_cert=True))
    server.start()
    try:
        admin = load_client_config(lay.admin_config)
        assert _check(secure_channel(admin.masters[0], admin.credentials()))
        worker = load_client_config(lay.worker_config("w1"))
        assert _check(secure_channel(worker.masters[0], worker.credentials()))
        # The worker config without its token still authenticates by certificate.
        cert_only = channel_credentials(lay.ca_cert.read_bytes(),
                                        client_cert_pem=lay.worker_cert("w1").read_bytes(),
                                        client_key_pem=lay.worker_key("w1").read_bytes())
        assert _check(secure_channel(worker.masters[0], cert_only))
    finally:
        server.stop(grace=None)
    assert [(p.name, p.via) for p in servicer.seen] == [
        ("admin", "token"), ("system:node:w1", "token"), ("system:node:w1", "certificate")]
