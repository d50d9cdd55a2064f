"""Client helpers shared by the multi-process store tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc

from raftkube.api.v1 import kv_pb2
from raftkube.testing.store_cluster import StoreCluster


def put(cluster: StoreCluster, index: int, key: bytes, value: bytes, timeout: float = 5.0):
    return cluster.kv(index).Put(kv_pb2.StorePutRequest(key=key, value=value), timeout=timeout)


def get(cluster: StoreCluster, index: int, key: bytes, serializable: bool = False,
        timeout: float = 5.0):
    resp = cluster.kv(index).Range(kv_pb2.StoreRangeRequest(key=key, serializable=serializable),
                                   timeout=timeout)
    return resp.kvs[0].value if resp.kvs else None


def all_keys(cluster: StoreCluster, index: int, prefix: bytes, serializable: bool = False):
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    resp = cluster.kv(index).Range(kv_pb2.StoreRangeRequest(key=prefix, range_end=end,
                                                            serializable=serializable),
                                   timeout=10)
    return {kv.key: kv.value for kv in resp.kvs}


def put_retrying(cluster: StoreCluster, key: bytes, value: bytes, deadline_s: float = 20.0):
    """Retry a put across alive members until it is acknowledged."""
    deadline = time.monotonic() + deadline_s
    attempt = 0
    while True:
        alive = cluster.alive_indexes()
        index = alive[attempt % len(alive)]
        attempt += 1
        try:
            return put(cluster, index, key, value, timeout=2.0)
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Writer:
    """Background writer: puts unique keys round-robin over alive members, records
    what was acknowledged and what had an unknown outcome."""

    cluster: StoreCluster
    prefix: bytes
    acked: dict[bytes, bytes] = field(default_factory=dict)
    unknown: set[bytes] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    max_writes: int = 100000

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set() and n < self.max_writes:
            alive = [i for i in self.cluster.alive_indexes()]
            if not alive:
                time.sleep(0.05)
                continue
            key = self.prefix + b"%06d" % n
            value = b"v%d" % n
            try:
                put(self.cluster, alive[n % len(alive)], key, value, timeout=3.0)
                self.acked[key] = value
            except grpc.RpcError as exc:
                self.unknown.add(key)
                self.errors.append(str(exc.code()))
            except ValueError:  # channel closed under us by a kill
                self.unknown.add(key)
            n += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
