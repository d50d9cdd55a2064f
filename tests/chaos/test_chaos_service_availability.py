"""A Service keeps answering, and nothing acknowledged is lost, while the control plane and
the worker agents fail: a real `raftkube up` cluster (3 master processes, 2 worker hosts in
network namespaces with their own Podman and nftables), the demo app, and faults in a
seeded order:

    kill-leader   SIGKILL the Raft leader (a web pod is deleted meanwhile), restart it
    pause-leader  SIGSTOP the leader, SIGCONT
    kill-all      SIGKILL every master at once, restart them all
    kill-agent    SIGKILL one worker's agent only (its containers run on), restart it
    agent+leader  both at once: a leader election while an agent is down (overlapping)
then, last, a whole worker host dies (agent, watchdog, containers, Podman: the host the
client does not talk to) and comes back once the Service is whole again without it.

While they run, a client fetches the web Service through its NodePort from outside the
cluster (bounded: at most MAX_REQUESTS), and a writer creates ConfigMaps one after the
other through the SDK. After each fault heals, the cluster must converge (web and kv
Ready, the Service's endpoints full, nodes Ready). At the end:
- until the host died, the Service failed at most MAX_FAILED_SHARE of the requests (the
  data plane does not depend on the masters or the agents) and never went MAX_GAP without
  answering; after the host died, it answered every request again within
  HOST_RECOVERY_BOUND (its pods are evicted and replaced, the endpoints updated);
- every acknowledged ConfigMap exists, and none that was refused;
- the pods of the node whose agent was killed kept their containers (no restart);
- the masters' state hashes agree at equal revisions.
"""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import Client
from raftkube.cluster.demo import deploy_demo
from raftkube.cluster.local_cluster import LocalClusterState
from raftkube.testing.chaos.checkers import Sample, check_divergence, summarize_availability
from raftkube.testing.chaos.cluster_faults import cluster_faults
from raftkube.testing.chaos.nemesis import Fault, FaultError
from raftkube.testing.local_cluster_hooks import (
    WorkerHostKill,
    local_agent_hooks,
    local_master_hooks,
)
from raftkube.testing.local_cluster_run import local_cluster

pytestmark = [pytest.mark.slow, pytest.mark.podman, pytest.mark.netns,
              pytest.mark.timeout(1500)]

NAMESPACE = "demo"
NODE_PORT = 30080
MAX_REQUESTS = 20_000
MAX_WRITES = 5_000
HOLD_SECONDS = {"kill-leader": 4.0, "pause-leader": 4.0, "kill-all": 4.0, "kill-agent": 1.0}
CONVERGE_TIMEOUT = 120.0
MAX_FAILED_SHARE = 0.01
MAX_GAP = 3.0
HOST_RECOVERY_BOUND = 30.0
HOST_MAX_GAP = 10.0


class Prober(threading.Thread):
    """Fetches `url` about 20 times a second until stopped (or MAX_REQUESTS)."""

    def __init__(self, url: str) -> None:
        super().__init__(name="prober", daemon=True)
        self.url = url
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        for _ in range(MAX_REQUESTS):
            if self.stop_event.is_set():
                return
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    ok = b"It works" in response.read()
            except OSError:
                ok = False
            self.samples.append(Sample(started, ok, time.monotonic() - started))
            time.sleep(0.05)


class Writer(threading.Thread):
    """Creates ConfigMaps cm-0, cm-1, ... one at a time until stopped (or MAX_WRITES);
    sorts each name into acknowledged, refused (certainly not written) or unknown."""

    def __init__(self, client: Client) -> None:
        super().__init__(name="writer", daemon=True)
        self.client = client
        self.acked: set[str] = set()
        self.refused: set[str] = set()
        self.unknown: set[str] = set()
        self.stop_event = threading.Event()

    def run(self) -> None:
        for i in range(MAX_WRITES):
            if self.stop_event.is_set():
                return
            cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
            cm.metadata.name, cm.metadata.namespace = f"cm-{i}", NAMESPACE
            cm.data["i"] = str(i)
            try:
                self.client.create(cm)
                self.acked.add(cm.metadata.name)
            except apierrors.AlreadyExists:  # a retry of a create that had committed
                self.acked.add(cm.metadata.name)
            except apierrors.ApiError as exc:
                certain = isinstance(exc, apierrors.Invalid | apierrors.Forbidden)
                (self.refused if certain else self.unknown).add(cm.metadata.name)
            time.sleep(0.02)


def _ready(pod: core_pb2.Pod) -> bool:
    return not pod.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _converged(client: Client) -> bool:
    try:
        web = [p for p in client.pods.list(NAMESPACE, label_selector="app=web") if _ready(p)]
        kv = client.get("StatefulSet", "kv", NAMESPACE)
        endpoints = client.get("Endpoints", "web", NAMESPACE)
        nodes = client.nodes.list()
    except apierrors.ApiError:
        return False
    addresses = sum(len(s.addresses) for s in endpoints.subsets)
    nodes_ready = all(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
                      for n in nodes)
    return (len(web) == 3 and kv.status.ready_replicas == kv.spec.replicas and addresses == 3
            and nodes_ready)


def _wait_converged(client: Client, what: str) -> float:
    started = time.monotonic()
    while not _converged(client):
        if time.monotonic() - started > CONVERGE_TIMEOUT:
            raise AssertionError(f"not converged {CONVERGE_TIMEOUT:.0f} s after {what}")
        time.sleep(0.5)
    return time.monotonic() - started


def _containers_on(client: Client, node: str) -> dict[str, tuple[str, int]]:
    """pod uid -> (container id, restart count) of the ready web pods bound to `node`
    (the StatefulSet's are fenced when the agent's restart outlasts the fencing timeout)."""
    out = {}
    for pod in client.pods.list(NAMESPACE, label_selector="app=web"):
        if pod.spec.node_name == node and _ready(pod) and pod.status.container_statuses:
            status = pod.status.container_statuses[0]
            out[pod.metadata.uid] = (status.container_id, status.restart_count)
    return out


def _delete_a_web_pod(client: Client, rng: random.Random, deleted: list[str]) -> None:
    """Delete one ready web pod (retrying until a leader takes the write)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            pods = sorted((p for p in client.pods.list(NAMESPACE, label_selector="app=web")
                           if _ready(p)), key=lambda p: p.metadata.name)
            victim = rng.choice(pods)
            client.pods.delete(victim.metadata.name, NAMESPACE,
                               precondition_uid=victim.metadata.uid)
            deleted.append(victim.metadata.name)
            return
        except (apierrors.ApiError, IndexError):
            time.sleep(0.5)


def _start(fault: Fault) -> dict:
    for attempt in range(40):
        try:
            return fault.start()
        except FaultError:  # e.g. no leader yet right after the previous fault
            if attempt == 39:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _state_hashes(client: Client, timeout: float = 60.0) -> dict[str, dict[int, str]]:
    """master -> {revision: state hash}, polled until all reported a common revision."""
    seen: dict[str, dict[int, str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for address in client.masters:
            try:
                status = client.admin.local_status(address)
            except apierrors.ApiError:
                continue
            seen.setdefault(status.name, {})[int(status.revision)] = status.state_hash
        common = set.intersection(*(set(v) for v in seen.values())) if seen else set()
        if (len(seen) == len(client.masters) and common) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def _converged_without(client: Client, node: str) -> bool:
    """The Service is whole on the other nodes: 3 ready web pods, none on `node`, and the
    endpoints list exactly those."""
    try:
        web = [p for p in client.pods.list(NAMESPACE, label_selector="app=web") if _ready(p)]
        endpoints = client.get("Endpoints", "web", NAMESPACE)
    except apierrors.ApiError:
        return False
    addresses = {a.ip for s in endpoints.subsets for a in s.addresses}
    return (len(web) == 3 and all(p.spec.node_name != node for p in web)
            and addresses == {p.status.pod_ip for p in web})


def _run_step(kinds: list[str], faults: dict, client: Client, rng: random.Random,
              deleted: list[str]) -> float:
    """Start the faults of one step together, hold, heal in reverse order, wait for
    convergence; returns how long convergence took after the heal."""
    started: list[tuple[str, Fault]] = []
    kept: dict[str, tuple[str, int]] = {}
    agent_node = ""
    disturb = None
    try:
        for kind in kinds:
            fault = faults[kind](rng)
            detail = _start(fault)
            started.append((kind, fault))
            print(f"start {kind}: {detail}", flush=True)
            if kind == "kill-agent":
                agent_node = detail["members"][0]
                kept = _containers_on(client, agent_node)
            if kind == "kill-leader":
                disturb = threading.Thread(target=_delete_a_web_pod,
                                           args=(client, rng, deleted), daemon=True)
                disturb.start()
        time.sleep(max(HOLD_SECONDS[k] for k in kinds))
    finally:
        for kind, fault in reversed(started):
            print(f"heal {kind}: {fault.stop()}", flush=True)
    if disturb is not None:
        disturb.join(90)
    elapsed = _wait_converged(client, f"{'+'.join(kinds)} healed")
    if agent_node:
        after = _containers_on(client, agent_node)
        assert kept and all(after.get(uid) == was for uid, was in kept.items()
                            if uid in after), (kept, after)
    return elapsed


def _kill_host(state: LocalClusterState, client: Client, node: str) -> tuple[float, float]:
    """Kill worker host `node`; return (when it died, seconds until the Service was whole
    on the other nodes); heal once it is and wait for full convergence."""
    fault = WorkerHostKill(state, lambda: node)
    died = time.monotonic()
    print(f"start kill-worker-host: {fault.start()}", flush=True)
    try:
        while not _converged_without(client, node):
            if time.monotonic() - died > CONVERGE_TIMEOUT:
                raise AssertionError(f"the Service was not whole without {node} after "
                                     f"{CONVERGE_TIMEOUT:.0f} s")
            time.sleep(0.25)
        whole = time.monotonic() - died
        print(f"Service whole without {node} {whole:.1f} s after it died", flush=True)
    finally:
        print(f"heal kill-worker-host: {fault.stop()}", flush=True)
    print(f"converged {_wait_converged(client, 'the host came back'):.1f} s after the host "
          "came back", flush=True)
    return died, whole


def _processes_naming(text: str) -> list[str]:
    """Command lines of the processes that mention `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def test_the_service_answers_and_nothing_is_lost_while_masters_agents_and_hosts_fail(
        chaos_seed: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("raftkube up needs root")
    rng = random.Random(chaos_seed)
    plan = [["kill-leader"], ["pause-leader"], ["kill-all"], ["kill-agent"],
            ["kill-agent", "kill-leader"]]
    rng.shuffle(plan)
    print(f"fault order: {plan}, then kill-worker-host", flush=True)
    with local_cluster(masters=3, workers=2) as config:
        deploy_demo(config, timeout=300, progress=lambda _m: None)
        state = LocalClusterState.load(config.state_dir)
        assert state is not None and state.hosts is not None
        probed, doomed = state.hosts.hosts[0], state.hosts.hosts[1]
        client = Client.from_config(config.client_config)
        writer_client = Client.from_config(config.client_config)
        prober = Prober(f"http://{probed.address}:{NODE_PORT}/")
        writer = Writer(writer_client)
        deleted: list[str] = []
        converge_times = []
        try:
            _wait_converged(client, "the demo's rollout")
            faults = {**cluster_faults(local_master_hooks(state, client),
                                       ["kill-leader", "pause-leader", "kill-all"]),
                      "kill-agent": cluster_faults(local_agent_hooks(state),
                                                   ["kill-random"])["kill-random"]}
            prober.start()
            writer.start()
            time.sleep(2.0)
            for kinds in plan:
                elapsed = _run_step(kinds, faults, client, rng, deleted)
                converge_times.append(("+".join(kinds), elapsed))
                print(f"converged {elapsed:.1f} s after {'+'.join(kinds)} healed", flush=True)
            died, whole = _kill_host(state, client, doomed.name)
            time.sleep(2.0)
        finally:
            prober.stop_event.set()
            writer.stop_event.set()
            prober.join(30)
            writer.join(60)
        before = summarize_availability([s for s in prober.samples if s.time < died],
                                        max_failed_share=MAX_FAILED_SHARE, max_gap=MAX_GAP)
        host_window = [s for s in prober.samples if s.time >= died]
        after = summarize_availability(host_window, max_gap=HOST_MAX_GAP)
        failures = [s.time + s.latency - died for s in host_window if not s.ok]
        answering_again = max(failures, default=0.0)
        print(f"until the host died: {before.summary()}", flush=True)
        print(f"after the host died: {after.summary()}; every request answered again "
              f"{answering_again:.1f} s after it died (endpoints without it after "
              f"{whole:.1f} s)", flush=True)
        print(f"web pods deleted during kill-leader: {deleted}", flush=True)
        present = {cm.metadata.name for cm in client.list("ConfigMap", NAMESPACE)
                   if cm.metadata.name.startswith("cm-")}
        lost = writer.acked - present
        phantom = present & writer.refused
        print(f"ConfigMaps: {len(writer.acked)} acknowledged, {len(writer.unknown)} unknown "
              f"outcome, {len(writer.refused)} refused; {len(present)} present", flush=True)
        divergence = check_divergence(_state_hashes(client))
        print(divergence.summary(), flush=True)
        client.close()
        writer_client.close()
    print("converged after: " + ", ".join(f"{k} {t:.1f}s" for k, t in converge_times))
    assert not _processes_naming(str(config.state_dir)), (
        "raftkube down left processes of the cluster running (a killed worker's Podman "
        "service, a watchdog...)")
    assert before.requests > 200, before.summary()
    assert before.valid, before.summary()
    assert after.valid, after.summary()
    assert answering_again <= HOST_RECOVERY_BOUND, answering_again
    assert not lost, f"acknowledged but lost: {sorted(lost)[:20]}"
    assert not phantom, f"refused but present: {sorted(phantom)[:20]}"
    assert len(writer.acked) > 50, "the writer got writes through"
    assert divergence.valid, divergence.summary()
