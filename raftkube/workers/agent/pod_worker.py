"""One worker per pod bound to the node: the thin loop around `plan_pod`.

    wake (pod changed | runtime changed | probe flipped | back-off expired | resync)
      -> observe: runtime.list_containers(uid), the sandbox
      -> plan_pod(facts, observed, now)           (decisions.py, pure)
      -> execute actions, remember outcomes in ContainerMemory, observe/plan again
      -> pod_status(...) (pod_status.py, pure) -> UpdateStatus when it changed
      -> probe workers for running instances; sleep until the next wake

Errors of one pod never leave its worker: they become waiting reasons, events and a retry.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from raftkube import apierrors
from raftkube.api.v1 import pod_pb2
from raftkube.client import Client
from raftkube.logging_config import get_logger
from raftkube.workers.agent.api_objects import EventRecorder, now_rfc3339
from raftkube.workers.agent.config import WorkerConfig
from raftkube.workers.agent.decisions import (
    Action,
    ActionKind,
    ContainerMemory,
    Observed,
    Plan,
    instances_to_prune,
    next_backoff,
    plan_pod,
)
from raftkube.workers.agent.pod_spec import (
    ConfigError,
    ObjectSource,
    active_deadline,
    container_env,
    container_spec,
    is_statefulset_pod,
    pod_facts,
    sandbox_spec,
)
from raftkube.workers.agent.pod_status import (
    ProbeView,
    StatusInputs,
    pod_status,
    status_changed,
)
from raftkube.workers.agent.probes import LIVENESS, READINESS, STARTUP, ProbeWorker
from raftkube.workers.agent.volumes import PreparedVolumes, VolumeError, VolumeManager
from raftkube.workers.runtime.interface import (
    ContainerCreateError,
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerStartError,
    ContainerState,
    ContainerStatus,
    ImageNotPresentError,
    InvalidSpecError,
    PodSandboxNotFoundError,
    PodSandboxStatus,
    Runtime,
)

log = get_logger(__name__)

RESYNC_SECONDS = 10.0
MAX_ROUNDS = 20


@dataclass
class WorkerDeps:
    """What every pod worker shares."""

    config: WorkerConfig
    client: Client
    runtime: Runtime
    volumes: VolumeManager
    objects: ObjectSource
    events: EventRecorder
    node_ip: str
    fenced: Callable[[], bool]
    stop_pool: ThreadPoolExecutor
    on_exit: Callable[[str], None]
    schedule: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic


class PodWorker:
    """Reconciles one pod (by uid) until the pod is gone from the API and the node."""

    def __init__(self, uid: str, pod: pod_pb2.Pod | None, deps: WorkerDeps) -> None:
        self.uid = uid
        self.deps = deps
        self._pod = pod
        self._last_known = pod
        self._gone = pod is None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.memory: dict[str, ContainerMemory] = {}
        self.sandbox: PodSandboxStatus | None = None
        self._sandbox_checked = False
        self._sandbox_checked_at = 0.0
        self._volumes: PreparedVolumes | None = None
        self._volumes_at = 0.0
        self._reported: pod_pb2.PodStatus | None = pod.status if pod is not None else None
        self._start_time = ""
        self._probes: dict[tuple[str, str], ProbeWorker] = {}
        self._probe_results: dict[tuple[str, str], bool] = {}
        self._finished = False
        self._running: dict[str, str] = {}
        self._written_version = 0
        self._deleted_from_api = False

    # -- inputs from the agent (each schedules a sync of this uid) ---------------------------
    def start(self) -> PodWorker:
        self.deps.schedule(self.uid)
        return self

    def update(self, pod: pod_pb2.Pod) -> None:
        with self._lock:
            self._pod = pod
            self._last_known = pod
            self._gone = False
        self.deps.schedule(self.uid)

    def removed(self) -> None:
        """The pod is gone from the API: stop and remove everything it has."""
        with self._lock:
            self._gone = True
        self.deps.schedule(self.uid)

    def poke(self) -> None:
        self.deps.schedule(self.uid)

    def shutdown(self) -> None:
        """Stop this worker without touching the pod's containers (agent shutdown)."""
        self._stopping.set()
        self._stop_probes(keep=set())

    @property
    def finished(self) -> bool:
        return self._finished

    def sync_once(self) -> float | None:
        """Run by the SyncQueue (never concurrently for one uid): one reconciliation, or
        nothing after shutdown/finish. Returns when to sync again."""
        if self._stopping.is_set() or self._finished:
            return None
        wake_at = self.sync()
        if self._finished:
            self._stop_probes(keep=set())
            self.deps.on_exit(self.uid)
            return None
        resync = self.deps.clock() + RESYNC_SECONDS
        return resync if wake_at is None else min(resync, max(wake_at, self.deps.clock()))

    def sync(self) -> float | None:
        """One reconciliation; returns when to run again (None = on events only)."""
        with self._lock:
            pod, gone = self._pod, self._gone
        if gone:
            self._teardown()
            return None
        assert pod is not None
        fenced = self.deps.fenced() and (is_statefulset_pod(pod)
                                         or bool(pod.metadata.deletion_timestamp))
        if not self._start_time:
            self._start_time = now_rfc3339()
        facts = pod_facts(pod, fenced=fenced, start_time=self._start_time)
        plan = Plan()
        observed = self._observe()
        for _ in range(MAX_ROUNDS):
            plan = plan_pod(facts, observed, self.deps.clock())
            if not plan.actions or self._stopping.is_set():
                break
            done_everything = True
            for action in plan.actions:
                if not self._execute(pod, action, fenced):
                    done_everything = False
                    break
            if self._finished:
                return None
            observed = self._observe()
            if not done_everything:
                plan = plan_pod(facts, observed, self.deps.clock())
                break
        self._prune(observed)
        self._refresh_volumes(pod)
        self._ensure_probes(pod, observed)
        self._report(pod, facts, observed, plan)
        wake = plan.wake_at
        if any(v.HasField("config_map") or v.HasField("secret") for v in pod.spec.volumes):
            refresh = self._volumes_at + self.deps.config.config_refresh_seconds
            wake = refresh if wake is None else min(wake, refresh)
        retry = min((m.next_try for m in self.memory.values()
                     if m.error_reason and m.next_try > self.deps.clock()), default=None)
        deadline = active_deadline(pod, pod.status.start_time or self._start_time)
        if deadline is not None and not facts.deadline_exceeded:
            retry_at = self.deps.clock() + max(0.0, deadline - time.time())
            retry = retry_at if retry is None else min(retry, retry_at)
        candidates = [t for t in (wake, retry) if t is not None]
        return min(candidates) if candidates else None

    # -- observe ---------------------------------------------------------------------------
    def _observe(self) -> Observed:
        runtime = self.deps.runtime
        stale = self.deps.clock() - self._sandbox_checked_at > RESYNC_SECONDS
        if not self._sandbox_checked or self.sandbox is None or stale:
            # re-read now and then: a sandbox whose infra died must be noticed
            self.sandbox = runtime.pod_sandbox_status(self.uid)
            self._sandbox_checked = True
            self._sandbox_checked_at = self.deps.clock()
        instances = tuple(runtime.list_containers(self.uid))
        ready = self.sandbox is not None and self.sandbox.ready
        return Observed(sandbox_ready=ready, instances=instances, memory=self.memory)

    def mem(self, name: str) -> ContainerMemory:
        return self.memory.setdefault(name, ContainerMemory())

    # -- execute ---------------------------------------------------------------------------
    def _execute(self, pod: pod_pb2.Pod, action: Action, fenced: bool) -> bool:
        """Run one action; False when it failed (recorded) and the round should stop."""
        kind = action.kind
        if kind is ActionKind.ENSURE_SANDBOX:
            return self._ensure_sandbox(pod)
        if kind is ActionKind.START:
            return self._start(pod, action)
        if kind is ActionKind.REMOVE:
            self.deps.runtime.remove_container(action.container_id)
            return True
        if kind is ActionKind.KILL:
            self.deps.events.emit(pod, "Normal", "Killing",
                                  f"Container {action.name} failed liveness probe, will be "
                                  "restarted", f"spec.containers{{{action.name}}}")
            self._stop_container(action.container_id, action.grace_seconds)
            self.mem(action.name).liveness_failed_id = ""
            return True
        if kind is ActionKind.STOP_POD:
            self._stop_pod(pod, action.grace_seconds)
            return True
        if kind is ActionKind.FINISH_DELETION:
            if fenced and not pod.metadata.deletion_timestamp:
                return False  # fenced: stopped, but the pod is not being deleted
            self._finish_deletion(pod)
            return True
        raise AssertionError(f"unknown action {kind}")

    def _ensure_sandbox(self, pod: pod_pb2.Pod) -> bool:
        deps = self.deps
        try:
            self._volumes = deps.volumes.prepare(pod)
            self._volumes_at = deps.clock()
        except VolumeError as exc:
            deps.events.emit(pod, "Warning", "FailedMount", str(exc))
            self._record_error_all(pod, "ContainerCreating", str(exc))
            return False
        spec = sandbox_spec(pod, deps.runtime.node, deps.config.runtime.network,
                            deps.config.resolv_conf)
        try:
            self.sandbox = deps.runtime.prepare_pod_sandbox(spec)
        except ContainerRuntimeError as exc:
            deps.events.emit(pod, "Warning", "FailedCreatePodSandBox", str(exc))
            self._record_error_all(pod, "ContainerCreating", f"sandbox: {exc}")
            return False
        for mem in self.memory.values():
            if mem.error_reason == "ContainerCreating":
                mem.error_reason, mem.error_message, mem.next_try = "", "", 0.0
        return True

    def _refresh_volumes(self, pod: pod_pb2.Pod) -> None:
        """Re-read referenced ConfigMaps/Secrets into their views every
        config_refresh_seconds (a node may only get them by name, not watch them)."""
        deps = self.deps
        if self.sandbox is None or not any(v.HasField("config_map") or v.HasField("secret")
                                           for v in pod.spec.volumes):
            return
        if deps.clock() - self._volumes_at < deps.config.config_refresh_seconds:
            return
        try:
            self._volumes = deps.volumes.prepare(pod)
        except VolumeError as exc:
            deps.events.emit(pod, "Warning", "FailedMount", str(exc))
        self._volumes_at = deps.clock()

    def _record_error_all(self, pod: pod_pb2.Pod, reason: str, message: str) -> None:
        for container in [*pod.spec.init_containers, *pod.spec.containers]:
            mem = self.mem(container.name)
            mem.error_reason, mem.error_message = reason, message
            mem.next_try = self.deps.clock() + 2.0

    def _container(self, pod: pod_pb2.Pod, name: str) -> pod_pb2.Container:
        for container in [*pod.spec.init_containers, *pod.spec.containers]:
            if container.name == name:
                return container
        raise KeyError(name)

    def _fail(self, pod: pod_pb2.Pod, name: str, reason: str, message: str,
              event_reason: str) -> bool:
        mem = self.mem(name)
        cfg = self.deps.config.backoff
        mem.backoff_seconds = next_backoff(mem.backoff_seconds, cfg.initial_seconds,
                                           cfg.max_seconds)
        mem.next_try = self.deps.clock() + mem.backoff_seconds
        mem.error_reason, mem.error_message = reason, message
        self.deps.events.emit(pod, "Warning", event_reason, message,
                              f"spec.containers{{{name}}}")
        return False

    def _start(self, pod: pod_pb2.Pod, action: Action) -> bool:
        deps = self.deps
        container = self._container(pod, action.name)
        mem = self.mem(action.name)
        if self.sandbox is None:
            return False
        try:
            if self._volumes is None:
                self._volumes = deps.volumes.prepare(pod)
                self._volumes_at = deps.clock()
            mounts = self._volumes.mounts(container)
            env = container_env(pod, container, deps.objects, self.sandbox.ip, deps.node_ip)
            spec = container_spec(pod, container, init=action.init, env=env, mounts=mounts)
        except ConfigError as exc:
            return self._fail(pod, action.name, "CreateContainerConfigError", str(exc),
                              "Failed")
        except VolumeError as exc:
            return self._fail(pod, action.name, "CreateContainerConfigError", str(exc),
                              "FailedMount")
        try:
            container_id = deps.runtime.create_container(self.uid, spec, action.attempt)
        except ImageNotPresentError as exc:
            reason = "ErrImageNeverPull"
            return self._fail(pod, action.name, reason,
                              f'Container image "{container.image}" is not present with pull '
                              f"policy of Never: {exc}", reason)
        except PodSandboxNotFoundError:
            self.sandbox = None
            return False
        except (ContainerCreateError, InvalidSpecError) as exc:
            return self._fail(pod, action.name, "CreateContainerError", str(exc), "Failed")
        deps.events.emit(pod, "Normal", "Pulled",
                         f'Container image "{container.image}" already present on machine',
                         f"spec.containers{{{action.name}}}")
        deps.events.emit(pod, "Normal", "Created", f"Created container {action.name}",
                         f"spec.containers{{{action.name}}}")
        try:
            deps.runtime.start_container(container_id)
        except ContainerStartError as exc:
            return self._fail(pod, action.name, "RunContainerError", str(exc), "Failed")
        except ContainerNotFoundError as exc:
            return self._fail(pod, action.name, "RunContainerError", str(exc), "Failed")
        deps.events.emit(pod, "Normal", "Started", f"Started container {action.name}",
                         f"spec.containers{{{action.name}}}")
        mem.error_reason, mem.error_message = "", ""
        cfg = deps.config.backoff
        if action.attempt > 0:
            mem.backoff_seconds = next_backoff(mem.backoff_seconds, cfg.initial_seconds,
                                               cfg.max_seconds)
            mem.next_try = deps.clock() + mem.backoff_seconds
        return True

    def _stop_container(self, container_id: str, grace: float) -> ContainerStatus | None:
        try:
            return self.deps.runtime.stop_container(container_id, grace)
        except ContainerNotFoundError:
            return None

    def _stop_pod(self, pod: pod_pb2.Pod, grace: float) -> None:
        running = [c for c in self.deps.runtime.list_containers(self.uid)
                   if c.state is ContainerState.RUNNING]
        self._stop_probes(keep=set())
        futures = []
        for c in running:
            self.deps.events.emit(pod, "Normal", "Killing", f"Stopping container {c.name}",
                                  f"spec.containers{{{c.name}}}")
            futures.append(self.deps.stop_pool.submit(self._stop_container, c.container_id,
                                                      grace))
        for future in futures:
            future.result()

    def _finish_deletion(self, pod: pod_pb2.Pod) -> None:
        deps = self.deps
        observed = self._observe()
        self._report(pod, pod_facts(pod), observed, Plan())
        deps.runtime.remove_pod_sandbox(self.uid, 0)
        deps.volumes.cleanup(self.uid)
        self.sandbox = None
        if not self._deleted_from_api:
            with contextlib.suppress(apierrors.NotFound, apierrors.Conflict):
                deps.client.pods.delete(pod.metadata.name, pod.metadata.namespace,
                                        grace_period_seconds=0, precondition_uid=self.uid)
            self._deleted_from_api = True

    def _teardown(self) -> None:
        """The pod is gone from the API: stop its containers, remove everything."""
        pod = self._last_known
        grace = 0.0 if pod is None else float(
            pod.metadata.deletion_grace_period_seconds
            if pod.metadata.HasField("deletion_grace_period_seconds") else 0)
        self._stop_probes(keep=set())
        self.deps.runtime.remove_pod_sandbox(self.uid, grace)
        self.deps.volumes.cleanup(self.uid)
        self._finished = True

    def _prune(self, observed: Observed) -> None:
        for c in instances_to_prune(observed.instances):
            try:
                self.deps.runtime.remove_container(c.container_id)
            except ContainerRuntimeError as exc:
                log.info("prune failed", container=c.container_id, error=str(exc))

    # -- probes ----------------------------------------------------------------------------
    def _on_probe(self, container_id: str, kind: str, result: bool, message: str) -> None:
        pod = self._last_known
        if kind.endswith("-failure"):
            if pod is not None:
                base = kind.removesuffix("-failure")
                self.deps.events.emit(pod, "Warning", "Unhealthy",
                                      f"{base.capitalize()} probe failed: {message}")
            return
        self._probe_results[(container_id, kind)] = result
        if kind == LIVENESS and not result:
            for name, c in self._running.items():
                if c == container_id:
                    self.mem(name).liveness_failed_id = container_id
        if not result and pod is not None:
            self.deps.events.emit(pod, "Warning", "Unhealthy",
                                  f"{kind.capitalize()} probe failed: {message}")
        self.deps.schedule(self.uid)

    def _ensure_probes(self, pod: pod_pb2.Pod, observed: Observed) -> None:
        running = {c.name: c.container_id for c in observed.instances
                   if c.state is ContainerState.RUNNING and not c.init_container}
        self._running = running
        wanted: set[tuple[str, str]] = set()
        ip = self.sandbox.ip if self.sandbox else ""
        for container in pod.spec.containers:
            cid = running.get(container.name)
            if cid is None or pod.metadata.deletion_timestamp:
                continue
            has_startup = container.HasField("startup_probe")
            started = not has_startup or self._probe_results.get((cid, STARTUP), False)
            kinds = []
            if has_startup and not started:
                kinds.append((STARTUP, container.startup_probe))
            if started and container.HasField("liveness_probe"):
                kinds.append((LIVENESS, container.liveness_probe))
            if started and container.HasField("readiness_probe"):
                kinds.append((READINESS, container.readiness_probe))
            for kind, probe in kinds:
                key = (cid, kind)
                wanted.add(key)
                if key not in self._probes:
                    instance = next(c for c in observed.instances if c.container_id == cid)
                    age = 0.0
                    if instance.started_at is not None:
                        age = max(0.0, time.time() - instance.started_at.timestamp())
                    if kind == READINESS and self._was_ready(pod, cid):
                        self._probe_results[key] = True
                    self._probes[key] = ProbeWorker(kind, probe, container, self.deps.runtime,
                                                    cid, ip, self._on_probe, age).start()
        self._stop_probes(keep=wanted)

    def _was_ready(self, pod: pod_pb2.Pod, container_id: str) -> bool:
        """Adoption: the pod's reported status said this very instance was ready."""
        return any(s.container_id.endswith(container_id) and s.ready
                   for s in pod.status.container_statuses)

    def _stop_probes(self, keep: set[tuple[str, str]]) -> None:
        for key in [k for k in self._probes if k not in keep]:
            self._probes.pop(key).stop()
        live_ids = {cid for cid, _ in keep}
        for key in [k for k in self._probe_results if k[0] not in live_ids]:
            del self._probe_results[key]

    def _probe_views(self, pod: pod_pb2.Pod, observed: Observed) -> dict[str, ProbeView]:
        views = {}
        for container in pod.spec.containers:
            latest = observed.latest(container.name)
            if latest is None or latest.state is not ContainerState.RUNNING:
                continue
            cid = latest.container_id
            started = (not container.HasField("startup_probe")
                       or self._probe_results.get((cid, STARTUP), False))
            ready = (not container.HasField("readiness_probe")
                     or self._probe_results.get((cid, READINESS), False))
            views[cid] = ProbeView(ready=bool(ready and started), started=bool(started))
        return views

    # -- status ----------------------------------------------------------------------------
    def _ready_overwritten(self, pod: pod_pb2.Pod, status: pod_pb2.PodStatus) -> bool:
        """Someone else changed the pod's Ready condition after our last status write (the
        masters mark the pods of a node that stopped renewing its Lease not ready): write
        ours again, or a pod of an agent that was only cut off stays out of its Services."""
        if int(pod.metadata.resource_version or 0) <= self._written_version:
            return False

        def ready(s: pod_pb2.PodStatus) -> str:
            return next((c.status for c in s.conditions if c.type == "Ready"), "")

        return ready(pod.status) != ready(status)

    def _report(self, pod: pod_pb2.Pod, facts, observed: Observed, plan: Plan) -> None:
        inputs = StatusInputs(
            pod=pod, facts=facts, observed=observed, waiting=plan.waiting,
            probes=self._probe_views(pod, observed),
            pod_ip=self.sandbox.ip if self.sandbox is not None else "",
            host_ip=self.deps.node_ip, start_time=self._start_time, now=now_rfc3339())
        status = pod_status(inputs)
        self._emit_backoff_events(pod, plan)
        if (self._reported is not None and not status_changed(self._reported, status)
                and not self._ready_overwritten(pod, status)):
            return
        update = pod_pb2.Pod(api_version="v1", kind="Pod")
        update.metadata.name = pod.metadata.name
        update.metadata.namespace = pod.metadata.namespace
        update.metadata.uid = pod.metadata.uid
        update.status.CopyFrom(status)
        # guarded by resourceVersion: a pod recreated under the same name (another uid)
        # never receives this pod's status
        update.metadata.resource_version = self._newest_version(pod)
        for _ in range(3):
            try:
                stored = self.deps.client.pods.update_status(update)
                self._written_version = int(stored.metadata.resource_version or 0)
                self._reported = status
                return
            except apierrors.NotFound:
                return
            except apierrors.Conflict:
                try:
                    fresh = self.deps.client.pods.get(pod.metadata.name, pod.metadata.namespace)
                except apierrors.NotFound:
                    return
                if fresh.metadata.uid != self.uid:
                    return
                update.metadata.resource_version = fresh.metadata.resource_version
            except apierrors.ApiError as exc:
                log.warning("pod status update failed", pod=pod.metadata.name, error=str(exc))
                return

    def _newest_version(self, pod: pod_pb2.Pod) -> str:
        """The newer of the informer's resourceVersion and the one our last write got."""
        seen = int(pod.metadata.resource_version or 0)
        return str(max(seen, self._written_version)) if max(seen,
                                                             self._written_version) else ""

    def _emit_backoff_events(self, pod: pod_pb2.Pod, plan: Plan) -> None:
        for waiting in plan.waiting:
            if waiting.reason == "CrashLoopBackOff":
                self.deps.events.emit(pod, "Warning", "BackOff",
                                      "Back-off restarting failed container",
                                      f"spec.containers{{{waiting.name}}}")
