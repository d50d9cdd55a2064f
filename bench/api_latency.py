"""API server benchmark: mutating-call latency at a steady rate through the leader and a
follower, and list/watch of many pods — on 3 real master processes (TLS, tokens, Raft with
fsync), side by side with Kubernetes' published SLOs.

    .venv/bin/python bench/api_latency.py [--rate 200] [--seconds 10] [--pods 10000]

Kubernetes' SLOs (kubernetes/community, sig-scalability/slos/api_call_latency.md):
mutating API calls p99 <= 1 s; list calls p99 <= 30 s for cluster-scoped lists.
Load is bounded (rate x seconds calls) and goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftkube.api.v1 import core_pb2, pod_pb2, resources_pb2
from raftkube.objects import registry
from raftkube.testing.hollow_nodes import HollowNodeConfig, HollowNodes
from raftkube.testing.master_cluster import MasterCluster

BENCH_NODE = "bench-0"
K8S_MUTATING_P99_SLO_MS = 1000.0
K8S_LIST_P99_SLO_S = 30.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def steady_writes(cluster: MasterCluster, index: int, rate: int, seconds: float,
                  prefix: str) -> list[float]:
    """Create ConfigMaps at `rate` per second (open loop) and return latencies in ms."""
    stub = cluster.resources(index)
    total = int(rate * seconds)
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def one(n: int) -> None:
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        cm.metadata.name = f"{prefix}-{n}"
        cm.data["n"] = str(n)
        t0 = time.perf_counter()
        stub.Create(resources_pb2.CreateRequest(object=registry.wrap(cm)), timeout=10)
        with lock:
            latencies.append((time.perf_counter() - t0) * 1000)

    with futures.ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(one, range(total)))
    return latencies


def create_pods(cluster: MasterCluster, count: int) -> float:
    stub = cluster.resources(cluster.leader_index())

    def one(n: int) -> None:
        pod = pod_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name = f"bench-{n}"
        pod.metadata.labels["app"] = f"app-{n % 50}"
        c = pod.spec.containers.add(name="web", image="localhost/busybox:latest")
        c.command.extend(["httpd", "-f", "-p", "8080"])
        c.resources.requests["cpu"] = "10m"
        # Bound to a (hollow) node already: the scheduler leaves them alone, so the
        # figures are the API's, not the scheduler's; the hollow node reports them Running
        # as a kubelet would.
        pod.spec.node_name = BENCH_NODE
        stub.Create(resources_pb2.CreateRequest(object=registry.wrap(pod)), timeout=30)

    t0 = time.perf_counter()
    with futures.ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pods", type=int, default=10000)
    args = parser.parse_args()
    with MasterCluster(3) as cluster:
        leader = cluster.leader_index()
        follower = next(i for i in range(3) if i != leader)
        rows = []
        for label, index in (("leader", leader), ("follower", follower)):
            lat = steady_writes(cluster, index, args.rate, args.seconds, f"w-{label}")
            rows.append((label, len(lat), statistics.median(lat), percentile(lat, 0.99)))
        print(f"\nmutating calls (create) at {args.rate}/s for {args.seconds:.0f} s, "
              "3 masters, TLS + token auth, Raft with fsync")
        print(f"{'via':<10}{'calls':>8}{'p50 ms':>10}{'p99 ms':>10}"
              f"{'Kubernetes SLO p99 ms':>24}")
        for label, n, p50, p99 in rows:
            print(f"{label:<10}{n:>8}{p50:>10.1f}{p99:>10.1f}{K8S_MUTATING_P99_SLO_MS:>24.0f}")

        hollow = HollowNodes(lambda: cluster.resources(0),
                             HollowNodeConfig(count=1, prefix="bench", pods="100000"))
        hollow.start()
        created_in = create_pods(cluster, args.pods)
        print(f"\ncreated {args.pods} pods in {created_in:.1f} s "
              f"({args.pods / created_in:.0f} creates/s, 64 concurrent clients)")
        stub = cluster.resources(follower)
        t0 = time.perf_counter()
        listed = stub.List(resources_pb2.ListRequest(kind="Pod", namespace="default",
                                                     linearizable=True), timeout=120)
        list_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        labelled = stub.List(resources_pb2.ListRequest(kind="Pod", label_selector="app=app-7"),
                             timeout=120)
        select_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        seen = 0
        stream = stub.Watch(resources_pb2.WatchRequest(kind="Pod", namespace="default"),
                            timeout=300)
        for _event in stream:
            seen += 1
            if seen == args.pods:
                stream.cancel()
                break
        watch_s = time.perf_counter() - t0
        print(f"{'operation':<44}{'items':>8}{'seconds':>10}{'K8s SLO p99 s':>16}")
        print(f"{'list all pods (follower, linearizable)':<44}{len(listed.items):>8}{list_s:>10.2f}"
              f"{K8S_LIST_P99_SLO_S:>16.0f}")
        print(f"{'list with label selector app=app-7':<44}{len(labelled.items):>8}"
              f"{select_s:>10.2f}{K8S_LIST_P99_SLO_S:>16.0f}")
        print(f"{'watch from now: initial state as ADDED':<44}{seen:>8}{watch_s:>10.2f}"
              f"{'-':>16}")
        hollow.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
