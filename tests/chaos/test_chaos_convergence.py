"""Convergence chaos on real masters with hollow workers: a Deployment (6 replicas) and a
StatefulSet (3 replicas) over 3 hollow nodes (real agents, fake runtime) while, in a seeded
order, a whole worker host dies for longer than the node-failure timeout and comes back,
the leading master is killed (restarted on heal) and the leading master is paused; during
each master fault one StatefulSet pod and one Deployment pod are deleted, so the next
leader's controllers have work to do.

Contracts checked:
- while the host is down (it stays down HOST_DOWN_SECONDS, past the node-monitor grace plus
  eviction toleration and past the fencing timeout plus margin), the same convergence is
  reached on the surviving nodes (failover);
- after each fault heals, within CONVERGE_TIMEOUT: 6 Deployment pods Running and Ready (none
  terminating) and every StatefulSet ordinal Running per the API *and* running in the fake
  runtime of the node its pod is bound to (`wait_converged`; times printed);
- throughout the run, no StatefulSet ordinal runs on two nodes at once
  (`check_ordinal_uniqueness`). "Runs" is the agent's view: a RUNNING container of pod
  `<sts>-<ordinal>` in a node's FakeRuntime, sampled every 50 ms. A dead host's containers
  die with it (the host-kill fault stops them in its runtime and silences its agent), so
  the check is about the masters: they must not place an ordinal twice, and a host that
  comes back must not restart the copy that was replaced while it was away.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from raftkube.api.v1 import apps_pb2, pod_pb2
from raftkube.client import Client
from raftkube.masters.controllers.node_lifecycle import FENCING_TIMEOUT_SECONDS
from raftkube.testing.chaos.checkers import (
    ConvergenceResult,
    OrdinalInterval,
    check_ordinal_uniqueness,
    wait_converged,
)
from raftkube.testing.chaos.cluster_faults import cluster_faults
from raftkube.testing.chaos.history import History
from raftkube.testing.chaos.nemesis import Fault, FaultError
from raftkube.testing.chaos.report import write_report
from raftkube.testing.hollow_agents import HollowFleet, HollowFleetConfig
from raftkube.testing.master_cluster import MasterCluster
from raftkube.testing.master_hooks import master_cluster_hooks
from raftkube.workers.runtime.fake_runtime import FakeRuntime
from raftkube.workers.runtime.interface import ContainerState
from tests.integration.controller_helpers import deployment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

DEPLOYMENT, REPLICAS = "conv-web", 6
STATEFULSET, ORDINALS = "conv-db", 3
NODES = 3
CONVERGE_TIMEOUT = 60.0
HOST_DOWN_SECONDS = FENCING_TIMEOUT_SECONDS + 6.0  # > grace + toleration and fencing + margin
MASTER_FAULT_SECONDS = 3.5
"""Kept below the agents' fencing timeout (6 s): a longer leader pause makes every agent
fence itself (its lease client stays on the paused master), which this test is not about."""


class OrdinalObserver:
    """Samples every hollow node's FakeRuntime and records, per StatefulSet ordinal, the
    intervals during which it ran on each node (start: first sample seeing a RUNNING
    container of the pod, stop: first sample not seeing it)."""

    def __init__(self, runtimes: dict[str, FakeRuntime], statefulset: str,
                 interval: float = 0.05) -> None:
        self._runtimes = runtimes
        self._prefix = f"{statefulset}-"
        self._interval = interval
        self._open: dict[tuple[int, str], float] = {}
        self._closed: list[OrdinalInterval] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ordinal-observer",
                                        daemon=True)

    def running(self) -> set[tuple[int, str]]:
        """(ordinal, node) pairs with a RUNNING container right now."""
        seen = set()
        for node, runtime in self._runtimes.items():
            for status in runtime.list_containers():
                name = status.pod_name
                if (status.state == ContainerState.RUNNING and name.startswith(self._prefix)
                        and name[len(self._prefix):].isdigit()):
                    seen.add((int(name[len(self._prefix):]), node))
        return seen

    def sample(self) -> None:
        now = time.monotonic()
        seen = self.running()
        with self._lock:
            for key in seen - set(self._open):
                self._open[key] = now
            for key in set(self._open) - seen:
                self._closed.append(OrdinalInterval(key[0], key[1], self._open.pop(key), now))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def start(self) -> OrdinalObserver:
        self._thread.start()
        return self

    def stop(self) -> list[OrdinalInterval]:
        """Stop sampling; every interval seen (open ones with stop None)."""
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            return [*self._closed,
                    *(OrdinalInterval(o, n, t) for (o, n), t in self._open.items())]


class HostKill(Fault):
    """A whole hollow worker host dies: its agent goes silent (no lease, no syncs) and its
    containers die with it; heal brings the agent back (the host rebooted, containers
    gone). The victim is a random node running a StatefulSet ordinal (any node if none)."""

    name = "kill-worker-host"

    def __init__(self, fleet: HollowFleet, observer: OrdinalObserver,
                 rng: random.Random) -> None:
        self._fleet = fleet
        self._observer = observer
        self._rng = rng
        self.victim: str | None = None

    def start(self) -> dict[str, Any]:
        stateful = sorted({node for _, node in self._observer.running()})
        self.victim = self._rng.choice(stateful or self._fleet.names)
        self._fleet.kill(self.victim)
        runtime = self._fleet.agents[self.victim].runtime
        killed = [c.container_id for c in runtime.list_containers()
                  if c.state == ContainerState.RUNNING]
        for container_id in killed:
            runtime.kill(container_id)
        return {"node": self.victim, "containers": len(killed)}

    def stop(self) -> dict[str, Any]:
        if self.victim is None:
            return {}
        self._fleet.revive(self.victim)
        return {"node": self.victim}


def statefulset(name: str, replicas: int) -> apps_pb2.StatefulSet:
    """A StatefulSet with the pod template and selector of `deployment(name, replicas)`."""
    like = deployment(name, replicas)
    sts = apps_pb2.StatefulSet(api_version="apps/v1", kind="StatefulSet")
    sts.metadata.name = name
    sts.spec.replicas = replicas
    sts.spec.selector.CopyFrom(like.spec.selector)
    sts.spec.template.CopyFrom(like.spec.template)
    return sts


def _ready(pod: pod_pb2.Pod) -> bool:
    return (pod.status.phase == "Running" and not pod.metadata.deletion_timestamp
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions))


def converged(client: Client, observer: OrdinalObserver) -> Callable[[], bool]:
    """The predicate: REPLICAS Ready Deployment pods (none terminating) and every ordinal
    Ready per the API and running in its bound node's runtime."""

    def check() -> bool:
        web = client.pods.list("default", label_selector=f"app={DEPLOYMENT}")
        if sum(1 for p in web if _ready(p)) != REPLICAS or len(web) != REPLICAS:
            return False
        db = {p.metadata.name: p for p in
              client.pods.list("default", label_selector=f"app={STATEFULSET}")}
        running = observer.running()
        for ordinal in range(ORDINALS):
            pod = db.get(f"{STATEFULSET}-{ordinal}")
            if pod is None or not _ready(pod) or (ordinal, pod.spec.node_name) not in running:
                return False
        return True

    return check


def disturb(client: Client, rng: random.Random, timeout: float = 30.0) -> list[str]:
    """Delete one random Ready StatefulSet pod and one random Ready Deployment pod (by
    uid precondition, retried across masters until `timeout`), so the controllers of
    whichever master leads next must replace them; returns the deleted pods' names."""
    deleted = []
    for app in (STATEFULSET, DEPLOYMENT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                pods = sorted((p for p in client.pods.list("default", label_selector=f"app={app}")
                               if _ready(p)), key=lambda p: p.metadata.name)
                if pods:
                    victim = rng.choice(pods)
                    client.pods.delete(victim.metadata.name, "default",
                                       precondition_uid=victim.metadata.uid)
                    deleted.append(victim.metadata.name)
                break
            except Exception as exc:  # no leader yet, unknown outcome, already gone: retry
                if time.monotonic() > deadline:
                    raise
                print(f"  delete of an {app} pod not done yet: {type(exc).__name__}",
                      flush=True)
                time.sleep(0.5)
    return deleted


def _start(fault: Fault, history: History) -> int:
    """Start `fault`, retrying a FaultError (e.g. no leader right after the last fault);
    returns its id on the history's timeline."""
    for attempt in range(20):
        try:
            detail = fault.start()
            print(f"  start {fault.name}: {detail}", flush=True)
            return history.fault_start(fault.name, detail)
        except FaultError as exc:
            if attempt == 19:
                raise
            print(f"  {fault.name} not started yet: {exc}", flush=True)
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _heal(fault: Fault, history: History, fault_id: int) -> None:
    detail = fault.stop()
    history.fault_stop(fault_id, detail)
    print(f"  heal {fault.name}: {detail}", flush=True)


def master_fault(fault: Fault, client: Client, rng: random.Random, history: History
                 ) -> None:
    """Hold `fault` exactly MASTER_FAULT_SECONDS while `disturb` runs beside it (it may
    outlast the fault: the SDK waits for a master), then heal and wait for `disturb`."""
    deleted: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            deleted.extend(disturb(client, rng))
        except BaseException as exc:
            errors.append(exc)

    fault_id = _start(fault, history)
    thread = threading.Thread(target=run, name="disturb", daemon=True)
    try:
        thread.start()
        time.sleep(MASTER_FAULT_SECONDS)
    finally:
        _heal(fault, history, fault_id)
    thread.join(60)
    assert not thread.is_alive() and not errors, errors
    print(f"  deleted during {fault.name}: {deleted}", flush=True)


def host_fault(fault: HostKill, client: Client, observer: OrdinalObserver,
               history: History) -> ConvergenceResult:
    """Kill a worker host, wait for the failover while it is down (at least
    HOST_DOWN_SECONDS down in all), heal; returns the failover's convergence."""
    fault_id = _start(fault, history)
    started = time.monotonic()
    try:
        failover = wait_converged(converged(client, observer),
                                  HOST_DOWN_SECONDS + CONVERGE_TIMEOUT,
                                  what="failover while the host is down")
        print(f"  {failover.summary()}", flush=True)
        time.sleep(max(0.0, started + HOST_DOWN_SECONDS - time.monotonic()))
    finally:
        _heal(fault, history, fault_id)
    return failover


def test_workloads_converge_and_ordinals_never_run_twice(chaos_seed: int, tmp_path: Path
                                                        ) -> None:
    rng = random.Random(chaos_seed)
    kinds = ["kill-worker-host", "kill-leader", "pause-leader"]
    rng.shuffle(kinds)
    print(f"fault order: {kinds}")
    results: list[ConvergenceResult] = []
    history = History()  # the fault timeline of the report
    with MasterCluster(3) as cluster:
        masters = cluster_faults(master_cluster_hooks(cluster), ["kill-leader", "pause-leader"])
        fleet = HollowFleet(HollowFleetConfig(
            count=NODES, client_config=cluster.layout.admin_config, prefix="conv",
            data_dir=str(cluster.root / "hollow"),  # removed with the cluster
            lease_interval_seconds=1.0, relist_interval_seconds=0.5))
        client = Client.from_config(cluster.layout.admin_config)
        observer = OrdinalObserver({n: a.runtime for n, a in fleet.agents.items()},
                                   STATEFULSET)
        try:
            fleet.start()
            observer.start()
            client.create(deployment(DEPLOYMENT, REPLICAS))
            client.create(statefulset(STATEFULSET, ORDINALS))
            first = wait_converged(converged(client, observer), CONVERGE_TIMEOUT,
                                   what="initial rollout")
            print(first.summary(), flush=True)
            assert first.valid, first.summary()
            placement = sorted(observer.running())
            print(f"ordinals on nodes: {placement}", flush=True)
            for kind in kinds:
                if kind == "kill-worker-host":
                    failover = host_fault(HostKill(fleet, observer, rng), client, observer,
                                          history)
                    assert failover.valid, failover.summary()
                    results.append(failover)
                else:
                    master_fault(masters[kind](rng), client, rng, history)
                result = wait_converged(converged(client, observer), CONVERGE_TIMEOUT,
                                        what=f"after {kind} healed")
                print(result.summary(), flush=True)
                results.append(result)
            time.sleep(2.0)  # a copy the revived host might restart would show by now
        finally:
            intervals = observer.stop()
            fleet.stop()
            client.close()
    ordinals = check_ordinal_uniqueness(intervals)
    print(ordinals.summary())
    print("convergence: " + ", ".join(f"{r.what} {r.elapsed:.1f}s" for r in results))
    paths = write_report(tmp_path / "report", history, [*results, ordinals], chaos_seed,
                         meta={"faults": kinds}, name="convergence")
    print(f"report: {paths.json}, {paths.text}, {paths.png}")
    assert all(r.valid for r in results), "\n".join(r.summary() for r in results)
    assert ordinals.valid, ordinals.summary()
    moved = sorted({o.ordinal for o in intervals if o.stop is not None})
    print(f"ordinals replaced at least once: {moved}")
    assert moved, intervals  # deleted and dead-host ordinals ran again: the check saw moves


def test_a_master_paused_past_the_fencing_timeout_does_not_fence_the_agents() -> None:
    """Regression (found by the test above with longer pauses): the SDK kept sending to a
    master that had swallowed a write until its deadline, so while that master was paused
    every Lease renewal timed out on it and every agent fenced itself, stopping its
    StatefulSet pods. Now the next call goes to another master."""
    with MasterCluster(3) as cluster:
        fleet = HollowFleet(HollowFleetConfig(
            count=NODES, client_config=cluster.layout.admin_config, prefix="pause",
            data_dir=str(cluster.root / "hollow"), lease_interval_seconds=1.0,
            relist_interval_seconds=0.5))
        fenced: set[str] = set()
        try:
            fleet.start()
            used = fleet.lease_client.current_master
            target = next(m.index for m in cluster.members if m.api_address == used)
            cluster.pause(target)  # the master every Lease renewal goes to right now
            try:
                deadline = time.monotonic() + FENCING_TIMEOUT_SECONDS + 4.0
                while time.monotonic() < deadline:
                    fenced |= {name for name, a in fleet.agents.items() if a.fenced()}
                    time.sleep(0.2)
                moved_to = fleet.lease_client.current_master
            finally:
                cluster.resume(target)
        finally:
            fleet.stop()
    print(f"paused {used}; Lease renewals moved to {moved_to}; fenced: {sorted(fenced)}")
    assert moved_to != used
    assert not fenced, f"agents fenced while one master was paused: {sorted(fenced)}"
