"""Errors survive the trip server -> gRPC status -> client as the same typed exception."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftkube import apierrors


class FailingHealth(health_pb2_grpc.HealthServicer):
    """A health service whose Check fails with the error the test puts in `error`."""

    error: apierrors.ApiError | None = None

    def Check(self, request, context):
        assert self.error is not None
        self.error.abort(context)


@pytest.fixture()
def failing_channel():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = FailingHealth()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield servicer, health_pb2_grpc.HealthStub(channel)
    finally:
        channel.close()
        server.stop(0)


@pytest.mark.parametrize(
    "error",
    [
        apierrors.NotFound('pods "web" not found'),
        apierrors.AlreadyExists('pods "web" already exists'),
        apierrors.Conflict("conflict", current="12", given="9"),
        apierrors.Invalid(
            "Pod web is invalid",
            [apierrors.FieldError("spec.containers[0].image", "required")],
        ),
        apierrors.Forbidden('user "bob" cannot delete secrets in namespace "prod"'),
        apierrors.Compacted("compacted", oldest_revision=40),
    ],
)
def test_error_round_trips(failing_channel, error: apierrors.ApiError) -> None:
    servicer, stub = failing_channel
    servicer.error = error
    with pytest.raises(grpc.RpcError) as raised:
        stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    got = apierrors.from_rpc_error(raised.value)
    assert type(got) is type(error)
    assert got.message == error.message
    assert got.details == error.details
    if isinstance(error, apierrors.Invalid):
        assert isinstance(got, apierrors.Invalid)
        assert got.field_errors == error.field_errors


def test_status_without_metadata_maps_by_code() -> None:
    class Bare(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "connection refused"

        def trailing_metadata(self):
            return None

    got = apierrors.from_rpc_error(Bare())
    assert isinstance(got, apierrors.Unavailable)
    assert got.message == "connection refused"
