"""WatchBatched: the events Watch delivers, several per message, against a real store and
a real gRPC server; the SDK falls back to Watch on a master that lacks WatchBatched."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from raftkube.api.v1 import core_pb2, resources_pb2, resources_pb2_grpc
from raftkube.client.aio import AsyncTransport, AsyncWatch
from raftkube.client.config import ClientOptions
from raftkube.client.endpoints import Endpoints
from raftkube.client.retry import RetryConfig
from raftkube.client.transport import SyncTransport
from raftkube.client.watch import Watch, WatchSpec
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.object_api import ObjectApi
from raftkube.masters.object_store import ObjectStore
from raftkube.masters.resource_service import ResourcesServicer
from raftkube.objects import registry
from raftkube.security.principal import MASTERS_GROUP, Principal
from raftkube.security.rbac import Authorizer
from raftkube.testing.single_store import single_member_store

ADMIN = Principal("admin", (MASTERS_GROUP,))


class WithoutWatchBatched(ResourcesServicer):
    """A master of a version before WatchBatched existed."""

    def WatchBatched(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


@pytest.fixture(scope="module")
def store():
    with single_member_store() as s:
        yield s


@pytest.fixture(scope="module")
def api(store) -> ObjectApi:
    return ObjectApi(ObjectStore(store), Gatekeeper(Authorizer(), principal_source=lambda: ADMIN))


def serve(servicer: ResourcesServicer) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(8))
    resources_pb2_grpc.add_ResourcesServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials())
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def address(api: ObjectApi) -> Iterator[str]:
    server, addr = serve(ResourcesServicer(api))
    yield addr
    server.stop(0)


def config_map(name: str, team: str = "") -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = "default"
    if team:
        cm.metadata.labels["team"] = team
    return cm


def stub_for(addr: str) -> tuple[grpc.Channel, resources_pb2_grpc.ResourcesStub]:
    channel = grpc.secure_channel(addr, grpc.local_channel_credentials())
    return channel, resources_pb2_grpc.ResourcesStub(channel)


def test_one_transaction_arrives_as_one_batch_in_the_order_watch_gives(
        api: ObjectApi, address: str) -> None:
    before = api.create(config_map("batch-probe"))
    rv = before.metadata.resource_version
    names = [f"burst-{n:02d}" for n in range(30)]
    api.create_many([config_map(n) for n in names])
    request = resources_pb2.WatchRequest(kind="ConfigMap", namespace="default",
                                         resource_version=rv)
    channel, stub = stub_for(address)
    try:
        batched = stub.WatchBatched(request, timeout=10)
        first = next(batched)
        batched.cancel()
        plain = stub.Watch(request, timeout=10)
        singles = [next(plain) for _ in names]
        plain.cancel()
    finally:
        channel.close()
    assert [registry.unwrap(e.object).metadata.name for e in first.events] == names
    assert [e.type for e in first.events] == ["ADDED"] * 30
    assert len({e.resource_version for e in first.events}) == 1  # one transaction
    assert list(first.events) == singles


def test_the_current_state_comes_first_in_batches_and_selectors_still_apply(
        api: ObjectApi, address: str) -> None:
    api.create_many([config_map(f"team-a-{n}", team="a") for n in range(5)]
                    + [config_map(f"team-b-{n}", team="b") for n in range(5)])
    channel, stub = stub_for(address)
    try:
        stream = stub.WatchBatched(resources_pb2.WatchRequest(
            kind="ConfigMap", namespace="default", label_selector="team=a"), timeout=10)
        listed = next(stream)
        moved = api.get("ConfigMap", "default", "team-b-0")
        moved.metadata.labels["team"] = "a"
        api.update(moved)
        left = api.get("ConfigMap", "default", "team-a-0")
        left.metadata.labels["team"] = "b"
        api.update(left)
        changes = [e for _ in range(2) for e in next(stream).events]
        stream.cancel()
    finally:
        channel.close()
    assert sorted(registry.unwrap(e.object).metadata.name for e in listed.events) == [
        f"team-a-{n}" for n in range(5)]
    assert [(e.type, registry.unwrap(e.object).metadata.name) for e in changes] == [
        ("ADDED", "team-b-0"), ("DELETED", "team-a-0")]


def test_the_sdk_watch_falls_back_to_watch_on_a_master_without_watch_batched(
        api: ObjectApi) -> None:
    server, addr = serve(WithoutWatchBatched(api))
    start = api.create(config_map("fallback-start"))
    transport = SyncTransport(grpc.local_channel_credentials(), Endpoints([addr]),
                              RetryConfig())
    watch = Watch(transport, WatchSpec(registry.by_kind("ConfigMap"), "default",
                                       resource_version=start.metadata.resource_version),
                  page_size=100, idle_timeout=10, give_up=10)
    seen: list[str] = []
    done = threading.Event()

    def consume() -> None:
        for event in watch:
            seen.append(event.object.metadata.name)
            if len(seen) == 3:
                done.set()
                return

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        for n in range(3):
            api.create(config_map(f"fallback-{n}"))
        assert done.wait(15), f"the watch delivered only {seen}"
    finally:
        watch.stop()
        transport.close()
        server.stop(0)
    thread.join(5)
    assert seen == ["fallback-0", "fallback-1", "fallback-2"]


def test_the_async_sdk_watch_falls_back_too(api: ObjectApi) -> None:
    server, addr = serve(WithoutWatchBatched(api))
    start = api.create(config_map("async-fallback-start"))
    for n in range(3):
        api.create(config_map(f"async-fallback-{n}"))

    async def first_three() -> list[str]:
        options = ClientOptions()
        transport = AsyncTransport(grpc.local_channel_credentials(), Endpoints([addr]),
                                   options)
        watch = AsyncWatch(transport, WatchSpec(
            registry.by_kind("ConfigMap"), "default",
            resource_version=start.metadata.resource_version), options)
        names: list[str] = []
        try:
            async for event in watch:
                names.append(event.object.metadata.name)
                if len(names) == 3:
                    break
        finally:
            watch.stop()
            await transport.close()
        return names

    try:
        seen = asyncio.run(asyncio.wait_for(first_three(), 15))
    finally:
        server.stop(0)
    assert seen == ["async-fallback-0", "async-fallback-1", "async-fallback-2"]
