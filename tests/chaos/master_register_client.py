"""Register operations (get / put / compare-and-swap) on keys PREFIX + KEY through the
masters' raw KV API, a random live master per operation (TLS + admin token). The prefix
(default /chaos/) must hold no keys yet: the register model starts from "absent".

Outcomes follow the chaos runner's contract: a reply is the result; a refusal before the
store (authentication, permission, invalid request) or a call that provably never reached
a master (the SDK's `classify` says NOT_SENT: connection refused, ...) raises
DefiniteFailure, after a short pause so a client does not spin while masters restart;
anything else (UNAVAILABLE mid-call, DEADLINE_EXCEEDED after `timeout` seconds, ...)
propagates as an unknown outcome. Every call is bounded by `timeout`, so an operation sent
to a master cut off by a partition ends as unknown instead of hanging the client.
"""

from __future__ import annotations

import random
import threading
import time

import grpc

from raftkube.api.v1 import kv_pb2, kv_pb2_grpc
from raftkube.client.retry import Failure, classify
from raftkube.testing.chaos.history import DefiniteFailure
from raftkube.testing.master_cluster import MasterCluster

# Refused before reaching a store: the operation certainly did not happen.
DEFINITE = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT}

KEY_PREFIX = b"/chaos/"
NOT_SENT_PAUSE = 0.1  # seconds a client waits after a call that could not be sent


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with `prefix`."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class RegisterClient:
    """get / put / cas on PREFIX + KEY (values are decimal integers); thread-safe."""

    def __init__(self, cluster: MasterCluster, seed: int, timeout: float = 2.0,
                 prefix: bytes = KEY_PREFIX) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.lock = threading.Lock()

    def _stub(self) -> kv_pb2_grpc.KVStub:
        """A random live master's stub; when none runs (all killed), wait up to `timeout`
        for one, then fail definitely (nothing was sent) instead of spinning."""
        deadline = time.monotonic() + self.timeout
        while True:
            with self.lock:
                alive = self.cluster.alive_indexes()
                index = self.rng.choice(alive) if alive else None
            if index is not None:
                return kv_pb2_grpc.KVStub(self.cluster.channel(index))
            if time.monotonic() > deadline:
                raise DefiniteFailure("no master process is running")
            time.sleep(0.05)

    def _key(self, key: object) -> bytes:
        return self.prefix + str(key).encode()

    def _call(self, method: str, request: object) -> object:
        stub = self._stub()
        try:
            return getattr(stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as e:
            if e.code() in DEFINITE:
                raise DefiniteFailure(f"{e.code().name}: {e.details()}") from e
            if classify(e) is Failure.NOT_SENT:
                time.sleep(NOT_SENT_PAUSE)
                raise DefiniteFailure(f"not sent: {e.code().name}: {e.details()}") from e
            raise  # UNAVAILABLE mid-call, DEADLINE_EXCEEDED, ...: outcome unknown

    def get(self, key: object) -> int | None:
        reply = self._call("Range", kv_pb2.StoreRangeRequest(key=self._key(key)))
        return int(reply.kvs[0].value) if reply.kvs else None  # type: ignore[attr-defined]

    def put(self, key: object, value: int) -> None:
        self._call("Put", kv_pb2.StorePutRequest(key=self._key(key), value=str(value).encode()))

    def cas(self, key: object, expected: int | None, new: int) -> bool:
        k = self._key(key)
        compare = (kv_pb2.StoreCompare(key=k, target=kv_pb2.StoreCompare.CREATE,
                                       result=kv_pb2.StoreCompare.EQUAL, number=0)
                   if expected is None else
                   kv_pb2.StoreCompare(key=k, target=kv_pb2.StoreCompare.VALUE,
                                       result=kv_pb2.StoreCompare.EQUAL,
                                       value=str(expected).encode()))
        put = kv_pb2.StoreRequestOp(request_put=kv_pb2.StorePutRequest(
            key=k, value=str(new).encode()))
        reply = self._call("Txn", kv_pb2.StoreTxnRequest(compare=[compare], success=[put]))
        return bool(reply.succeeded)  # type: ignore[attr-defined]
