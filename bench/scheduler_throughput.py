"""Scheduler throughput at scale: 3 master processes, N hollow nodes, M pods created
through Deployments; time until every pod is bound and until every pod reports Running.

    PYTHONPATH=. /work/venv/bin/python bench/scheduler_throughput.py \
        [--nodes 1000] [--pods 10000] [--deployments 10] [--renew-seconds 2] [--bound-only]

Prints our figures next to Kubernetes' published scheduler throughput. The bind rate is
measured from the first to the last binding seen on a watch (what the Kubernetes
SchedulingThroughput metric measures); end-to-end rates start at Deployment creation and
include the ReplicaSet controller creating every pod through Raft.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter

import grpc

from raftkube.api.v1 import apps_pb2, pod_pb2, resources_pb2
from raftkube.objects import registry
from raftkube.testing.hollow_nodes import HollowNodeConfig, HollowNodes
from raftkube.testing.master_cluster import MasterCluster

KUBERNETES_REFERENCE = (
    "Kubernetes, published: about 100 pods/s in 5,000-node density runs (kubernetes/"
    "kubernetes#56714, 'scheduler throughput ... ~300 pods per 10s', SIG Scalability "
    "density/load tests) and 300-900 pods/s in scheduler_perf (k8s.io/kubernetes/test/"
    "integration/scheduler_perf, SchedulingThroughput, 500 nodes, in-process API server).")


def deployment(name: str, replicas: int) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    c = pod_pb2.Container(name="app", image="localhost/busybox:latest",
                          command=["sleep", "3600"])
    c.resources.requests.update({"cpu": "10m", "memory": "16Mi"})
    d.spec.template.spec.containers.append(c)
    return d


class PodWatch:
    """Records when each pod was first seen, bound and Running (one watch stream)."""

    def __init__(self, stub, prefix: str) -> None:
        self.prefix = prefix
        self.created: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self._stream = stub.WatchBatched(resources_pb2.WatchRequest(kind="Pod"))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._stream:
                now = time.monotonic()
                for event in batch.events:
                    pod = registry.unwrap(event.object)
                    name = pod.metadata.name
                    if not name.startswith(self.prefix):
                        continue
                    self.created.setdefault(name, now)
                    if pod.spec.node_name:
                        self.bound.setdefault(name, now)
                    if pod.status.phase == "Running":
                        self.running.setdefault(name, now)
        except grpc.RpcError:
            return

    def stop(self) -> None:
        self._stream.cancel()


def count_running(stub, prefix: str) -> int:
    count, token = 0, ""
    while True:
        reply = stub.List(resources_pb2.ListRequest(kind="Pod", limit=500,
                                                    continue_token=token), timeout=60)
        count += sum(1 for item in reply.items
                     if (pod := registry.unwrap(item)).metadata.name.startswith(prefix)
                     and pod.status.phase == "Running")
        token = reply.metadata.continue_token
        if not token:
            return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--renew-seconds", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--election-timeout", type=float, default=2.0)
    parser.add_argument("--timeline", action="store_true",
                        help="print pods created and bound in each second of the run")
    parser.add_argument("--bound-only", action="store_true",
                        help="stop once every pod is bound (skip waiting for Running)")
    parser.add_argument("--logs", default="",
                        help="copy each master's log into this directory at the end")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C so the masters and hollow nodes are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prefix = f"bench{os.getpid() % 1000}"
    per = args.pods // args.deployments
    grace = max(6.0, 3 * args.renew_seconds)
    options = {"nodeLifecycle": {"node_monitor_grace_seconds": grace,
                                 "fencing_timeout_seconds": grace}}
    # A busy 2-core machine can starve the Raft thread of the GIL for longer than the
    # default 0.45 s election timeout; the longer timeouts keep one leader during the run.
    store = {"election_timeout_min": args.election_timeout,
             "election_timeout_max": 2 * args.election_timeout,
             "leader_lease_timeout": args.election_timeout * 0.7,
             "connection_timeout": 2 * args.election_timeout + 1}
    print(f"store: election timeout {args.election_timeout}-{2 * args.election_timeout}s",
          flush=True)
    with MasterCluster(3, controllers=options, store_overrides=store) as cluster:
        counter = itertools.count()
        stubs = [cluster.resources(i) for i in range(3)]

        def stub():
            return stubs[next(counter) % 3]

        started = time.monotonic()
        fleet = HollowNodes(stub, HollowNodeConfig(count=args.nodes, prefix=f"{prefix}-n",
                                                   renew_seconds=args.renew_seconds,
                                                   lease_seconds=int(grace), workers=24))
        fleet.start()
        print(f"{args.nodes} hollow nodes registered in {time.monotonic() - started:.1f}s "
              f"(leases renewed every {args.renew_seconds}s)", flush=True)
        try:
            leader = cluster.leader_index()
            watch = PodWatch(cluster.resources((leader + 1) % 3), prefix)
            t0 = time.monotonic()
            for i in range(args.deployments):
                stubs[i % 3].Create(resources_pb2.CreateRequest(
                    object=registry.wrap(deployment(f"{prefix}-d{i}", per))), timeout=30)
            total = per * args.deployments
            deadline = t0 + args.timeout
            last_report = 0.0
            listed_running = 0
            while len(watch.running) < total and time.monotonic() < deadline:
                time.sleep(0.5)
                if args.bound_only and len(watch.bound) >= total:
                    break
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    listed_running = count_running(stubs[leader], prefix)
                    print(f"  t={last_report - t0:6.1f}s created={len(watch.created)} "
                          f"bound={len(watch.bound)} running={len(watch.running)} "
                          f"(listed running: {listed_running})", flush=True)
                    if listed_running >= total and len(watch.bound) >= total:
                        print("  the watch missed some Running updates; the list has them all",
                              flush=True)
                        break
            watch.stop()
            report(args, total, t0, watch)
        finally:
            fleet.stop()
            if args.logs:
                os.makedirs(args.logs, exist_ok=True)
                for member in cluster.members:
                    role = "-leader" if member.index == leader else ""
                    shutil.copy(member.log_path,
                                os.path.join(args.logs, f"master-{member.index}{role}.log"))


def report(args, total: int, t0: float, watch: PodWatch) -> None:
    bound = sorted(watch.bound.values())
    running = sorted(watch.running.values())
    created = sorted(watch.created.values())
    print(f"\n== {total} pods in {args.deployments} Deployments on {args.nodes} hollow nodes, "
          "3 masters (Raft) ==")
    if len(bound) < total or (len(running) < total and not args.bound_only):
        print(f"INCOMPLETE: bound {len(bound)}/{total}, running {len(running)}/{total}")
    if created:
        print(f"pods created: all {len(created)} after {created[-1] - t0:.1f}s "
              f"({len(created) / max(created[-1] - t0, 1e-9):.0f} pods/s by the ReplicaSet "
              "controller)")
    if bound:
        span = bound[-1] - bound[0]
        print(f"bound: all {len(bound)} after {bound[-1] - t0:.1f}s; bind throughput "
              f"{len(bound) / max(span, 1e-9):.0f} pods/s (first to last binding), "
              f"{len(bound) / max(bound[-1] - t0, 1e-9):.0f} pods/s end to end")
    if running:
        print(f"running: all {len(running)} after {running[-1] - t0:.1f}s "
              f"({len(running) / max(running[-1] - t0, 1e-9):.0f} pods/s end to end)")
    if args.timeline and created:
        per_created = Counter(int(t - t0) for t in created)
        per_bound = Counter(int(t - t0) for t in bound)
        print("second  created  bound")
        for second in range(max([*per_created, *per_bound]) + 1):
            print(f"{second:6d} {per_created[second]:8d} {per_bound[second]:6d}")
    print(f"raftkube bind throughput: {len(bound) / max(bound[-1] - bound[0], 1e-9):.0f} "
          "pods/s" if bound else "raftkube bind throughput: n/a")
    print(KUBERNETES_REFERENCE)


if __name__ == "__main__":
    main()
