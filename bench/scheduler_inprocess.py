"""Scheduler throughput in isolation (the scheduler_perf shape): a real one-member store
in this process, N nodes, M pending pods already stored; time from the scheduler's start
until every pod is bound (each binding a CAS write through ObjectApi.bind_pods, batched
into Raft transactions).

    PYTHONPATH=. /work/venv/bin/python bench/scheduler_inprocess.py [--nodes 1000] [--pods 10000]

Kubernetes' scheduler_perf does the same with an in-process API server and etcd
(SchedulingThroughput, 500 nodes): 300-900 pods/s in published runs.
"""

from __future__ import annotations

import argparse
import contextvars
import threading
import time

from raftkube.api.v1 import core_pb2, pod_pb2
from raftkube.masters.bootstrap_loop import CONTROLLER_PRINCIPAL
from raftkube.masters.controllers.manager import ControllerContext
from raftkube.masters.controllers.scheduler import Scheduler
from raftkube.masters.controllers.scheduling import SchedulerConfig
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.object_api import ObjectApi
from raftkube.masters.object_cache import ObjectCache
from raftkube.masters.object_store import ObjectStore
from raftkube.security.grpc_auth import acting_as
from raftkube.security.rbac import Authorizer, Policy
from raftkube.testing.single_store import single_member_store

REFERENCE = ("Kubernetes scheduler_perf (k8s.io/kubernetes/test/integration/scheduler_perf, "
             "SchedulingThroughput, 500 nodes, in-process API server + etcd): 300-900 pods/s "
             "in published runs; 5,000-node cluster density runs: about 100 pods/s "
             "(kubernetes/kubernetes#56714).")


def node(i: int) -> core_pb2.Node:
    n = core_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = f"node-{i}"
    n.metadata.labels["kubernetes.io/hostname"] = n.metadata.name
    n.status.allocatable.update({"cpu": "32", "memory": "128Gi", "pods": "110"})
    n.status.conditions.add(type="Ready", status="True")
    return n


def pod(i: int) -> pod_pb2.Pod:
    p = pod_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = f"pod-{i}"
    p.metadata.labels["app"] = f"app-{i % 10}"
    p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet",
                                     name=f"app-{i % 10}", uid=f"uid-app-{i % 10}",
                                     controller=True)
    c = p.spec.containers.add(name="app", image="localhost/busybox:latest")
    c.resources.requests.update({"cpu": "100m", "memory": "64Mi"})
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10_000)
    args = parser.parse_args()
    with single_member_store(history_max_revisions=100_000) as store, \
            acting_as(CONTROLLER_PRINCIPAL):
        api = ObjectApi(ObjectStore(store), Gatekeeper(Authorizer(
            policy_source=lambda: Policy())))
        for start in range(0, args.nodes, 100):
            made = api.create_many([node(i) for i in range(start, min(start + 100,
                                                                        args.nodes))])
            for n in made:
                n.status.conditions.add(type="Ready", status="True")
                n.status.allocatable.update({"cpu": "32", "memory": "128Gi", "pods": "110"})
                api.update_status(n)
        for start in range(0, args.pods, 100):
            api.create_many([pod(i) for i in range(start, min(start + 100, args.pods))])
        cache = ObjectCache(ObjectStore(store), ("Node", "Pod", "PersistentVolume",
                                                 "PersistentVolumeClaim"))
        scheduler = Scheduler(ControllerContext(api, cache, 1), SchedulerConfig())
        cache.add_handler(scheduler.on_change)
        cache.start()
        cache.wait_synced(30)
        stop = threading.Event()
        started = time.monotonic()
        thread = threading.Thread(target=contextvars.copy_context().run,
                                  args=(scheduler.run, stop), daemon=True)
        thread.start()
        deadline = started + 300
        while scheduler.bound_total < args.pods and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        stop.set()
        thread.join(10)
        cache.stop()
        placed = {}
        for p in api.objects.list(api.kind("Pod"))[0]:
            placed[p.spec.node_name] = placed.get(p.spec.node_name, 0) + 1
        print(f"== scheduler in process: {args.pods} pending pods, {args.nodes} nodes, "
              "real one-member Raft store (fsync) ==")
        print(f"bound {scheduler.bound_total} pods in {elapsed:.2f}s: "
              f"raftkube {scheduler.bound_total / elapsed:.0f} pods/s; pods per node "
              f"min {min(placed.values())} max {max(placed.values())}")
        print(REFERENCE)


if __name__ == "__main__":
    main()
