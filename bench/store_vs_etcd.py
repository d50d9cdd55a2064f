"""Benchmark: a 3-member raftkube store vs a 3-member etcd 3.4 on this machine.

Same Python gRPC client load against both (fsync on in both):
  - writes/s and p50/p99 latency with 1 write in flight, then with 100 in flight
  - leader failover: kill -9 the leader, time until a write succeeds again (median of N)

    python bench/store_vs_etcd.py [--writes 2000] [--pipelined 6000] [--failovers 5]

Not part of the test suite. Prints both systems side by side from the same run.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftkube.api.v1 import kv_pb2, kv_pb2_grpc
from raftkube.consensus.server import ServerConfig
from raftkube.testing.ports import free_port
from raftkube.testing.store_cluster import StoreCluster

VALUE = b"v" * 256
NOOP_SERVER_WORKERS = ServerConfig().max_workers  # the store's gRPC server pool


def compile_etcd_protos(out_dir: str) -> tuple[Any, Any]:
    from grpc_tools import protoc

    here = Path(__file__).resolve().parent
    rc = protoc.main(["protoc", f"-I{here}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", str(here / "etcd_min.proto")])
    if rc != 0:
        raise RuntimeError("protoc failed for etcd_min.proto")
    sys.path.insert(0, out_dir)
    return importlib.import_module("etcd_min_pb2"), importlib.import_module("etcd_min_pb2_grpc")


class EtcdCluster:
    """Three etcd members on 127.0.0.1 ports, each in its own temp data dir."""

    def __init__(self, pb: Any, pb_grpc: Any, base: str) -> None:
        self.pb, self.pb_grpc, self.base = pb, pb_grpc, base
        self.names = [f"e{i}" for i in range(3)]
        self.client = {n: free_port("127.0.0.1") for n in self.names}
        self.peer = {n: free_port("127.0.0.1") for n in self.names}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.channels: dict[str, grpc.Channel] = {}
        self.token = f"bench-{secrets.token_hex(4)}"

    def start(self, name: str, state: str = "new") -> None:
        initial = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        log = open(os.path.join(self.base, f"{name}.log"), "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen([
            "/usr/bin/etcd", "--name", name, "--data-dir", os.path.join(self.base, name),
            "--listen-client-urls", f"http://127.0.0.1:{self.client[name]}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.client[name]}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
            "--initial-cluster", initial, "--initial-cluster-state", state,
            "--initial-cluster-token", self.token, "--log-level", "error",
        ], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start_all(self) -> None:
        for n in self.names:
            self.start(n)
        self.leader(timeout=30)

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def kv(self, name: str) -> Any:
        if name not in self.channels:
            self.channels[name] = grpc.insecure_channel(f"127.0.0.1:{self.client[name]}")
        return self.pb_grpc.KVStub(self.channels[name])

    def put_fn(self, name: str) -> Callable[..., Any]:
        stub = self.kv(name)
        pb = self.pb
        return lambda key, timeout=5.0: stub.Put.future(pb.PutRequest(key=key, value=VALUE),
                                                        timeout=timeout)

    def leader(self, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.alive():
                if n not in self.channels:
                    self.channels[n] = grpc.insecure_channel(f"127.0.0.1:{self.client[n]}")
                try:
                    st = self.pb_grpc.MaintenanceStub(self.channels[n]).Status(
                        self.pb.StatusRequest(), timeout=1)
                except grpc.RpcError:
                    continue
                if st.leader and st.leader == st.header.member_id:
                    return n
            time.sleep(0.05)
        raise TimeoutError("etcd: no leader")

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()
        ch = self.channels.pop(name, None)
        if ch is not None:
            ch.close()

    def restart(self, name: str) -> None:
        self.start(name, state="existing")

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for ch in self.channels.values():
            ch.close()


class RaftkubeTarget:
    def __init__(self, cluster: StoreCluster) -> None:
        self.c = cluster

    def leader(self) -> int:
        return self.c.leader_index()

    def put_fn(self, index: int) -> Callable[..., Any]:
        stub = self.c.kv(index)
        return lambda key, timeout=5.0: stub.Put.future(
            kv_pb2.StorePutRequest(key=key, value=VALUE), timeout=timeout)

    def alive(self) -> list[int]:
        return self.c.alive_indexes()

    def kill(self, index: int) -> None:
        self.c.kill(index)

    def restart(self, index: int) -> None:
        self.c.restart(index)


class _NoopKV(kv_pb2_grpc.KVServicer):
    """Answers Put without doing anything: the floor of a Python gRPC server here."""

    def Put(self, request: Any, context: Any) -> Any:
        return kv_pb2.StorePutResponse()


def _serve_noop(port_out: Any, stop: Any) -> None:
    """Child process: a no-op KV server with the store's server settings until `stop`."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=NOOP_SERVER_WORKERS),
                         options=[("grpc.so_reuseport", 0)])
    kv_pb2_grpc.add_KVServicer_to_server(_NoopKV(), server)
    port_out.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    stop.wait(600)
    server.stop(0)


def grpc_floor(n: int, inflight: int) -> dict[str, float]:
    """Same client load against a no-op Python gRPC server in its own process (as each
    store replica is): what any Python gRPC server can do here before doing work."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with gRPC threads
    port_out, stop = context.Queue(), context.Event()
    child = context.Process(target=_serve_noop, args=(port_out, stop), daemon=True)
    child.start()
    try:
        port = port_out.get(timeout=60)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = kv_pb2_grpc.KVStub(channel)

        def put(key: bytes, timeout: float = 5.0) -> Any:
            return stub.Put.future(kv_pb2.StorePutRequest(key=key, value=VALUE), timeout=timeout)

        put(b"warm", timeout=30).result()
        result = {"seq": sequential(put, n // 4, "noop"),
                  "pipe": pipelined(put, n, inflight, "noop")}
        channel.close()
        return result
    finally:
        stop.set()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()


def sequential(put: Callable[..., Any], n: int, tag: str) -> dict[str, float]:
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        put(b"/bench/%s/seq/%d" % (tag.encode(), i)).result()
        lat.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    return _summary(lat, n / elapsed)


def pipelined(put: Callable[..., Any], n: int, inflight: int, tag: str) -> dict[str, float]:
    lat: list[float] = []
    lock = threading.Lock()
    sem = threading.Semaphore(inflight)
    done = threading.Event()
    remaining = [n]
    errors = [0]

    def finished(fut: Any, t0: float) -> None:
        dt = time.perf_counter() - t0
        with lock:
            if fut.exception() is None:
                lat.append(dt)
            else:
                errors[0] += 1
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        sem.release()

    start = time.perf_counter()
    for i in range(n):
        sem.acquire()
        t0 = time.perf_counter()
        fut = put(b"/bench/%s/pipe/%d" % (tag.encode(), i), timeout=30.0)
        fut.add_done_callback(lambda f, t0=t0: finished(f, t0))
    done.wait(120)
    elapsed = time.perf_counter() - start
    result = _summary(lat, len(lat) / elapsed)
    result["errors"] = errors[0]
    return result


FAILOVER_GIVE_UP_SECONDS = 60.0  # a trial that never recovers ends the loop anyway


def failover(target: Any, trials: int) -> list[float]:
    times = []
    for trial in range(trials):
        leader = target.leader()
        survivors = [m for m in target.alive() if m != leader]
        puts = [target.put_fn(m) for m in survivors]
        for p in puts:  # warm the channels
            p(b"/bench/warm").result()
        target.kill(leader)
        t0 = time.perf_counter()
        attempt = 0
        while time.perf_counter() - t0 < FAILOVER_GIVE_UP_SECONDS:
            try:
                puts[attempt % len(puts)](b"/bench/failover/%d" % trial, timeout=0.5).result()
                break
            except grpc.RpcError:
                attempt += 1
        else:
            print(f"failover trial {trial}: no write succeeded within "
                  f"{FAILOVER_GIVE_UP_SECONDS:.0f}s; recorded as that", flush=True)
        times.append(time.perf_counter() - t0)
        target.restart(leader)
        time.sleep(1.0)
    return times


def _summary(lat: list[float], rate: float) -> dict[str, float]:
    lat = sorted(lat)
    return {"rate": rate, "p50": lat[len(lat) // 2] * 1000 if lat else float("nan"),
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=2000, help="writes, 1 in flight")
    parser.add_argument("--pipelined", type=int, default=6000, help="writes, 100 in flight")
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--failovers", type=int, default=5)
    args = parser.parse_args()

    base = tempfile.mkdtemp(prefix="rk-bench-")
    pb, pb_grpc = compile_etcd_protos(base)
    etcd = EtcdCluster(pb, pb_grpc, base)
    results: dict[str, dict[str, Any]] = {"raftkube": {}, "etcd": {}}
    try:
        with StoreCluster(3) as store:
            rk = RaftkubeTarget(store)
            leader = rk.leader()
            put = rk.put_fn(leader)
            put(b"/bench/warmup").result()
            results["raftkube"]["seq"] = sequential(put, args.writes, "rk")
            results["raftkube"]["pipe"] = pipelined(put, args.pipelined, args.inflight, "rk")
            results["raftkube"]["seq_follower"] = sequential(
                rk.put_fn((leader + 1) % 3), args.writes // 2, "rkf")
            results["raftkube"]["failover"] = failover(rk, args.failovers)
        etcd.start_all()
        leader_name = etcd.leader()
        put = etcd.put_fn(leader_name)
        put(b"/bench/warmup").result()
        results["etcd"]["seq"] = sequential(put, args.writes, "etcd")
        results["etcd"]["pipe"] = pipelined(put, args.pipelined, args.inflight, "etcd")
        follower = next(n for n in etcd.names if n != leader_name)
        results["etcd"]["seq_follower"] = sequential(etcd.put_fn(follower), args.writes // 2, "ef")
        results["etcd"]["failover"] = failover(etcd, args.failovers)
    finally:
        etcd.close()
        shutil.rmtree(base, ignore_errors=True)

    floor = grpc_floor(args.pipelined, args.inflight)
    rk, et = results["raftkube"], results["etcd"]
    rows = [
        ("writes/s, 1 in flight (leader)", rk["seq"]["rate"], et["seq"]["rate"], "{:.0f}"),
        ("  p50 ms", rk["seq"]["p50"], et["seq"]["p50"], "{:.2f}"),
        ("  p99 ms", rk["seq"]["p99"], et["seq"]["p99"], "{:.2f}"),
        ("writes/s, 1 in flight (follower)", rk["seq_follower"]["rate"],
         et["seq_follower"]["rate"], "{:.0f}"),
        ("  p50 ms", rk["seq_follower"]["p50"], et["seq_follower"]["p50"], "{:.2f}"),
        (f"writes/s, {args.inflight} in flight", rk["pipe"]["rate"], et["pipe"]["rate"], "{:.0f}"),
        ("  p50 ms", rk["pipe"]["p50"], et["pipe"]["p50"], "{:.2f}"),
        ("  p99 ms", rk["pipe"]["p99"], et["pipe"]["p99"], "{:.2f}"),
        ("  errors", rk["pipe"]["errors"], et["pipe"]["errors"], "{:.0f}"),
        ("failover median s", statistics.median(rk["failover"]),
         statistics.median(et["failover"]), "{:.2f}"),
        ("failover max s", max(rk["failover"]), max(et["failover"]), "{:.2f}"),
    ]
    print(f"\n{'metric':<36}{'raftkube':>12}{'etcd 3.4':>12}")
    for name, a, b, fmt in rows:
        print(f"{name:<36}{fmt.format(a):>12}{fmt.format(b):>12}")
    print("\nno-op Python gRPC server in its own process, same client: "
          f"{floor['seq']['rate']:.0f} writes/s "
          f"1 in flight (p50 {floor['seq']['p50']:.2f} ms), {floor['pipe']['rate']:.0f} "
          f"writes/s {args.inflight} in flight")
    print(f"failover samples raftkube: {[round(x, 2) for x in rk['failover']]}")
    print(f"failover samples etcd:     {[round(x, 2) for x in et['failover']]}")
    print(f"100-in-flight ratio raftkube/etcd: {rk['pipe']['rate'] / et['pipe']['rate']:.2f}x")
    print(f"target, {args.inflight} in flight: 1.5x etcd = {1.5 * et['pipe']['rate']:.0f} "
          f"writes/s; the no-op Python gRPC server above: {floor['pipe']['rate']:.0f} writes/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
