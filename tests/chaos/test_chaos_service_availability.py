"""A Service keeps answering, and nothing acknowledged is lost, while the control plane and
the worker agents fail: a real `raftkube up` cluster (3 master processes, 3 worker hosts in
network namespaces with their own Podman and nftables), the demo app, and faults in a
seeded order:

    kill-leader   SIGKILL the Raft leader (a web pod is deleted meanwhile), restart it
    pause-leader  SIGSTOP the leader, SIGCONT
    kill-all      SIGKILL every master at once, restart them all
    kill-agent    SIGKILL the agent of a node running web pods (its containers run on),
                  restart it
    agent+leader  both at once: a leader election while an agent is down (overlapping)
    partition-worker  one worker host cut off the masters (nft drop of their ports in its
                  namespace) past eviction and fencing, data plane untouched, then healed
then, last, a whole worker host dies (agent, watchdog, containers, Podman: the one running
most web pods) and comes back once the Service is whole again without it.

While they run, a client fetches the web pods through a NodePort Service (without session
affinity) from outside the cluster (bounded: at most MAX_REQUESTS), and a writer creates
ConfigMaps one after the other through the SDK. After each fault heals, the cluster must
converge (web and kv Ready, the Service's endpoints full, nodes Ready). At the end:
- until the host died, the Service failed at most MAX_FAILED_SHARE of the requests (the
  data plane does not depend on the masters or the agents) and never went MAX_GAP without
  answering; after the host died, it answered every request again within
  HOST_RECOVERY_BOUND (its pods are evicted and replaced, the endpoints updated);
- every acknowledged ConfigMap exists, and none that was refused;
- the pods of the node whose agent was killed kept their containers (no restart);
- the masters' state hashes agree at equal revisions.
"""

from __future__ import annotations

import datetime
import os
import random
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import Client
from raftkube.cluster.demo import deploy_demo
from raftkube.cluster.local_cluster import LocalClusterState, processes_naming
from raftkube.objects.manifests import load_text
from raftkube.testing.chaos.checkers import (
    check_divergence,
    check_set,
    samples_from_history,
    summarize_availability,
)
from raftkube.testing.chaos.cluster_faults import cluster_faults
from raftkube.testing.chaos.history import DefiniteFailure, History
from raftkube.testing.chaos.nemesis import Fault, FaultError
from raftkube.testing.chaos.report import write_report
from raftkube.testing.local_cluster_hooks import (
    ControlPlaneCut,
    WorkerHostKill,
    local_agent_hooks,
    local_master_hooks,
)
from raftkube.testing.local_cluster_run import local_cluster
from raftkube.workers.agent.config import LEASE_NAMESPACE

pytestmark = [pytest.mark.slow, pytest.mark.podman, pytest.mark.netns,
              pytest.mark.timeout(1500)]

NAMESPACE = "demo"
NODE_PORT = 30090
# The demo's own NodePort Service keeps a client on one pod (sessionAffinity: ClientIP);
# this one spreads every request over all web pods, so a dead pod is noticed.
PROBE_SERVICE = f"""\
apiVersion: v1
kind: Service
metadata: {{name: web-probe, namespace: {NAMESPACE}}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {NODE_PORT}}}]
"""
MAX_REQUESTS = 20_000
MAX_WRITES = 5_000
HOLD_SECONDS = {"kill-leader": 4.0, "pause-leader": 4.0, "kill-all": 4.0, "kill-agent": 1.0,
                "partition-worker": 12.0}
CONVERGE_TIMEOUT = 120.0
HEALED_BOUND = 30.0  # every step converges this soon after its faults heal
MAX_FAILED_SHARE = 0.01
MAX_GAP = 3.0
HOST_RECOVERY_BOUND = 30.0
HOST_MAX_GAP = 20.0


class Prober(threading.Thread):
    """Fetches `url` about 20 times a second until stopped (or MAX_REQUESTS); each request
    is an operation "get" of the history (ok: the page came back)."""

    def __init__(self, url: str, history: History) -> None:
        super().__init__(name="prober", daemon=True)
        self.url = url
        self.history = history
        self.stop_event = threading.Event()

    def _fetch(self) -> None:
        with urllib.request.urlopen(self.url, timeout=2) as response:
            if b"It works" not in response.read():
                raise RuntimeError("unexpected page")

    def run(self) -> None:
        for _ in range(MAX_REQUESTS):
            if self.stop_event.is_set():
                return
            self.history.record("prober", "get", None, None, self._fetch)
            time.sleep(0.05)


class Writer(threading.Thread):
    """Creates ConfigMaps cm-0, cm-1, ... one at a time until stopped (or MAX_WRITES); each
    is an operation "create" of the history: ok (acknowledged), fail (refused for certain)
    or info (unknown outcome)."""

    def __init__(self, client: Client, history: History) -> None:
        super().__init__(name="writer", daemon=True)
        self.client = client
        self.history = history
        self.stop_event = threading.Event()

    def _create(self, i: int) -> None:
        cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        cm.metadata.name, cm.metadata.namespace = f"cm-{i}", NAMESPACE
        cm.data["i"] = str(i)
        try:
            self.client.create(cm)
        except apierrors.AlreadyExists:  # a retry of a create that had committed
            return
        except (apierrors.Invalid, apierrors.Forbidden) as exc:
            raise DefiniteFailure(str(exc)) from exc

    def run(self) -> None:
        for i in range(MAX_WRITES):
            if self.stop_event.is_set():
                return
            self.history.record("writer", "create", None, f"cm-{i}",
                                lambda i=i: self._create(i))
            time.sleep(0.02)


def _ready(pod: core_pb2.Pod) -> bool:
    return not pod.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _convergence_gaps(client: Client, renewed_after: datetime.datetime | None = None
                      ) -> list[str]:
    """What keeps the cluster from its desired state (empty: converged). With
    `renewed_after`, also every node whose Lease was not renewed since then: its agent is
    not running (a Node stays Ready for the grace period after its agent dies)."""
    try:
        web = [p for p in client.pods.list(NAMESPACE, label_selector="app=web") if _ready(p)]
        kv = client.get("StatefulSet", "kv", NAMESPACE)
        kv_pods = client.pods.list(NAMESPACE, label_selector="app=kv")
        endpoints = client.get("Endpoints", "web", NAMESPACE)
        nodes = client.nodes.list()
        leases = client.list("Lease", LEASE_NAMESPACE) if renewed_after else []
    except apierrors.ApiError as exc:
        return [f"API: {type(exc).__name__}"]
    gaps = []
    if len(web) != 3:
        gaps.append(f"{len(web)} ready web pods")
    if kv.status.ready_replicas != kv.spec.replicas:
        gaps.append(f"kv {kv.status.ready_replicas}/{kv.spec.replicas} ready: " + ", ".join(
            f"{p.metadata.name}@{p.spec.node_name or '-'} {p.status.phase}"
            f"{' ready' if _ready(p) else ''}" for p in kv_pods))
    addresses = sum(len(s.addresses) for s in endpoints.subsets)
    if addresses != 3:
        gaps.append(f"{addresses} web endpoints")
    for n in nodes:
        ready = next((c for c in n.status.conditions if c.type == "Ready"), None)
        if ready is None or ready.status != "True":
            gaps.append(f"node {n.metadata.name} not Ready" + (
                f" ({ready.status}: {ready.reason})" if ready is not None else ""))
    if renewed_after is not None:
        renewed = {lease.metadata.name: datetime.datetime.fromisoformat(
            lease.spec.renew_time.replace("Z", "+00:00")) for lease in leases}
        gaps += [f"node {n.metadata.name}: Lease not renewed since the heal" for n in nodes
                 if renewed.get(n.metadata.name, renewed_after) <= renewed_after]
    return gaps


def _wait_converged(client: Client, what: str) -> float:
    """Seconds until converged after `what` (every agent renewed its Lease after the call);
    what is missing is printed every 10 s."""
    started = last_report = time.monotonic()
    since = datetime.datetime.now(datetime.UTC)
    while gaps := _convergence_gaps(client, since):
        now = time.monotonic()
        if now - started > CONVERGE_TIMEOUT:
            raise AssertionError(f"not converged {CONVERGE_TIMEOUT:.0f} s after {what}: "
                                 f"{'; '.join(gaps)}")
        if now - last_report > 10:
            print(f"  {now - started:.0f} s after {what}: {'; '.join(gaps)}", flush=True)
            last_report = now
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


def _nodes_with_web_pods(client: Client) -> list[str]:
    return sorted({p.spec.node_name for p in client.pods.list(
        NAMESPACE, label_selector="app=web") if _ready(p)})


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


def _wait_answering(url: str, timeout: float = 60.0) -> None:
    """Until `url` serves the page (the probe Service's rules are in place)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if b"It works" in response.read():
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout:.0f} s")
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
              deleted: list[str], history: History) -> float:
    """Start the faults of one step together, hold, heal in reverse order, wait for
    convergence; returns how long convergence took after the heal."""
    started: list[tuple[str, Fault, int]] = []
    kept: dict[str, tuple[str, int]] = {}
    agent_node = ""
    disturb = None
    try:
        for kind in kinds:
            fault = faults[kind](rng)
            detail = _start(fault)
            started.append((kind, fault, history.fault_start(kind, detail)))
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
        for kind, fault, fault_id in reversed(started):
            healed = fault.stop()
            history.fault_stop(fault_id, healed)
            print(f"heal {kind}: {healed}", flush=True)
    if disturb is not None:
        disturb.join(90)
    elapsed = _wait_converged(client, f"{'+'.join(kinds)} healed")
    if agent_node:
        after = _containers_on(client, agent_node)
        assert kept and all(after.get(uid) == was for uid, was in kept.items()
                            if uid in after), (kept, after)
    return elapsed


def _kill_host(state: LocalClusterState, client: Client, node: str, history: History
               ) -> tuple[float, float, float]:
    """Kill worker host `node`; heal once the Service is whole on the other nodes, wait for
    convergence. Returns when it died on the history's clock, seconds until the Service
    was whole without it, and seconds until converged after it came back."""
    fault = WorkerHostKill(state, lambda: node)
    died, started = history.now(), time.monotonic()
    detail = fault.start()
    fault_id = history.fault_start(fault.name, detail)
    print(f"start kill-worker-host: {detail}", flush=True)
    try:
        while not _converged_without(client, node):
            if time.monotonic() - started > CONVERGE_TIMEOUT:
                raise AssertionError(f"the Service was not whole without {node} after "
                                     f"{CONVERGE_TIMEOUT:.0f} s")
            time.sleep(0.25)
        whole = time.monotonic() - started
        print(f"Service whole without {node} {whole:.1f} s after it died", flush=True)
    finally:
        healed = fault.stop()
        history.fault_stop(fault_id, healed)
        print(f"heal kill-worker-host: {healed}", flush=True)
    back = _wait_converged(client, "the host came back")
    print(f"converged {back:.1f} s after the host came back", flush=True)
    return died, whole, back


def test_the_service_answers_and_nothing_is_lost_while_masters_agents_and_hosts_fail(
        chaos_seed: int, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("raftkube up needs root")
    rng = random.Random(chaos_seed)
    plan = [["kill-leader"], ["pause-leader"], ["kill-all"], ["kill-agent"],
            ["kill-agent", "kill-leader"], ["partition-worker"]]
    rng.shuffle(plan)
    print(f"fault order: {plan}, then kill-worker-host", flush=True)
    with local_cluster(masters=3, workers=3) as config:
        deploy_demo(config, timeout=300, progress=lambda _m: None)
        state = LocalClusterState.load(config.state_dir)
        assert state is not None and state.hosts is not None
        client = Client.from_config(config.client_config)
        writer_client = Client.from_config(config.client_config)
        history = History()
        prober = Prober(f"http://{state.hosts.hosts[0].address}:{NODE_PORT}/", history)
        writer = Writer(writer_client, history)
        deleted: list[str] = []
        converge_times = []
        try:
            client.create(load_text(PROBE_SERVICE, "web-probe.yaml")[0].obj)
            _wait_converged(client, "the demo's rollout")
            _wait_answering(prober.url)
            faults = {**cluster_faults(local_master_hooks(state, client),
                                       ["kill-leader", "pause-leader", "kill-all"]),
                      # an agent of a node running web pods (the check that they keep
                      # their containers needs some)
                      "kill-agent": cluster_faults(local_agent_hooks(
                          state, lambda: _nodes_with_web_pods(client)),
                          ["kill-random"])["kill-random"],
                      "partition-worker": lambda rng: ControlPlaneCut(
                          state, lambda: rng.choice([h.name for h in state.hosts.hosts]))}
            prober.start()
            writer.start()
            time.sleep(2.0)
            for kinds in plan:
                elapsed = _run_step(kinds, faults, client, rng, deleted, history)
                converge_times.append(("+".join(kinds), elapsed))
                print(f"converged {elapsed:.1f} s after {'+'.join(kinds)} healed", flush=True)
            # the host with the most web pods dies; from now on the client uses the
            # NodePort of another host (a dead host's own NodePort answers nobody)
            doomed = Counter(p.spec.node_name for p in client.pods.list(
                NAMESPACE, label_selector="app=web")).most_common(1)[0][0]
            survivor = next(h for h in state.hosts.hosts if h.name != doomed)
            prober.url = f"http://{survivor.address}:{NODE_PORT}/"
            died, whole, back = _kill_host(state, client, doomed, history)
            converge_times.append(("kill-worker-host", back))
            time.sleep(2.0)
        finally:
            prober.stop_event.set()
            writer.stop_event.set()
            prober.join(30)
            writer.join(60)
        samples = samples_from_history(history, "get")
        before = summarize_availability([x for x in samples if x.time < died],
                                        max_failed_share=MAX_FAILED_SHARE, max_gap=MAX_GAP)
        before.name = "availability until the host died"
        host_window = [x for x in samples if x.time >= died]
        after = summarize_availability(host_window, max_gap=HOST_MAX_GAP)
        after.name = "availability after the host died"
        answering_again = max((x.time + x.latency - died for x in host_window if not x.ok),
                              default=0.0)
        print(f"every request answered again {answering_again:.1f} s after the host died "
              f"(endpoints without it after {whole:.1f} s)", flush=True)
        print(f"web pods deleted during kill-leader: {deleted}", flush=True)
        present = [cm.metadata.name for cm in client.list("ConfigMap", NAMESPACE)
                   if cm.metadata.name.startswith("cm-")]
        written = check_set(history, present, add_f="create")
        divergence = check_divergence(_state_hashes(client))
        results = [before, after, written, divergence]
        paths = write_report(tmp_path / "report", history, results, chaos_seed,
                             meta={"faults": [*plan, ["kill-worker-host"]]},
                             name="service-availability")
        print(paths.text.read_text(), flush=True)
        print(f"report: {paths.json}, {paths.png}", flush=True)
        client.close()
        writer_client.close()
    print("converged after: " + ", ".join(f"{k} {t:.1f}s" for k, t in converge_times))
    slow = [(k, round(t, 1)) for k, t in converge_times if t > HEALED_BOUND]
    assert not slow, f"converged later than {HEALED_BOUND:.0f} s after the heal: {slow}"
    assert before.requests > 200, before.summary()
    assert before.valid, before.summary()
    assert after.valid, after.summary()
    assert answering_again <= HOST_RECOVERY_BOUND, answering_again
    assert written.valid, written.summary()
    assert written.acknowledged > 50, "the writer got writes through"
    assert divergence.valid, divergence.summary()
    assert not processes_naming(str(config.state_dir)), (
        "raftkube down left processes of the cluster running (a killed worker's Podman "
        "service, a watchdog...)")
