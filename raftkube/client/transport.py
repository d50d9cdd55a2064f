"""Blocking gRPC transport: one channel per master, stubs per service, the effect runner.

Channels are created lazily and kept; gRPC reconnects them by itself (quickly: see
CHANNEL_OPTIONS), so a master that comes back is used again without a new channel.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Generator
from typing import Any

import grpc

from raftkube.api.v1 import admin_pb2_grpc, kv_pb2_grpc, node_agent_pb2_grpc, resources_pb2_grpc
from raftkube.client.config import CHANNEL_OPTIONS
from raftkube.client.core import Invoke, Operation, Sleep, drive
from raftkube.client.endpoints import Endpoints
from raftkube.client.retry import RetryConfig

STUBS: dict[str, Any] = {
    "Resources": resources_pb2_grpc.ResourcesStub,
    "Admin": admin_pb2_grpc.AdminStub,
    "KV": kv_pb2_grpc.KVStub,
    "NodeAgent": node_agent_pb2_grpc.NodeAgentStub,
}


class SyncTransport:
    """Channels to every master over TLS with the client's credentials."""

    def __init__(self, credentials: grpc.ChannelCredentials, endpoints: Endpoints,
                 retry: RetryConfig, seed: int | None = None) -> None:
        self._credentials = credentials
        self.endpoints = endpoints
        self.retry = retry
        self.rng = random.Random(seed)
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def stub(self, address: str, service: str) -> Any:
        with self._lock:
            stub = self._stubs.get((address, service))
            if stub is None:
                channel = self._channels.get(address)
                if channel is None:
                    channel = grpc.secure_channel(address, self._credentials,
                                                  options=CHANNEL_OPTIONS)
                    self._channels[address] = channel
                stub = self._stubs[(address, service)] = STUBS[service](channel)
            return stub

    def run(self, op: Operation) -> Any:
        """Run an operation through the retry loop; the result or a typed ApiError."""
        return run_effects(drive(op, self.endpoints, self.retry, self.rng), self)

    def invoke(self, effect: Invoke) -> Any:
        call = effect.call
        method = getattr(self.stub(effect.address, call.service), call.method)
        return method(call.request, timeout=self.retry.call_timeout)

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
            self._stubs.clear()


def run_effects(gen: Generator[Any, Any, Any], transport: SyncTransport) -> Any:
    """Perform the effects `drive()` yields with blocking calls until it returns."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(value)
        except StopIteration as done:
            return done.value
        value, error = None, None
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
        else:
            try:
                value = transport.invoke(effect)
            except grpc.RpcError as e:
                error = e
