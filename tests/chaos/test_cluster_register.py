"""Chaos on a real control plane: clients do get / put / compare-and-swap on a few keys
through the masters' KV API (TLS + admin token, a random master per operation) while the
nemesis kills the leader, kills a random master and pauses the leader; the history must be
linearizable. A report (JSON, text, PNG) is written for each run."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import grpc
import pytest

from raftkube.api.v1 import kv_pb2, kv_pb2_grpc
from raftkube.testing.chaos.history import DefiniteFailure
from raftkube.testing.chaos.linearizability import checker as linearizability_checker
from raftkube.testing.chaos.nemesis import KillProcess, PauseProcess
from raftkube.testing.chaos.runner import RunConfig, run
from raftkube.testing.chaos.workloads import RegisterWorkload
from raftkube.testing.master_cluster import MasterCluster

pytestmark = [pytest.mark.slow]

# Refused before reaching a store: the operation certainly did not happen.
DEFINITE = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT}


class RegisterClient:
    """Register operations on keys /chaos/KEY through a random live master."""

    def __init__(self, cluster: MasterCluster, seed: int) -> None:
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def _stub(self) -> kv_pb2_grpc.KVStub:
        with self.lock:
            alive = self.cluster.alive_indexes()
            if not alive:
                raise DefiniteFailure("no master process is running")
            return kv_pb2_grpc.KVStub(self.cluster.channel(self.rng.choice(alive)))

    @staticmethod
    def _key(key: object) -> bytes:
        return f"/chaos/{key}".encode()

    def _call(self, method: str, request: object) -> object:
        stub = self._stub()
        try:
            return getattr(stub, method)(request, timeout=2.0)
        except grpc.RpcError as e:
            if e.code() in DEFINITE:
                raise DefiniteFailure(f"{e.code().name}: {e.details()}") from e
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


def test_register_history_is_linearizable_under_master_faults(tmp_path: Path) -> None:
    with MasterCluster(3) as cluster:
        client = RegisterClient(cluster, seed=7)

        def leader_pid() -> int:
            return cluster.members[cluster.leader_index(timeout=20)].pid

        def random_pid() -> int:
            return cluster.members[random.Random().choice(cluster.alive_indexes())].pid

        def restart_dead() -> str:
            dead = [m.index for m in cluster.members if not m.alive]
            for index in dead:
                cluster.restart(index)
            return f"restarted {dead}"

        faults = {
            "kill-leader": lambda rng: KillProcess("kill-leader", leader_pid,
                                                   restart=restart_dead),
            "kill-random-master": lambda rng: KillProcess(
                "kill-random-master", random_pid, restart=restart_dead),
            "pause-leader": lambda rng: PauseProcess("pause-leader", leader_pid),
        }
        [result] = run(lambda: RegisterWorkload(client.get, client.put, client.cas),
                       faults, [linearizability_checker(time_limit=180)],
                       RunConfig(clients=4, duration=20.0, recovery=3.0, seed=2026,
                                 out_dir=tmp_path / "report", quiet=(1.0, 2.0),
                                 active=(1.0, 2.5), max_ops=20_000),
                       announce=print)
    names = {f.name for f in result.history.faults()}
    oks = [o for o in result.history.operations() if o.status == "ok"]
    print(f"faults: {sorted(names)}; operations: {len(result.history.operations())}, "
          f"ok: {len(oks)}; verdict: {result.verdict}")
    assert result.nemesis_errors == [], result.nemesis_errors
    assert len(names) >= 2 and len(oks) > 100
    assert result.verdict == "valid", result.results[0].summary()
    assert result.report is not None and result.report.png is not None
