"""Watchers on every master's KV Watch API, and the authoritative event list to check them.

One thread per master watches a key prefix from a fixed start revision on that master only
(no failover: each master's own stream is under test). When the stream breaks (the master
was killed, a channel closed) the watcher reopens it on the same master from the revision
after the last event it saw; a paused or partitioned master just stalls its stream. Every
event is recorded as WatchEvent(mod_revision, (type, key, value)); the workloads using this
write one key per revision (put or single-put transactions), so a revision is one event.

`authoritative_events` reads the truth at the end: the prefix's events from the same start
revision, streamed from a master after the cluster healed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import Any

import grpc

from raftkube.api.v1 import kv_pb2, kv_pb2_grpc
from raftkube.testing.chaos.checkers import WatchEvent, WatchResult, check_watches
from raftkube.testing.master_cluster import MasterCluster
from tests.chaos.master_register_client import prefix_end


def _payload(event: Any) -> Hashable:
    return (int(event.type), bytes(event.kv.key), bytes(event.kv.value))


def head_revision(cluster: MasterCluster, timeout: float = 60.0) -> int:
    """The store's current revision by a linearizable read through any live master."""
    deadline = time.monotonic() + timeout
    while True:
        for index in cluster.alive_indexes():
            try:
                reply = kv_pb2_grpc.KVStub(cluster.channel(index)).Range(
                    kv_pb2.StoreRangeRequest(key=b"/", limit=1), timeout=3.0)
                return int(reply.header.revision)
            except (grpc.RpcError, ValueError):
                continue
        if time.monotonic() > deadline:
            raise TimeoutError("no master answered a linearizable read")
        time.sleep(0.3)


class MasterWatchers:
    """A watcher per master on `prefix` from `start_revision`; `stop()` ends them all."""

    def __init__(self, cluster: MasterCluster, prefix: bytes, start_revision: int) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.start_revision = start_revision
        self.events: dict[str, list[WatchEvent]] = {m.name: [] for m in cluster.members}
        self.reconnects: dict[str, int] = dict.fromkeys(self.events, 0)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._calls: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._watch, args=(m.index,), daemon=True,
                                          name=f"chaos-watch-{m.name}")
                         for m in cluster.members]

    def start(self) -> MasterWatchers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.cancel()
        for thread in self._threads:
            thread.join(timeout=10)

    def _watch(self, index: int) -> None:
        name = self.cluster.members[index].name
        events = self.events[name]
        while not self._stop.is_set():
            next_revision = events[-1].revision + 1 if events else self.start_revision
            try:
                stub = kv_pb2_grpc.KVStub(self.cluster.channel(index))
                call = stub.Watch(kv_pb2.StoreWatchRequest(
                    key=self.prefix, range_end=prefix_end(self.prefix),
                    start_revision=next_revision))
                with self._lock:
                    self._calls[name] = call
                if self._stop.is_set():
                    call.cancel()
                for reply in call:
                    if reply.canceled:
                        self.errors.append(f"{name}: watch canceled at {next_revision} "
                                           f"(compacted to {reply.compact_revision})")
                        return
                    events.extend(WatchEvent(int(e.kv.mod_revision), _payload(e))
                                  for e in reply.events)
            except (grpc.RpcError, ValueError):
                pass  # the master went away or its channel was closed: reopen
            self.reconnects[name] += 1
            self._stop.wait(0.3)

    def checker(self, timeout: float = 60.0) -> Any:
        """A runner checker: stop the watchers, read the truth, compare (check_watches)."""

        def check_master_watches(history: object) -> WatchResult:
            self.stop()
            truth = authoritative_events(self.cluster, self.prefix, self.start_revision,
                                         timeout)
            result = check_watches(truth, self.events,
                                   dict.fromkeys(self.events, self.start_revision))
            if self.errors:
                raise AssertionError(f"watch errors: {self.errors}")
            return result

        return check_master_watches


def authoritative_events(cluster: MasterCluster, prefix: bytes, start_revision: int,
                         timeout: float = 60.0) -> dict[int, Hashable]:
    """revision -> payload of every event on `prefix` from `start_revision` up to the
    prefix's latest modification, read (linearizably bounded) from a healthy master."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        for index in cluster.alive_indexes():
            stub = kv_pb2_grpc.KVStub(cluster.channel(index))
            try:
                reply = stub.Range(kv_pb2.StoreRangeRequest(
                    key=prefix, range_end=prefix_end(prefix)), timeout=3.0)
                last = max((int(kv.mod_revision) for kv in reply.kvs), default=0)
                truth: dict[int, Hashable] = {}
                if last < start_revision:
                    return truth
                call = stub.Watch(kv_pb2.StoreWatchRequest(
                    key=prefix, range_end=prefix_end(prefix), start_revision=start_revision),
                    timeout=max(1.0, deadline - time.monotonic()))
                for watched in call:
                    for event in watched.events:
                        truth[int(event.kv.mod_revision)] = _payload(event)
                    if truth and max(truth) >= last:
                        call.cancel()
                        return truth
            except (grpc.RpcError, ValueError) as exc:
                last_error = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(f"could not read the authoritative watch history: {last_error}")
