"""Cost of per-call security on a real TLS gRPC server (health Check on 127.0.0.1).

Prints the unary round-trip latency with the AuthInterceptor (bearer token checked
against a 1,000-entry token table) next to the same server without it, plus the cost of
the pure parts (token check, RBAC decision, secret envelope) per operation.

    PYTHONPATH=. /work/venv/bin/python bench/bench_security_auth.py [--calls N]
"""

from __future__ import annotations

import argparse
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from raftkube.security import encryption, pki, tokens
from raftkube.security.grpc_auth import (
    AuthConfig,
    AuthInterceptor,
    TokenTableAuthenticator,
    channel_credentials,
    secure_channel,
    server_credentials,
)
from raftkube.security.principal import Principal
from raftkube.security.rbac import Policy, authorize, bind


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def _grpc_latency(ca: pki.KeyPair, srv: pki.KeyPair, table: dict, token: str,
                  with_auth: bool, calls: int) -> tuple[float, float]:
    interceptors = [AuthInterceptor(AuthConfig(bearer=TokenTableAuthenticator(
        lambda: table)))] if with_auth else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(
        srv.cert_pem, srv.key_pem, ca.cert_pem, require_client_cert=False))
    server.start()
    try:
        with secure_channel(f"127.0.0.1:{port}",
                            channel_credentials(ca.cert_pem, token=token)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(min(200, calls)):
                stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            lat = []
            for _ in range(calls):
                t = time.perf_counter()
                stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                lat.append((time.perf_counter() - t) * 1e3)
        return _percentiles(lat)
    finally:
        server.stop(grace=None)


def _per_op(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="gRPC calls per variant")
    args = parser.parse_args()
    ca = pki.create_ca()
    srv = pki.issue_server_cert(ca, "m1", ips=["127.0.0.1"])
    table: dict = {}
    for i in range(1000):
        table, _ = tokens.issue_token(table, user=f"u{i}", now=time.time())
    table, token = tokens.issue_token(table, user="admin", groups=["system:masters"],
                                      now=time.time())
    secured = _grpc_latency(ca, srv, table, token, True, args.calls)
    plain = _grpc_latency(ca, srv, table, token, False, args.calls)
    print(f"unary TLS call, p50 / p99 ms: with auth {secured[0]:.3f} / {secured[1]:.3f}"
          f"   without auth {plain[0]:.3f} / {plain[1]:.3f}")
    policy = Policy().with_bindings(
        *[bind(f"b{i}", "edit", users=[f"u{i}"], namespace=f"ns{i}") for i in range(200)])
    bob = Principal("u199")
    ring = encryption.KeyRing([encryption.new_key("k")])
    value = b"x" * 1024
    token_us = _per_op(lambda: tokens.authenticate(table, token, now=time.time()), 20000)
    rbac_us = _per_op(lambda: authorize(bob, "update", "Deployment", "ns199", "w",
                                        policy=policy), 20000)
    seal_us = _per_op(lambda: ring.decrypt(ring.encrypt(value, "/s/a/b"), "/s/a/b"), 20000)
    print(f"token check (1,001 tokens): {token_us:.1f} us; RBAC decision (200 bindings): "
          f"{rbac_us:.1f} us; 1 KiB secret encrypt+decrypt: {seal_us:.1f} us")

if __name__ == "__main__":
    main()
