"""Pure: the PodStatus an agent reports, from the pod, the runtime's instances, the plan's
waiting containers, the worker's memory and the probe results.

    phase:   Pending  until every init container succeeded and every container started
             Running  a container runs (or will be restarted)
             Succeeded / Failed  every container exited and none will be restarted
    conditions: PodScheduled, Initialized, ContainersReady, Ready
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from raftkube.api.v1 import meta_pb2, pod_pb2
from raftkube.workers.agent.decisions import (
    Observed,
    PodFacts,
    RestartPolicy,
    Waiting,
    init_outcome,
    should_restart,
)
from raftkube.workers.runtime.interface import ContainerState, ContainerStatus

CONTAINER_ID_PREFIX = "podman://"


def rfc3339(value: datetime | None) -> str:
    """RFC 3339 in UTC with second precision ("" for None)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ProbeView:
    """Probe results of one running container instance (by container id).

    ready: readiness passed (True when there is no readiness probe).
    started: startup probe passed (True when there is none).
    """

    ready: bool = True
    started: bool = True


@dataclass(frozen=True)
class StatusInputs:
    pod: pod_pb2.Pod
    facts: PodFacts
    observed: Observed
    waiting: tuple[Waiting, ...]
    probes: dict[str, ProbeView] = field(default_factory=dict)
    pod_ip: str = ""
    host_ip: str = ""
    start_time: str = ""
    now: str = ""
    id_prefix: str = CONTAINER_ID_PREFIX


def _terminated(c: ContainerStatus, prefix: str) -> pod_pb2.ContainerStateTerminated:
    exit_code = c.exit_code if c.exit_code is not None else 0
    return pod_pb2.ContainerStateTerminated(
        exit_code=exit_code, signal=exit_code - 128 if exit_code > 128 else 0,
        reason=c.reason, started_at=rfc3339(c.started_at), finished_at=rfc3339(c.finished_at),
        container_id=prefix + c.container_id)


def _instances(observed: Observed, name: str) -> list[ContainerStatus]:
    started = [c for c in observed.instances
               if c.name == name and c.state is not ContainerState.CREATED]
    return sorted(started, key=lambda c: c.attempt)


def container_status(spec: pod_pb2.Container, inputs: StatusInputs, *, init: bool,
                     default_wait: str) -> pod_pb2.ContainerStatus:
    """The status of one container: state, lastState, ready, started, restartCount."""
    prefix = inputs.id_prefix
    out = pod_pb2.ContainerStatus(name=spec.name, image=spec.image, ready=False,
                                  started=False)
    instances = _instances(inputs.observed, spec.name)
    waiting = next((w for w in inputs.waiting if w.name == spec.name), None)
    mem = inputs.observed.mem(spec.name)
    latest = instances[-1] if instances else None
    if latest is not None:
        out.container_id = prefix + latest.container_id
        out.restart_count = latest.attempt
        out.image_id = latest.image
        if len(instances) >= 2:
            out.last_state.terminated.CopyFrom(_terminated(instances[-2], prefix))
    if waiting is not None:
        out.state.waiting.reason = waiting.reason
        out.state.waiting.message = waiting.message
        if latest is not None and latest.state is ContainerState.EXITED:
            out.last_state.terminated.CopyFrom(_terminated(latest, prefix))
    elif latest is None:
        if mem.error_reason:
            out.state.waiting.reason = mem.error_reason
            out.state.waiting.message = mem.error_message
        else:
            out.state.waiting.reason = default_wait
    elif latest.state is ContainerState.RUNNING:
        out.state.running.started_at = rfc3339(latest.started_at)
        view = inputs.probes.get(latest.container_id, ProbeView())
        out.started = view.started
        out.ready = view.ready and view.started and not init
    elif latest.state is ContainerState.EXITED:
        if mem.error_reason and should_restart(inputs.facts.restart_policy, latest.exit_code):
            out.state.waiting.reason = mem.error_reason
            out.state.waiting.message = mem.error_message
            out.last_state.terminated.CopyFrom(_terminated(latest, prefix))
        else:
            out.state.terminated.CopyFrom(_terminated(latest, prefix))
    return out


def _condition(kind: str, ok: bool, now: str, previous: pod_pb2.PodStatus,
               reason: str = "") -> meta_pb2.Condition:
    status = "True" if ok else "False"
    old = next((c for c in previous.conditions if c.type == kind), None)
    when = old.last_transition_time if old is not None and old.status == status else now
    return meta_pb2.Condition(type=kind, status=status, last_transition_time=when,
                              reason="" if ok else reason)


def phase_of(facts: PodFacts, observed: Observed) -> str:
    outcome = init_outcome(facts, observed)
    if outcome == "failed":
        return "Failed"
    if outcome == "running":
        return "Pending"
    latest = [observed.latest(n) for n in facts.containers]
    if any(c is None or c.state is ContainerState.CREATED for c in latest):
        if any(c is not None and c.state is ContainerState.RUNNING for c in latest):
            return "Running"
        return "Pending"
    if any(c.state is ContainerState.RUNNING for c in latest):  # type: ignore[union-attr]
        return "Running"
    # every container exited
    if any(should_restart(facts.restart_policy, c.exit_code) for c in latest):  # type: ignore[union-attr]
        return "Running"
    if facts.restart_policy is RestartPolicy.ALWAYS:
        return "Running"
    if all(c.exit_code == 0 for c in latest):  # type: ignore[union-attr]
        return "Succeeded"
    return "Failed"


def pod_status(inputs: StatusInputs) -> pod_pb2.PodStatus:
    """The full status to report for the pod."""
    pod, previous = inputs.pod, inputs.pod.status
    status = pod_pb2.PodStatus()
    status.phase = phase_of(inputs.facts, inputs.observed)
    initialized = init_outcome(inputs.facts, inputs.observed) == "done"
    for spec in pod.spec.init_containers:
        status.init_container_statuses.append(
            container_status(spec, inputs, init=True, default_wait="PodInitializing"))
    for spec in pod.spec.containers:
        status.container_statuses.append(container_status(
            spec, inputs, init=False,
            default_wait="ContainerCreating" if initialized else "PodInitializing"))
    containers_ready = bool(status.container_statuses) and all(
        c.ready for c in status.container_statuses)
    if status.phase in ("Succeeded", "Failed"):
        containers_ready = False
    status.conditions.append(_condition("PodScheduled", True, inputs.now, previous))
    status.conditions.append(_condition("Initialized", initialized, inputs.now, previous,
                                        "ContainersNotInitialized"))
    status.conditions.append(_condition("ContainersReady", containers_ready, inputs.now,
                                        previous, "ContainersNotReady"))
    status.conditions.append(_condition("Ready", containers_ready, inputs.now, previous,
                                        "ContainersNotReady"))
    if inputs.host_ip:
        status.host_ip = inputs.host_ip
        status.host_ips.add(ip=inputs.host_ip)
    if inputs.pod_ip:
        status.pod_ip = inputs.pod_ip
        status.pod_ips.add(ip=inputs.pod_ip)
    status.start_time = previous.start_time or inputs.start_time
    status.qos_class = qos_class(pod)
    if inputs.facts.deadline_exceeded:
        status.phase = "Failed"
        status.reason = "DeadlineExceeded"
        status.message = "Pod was active on the node longer than the specified deadline"
        for condition in status.conditions:
            if condition.type in ("Ready", "ContainersReady") and condition.status == "True":
                condition.status, condition.reason = "False", "PodFailed"
    return status


def qos_class(pod: pod_pb2.Pod) -> str:
    """Guaranteed (every container limits == requests for cpu and memory), BestEffort (no
    requests or limits anywhere) or Burstable."""
    containers = [*pod.spec.init_containers, *pod.spec.containers]
    if all(not c.resources.limits and not c.resources.requests for c in containers):
        return "BestEffort"
    for c in containers:
        for resource in ("cpu", "memory"):
            limit = c.resources.limits.get(resource)
            request = c.resources.requests.get(resource, limit)
            if not limit or request != limit:
                return "Burstable"
    return "Guaranteed"


def status_changed(old: pod_pb2.PodStatus, new: pod_pb2.PodStatus) -> bool:
    """Whether reporting `new` over `old` changes anything (deterministic comparison)."""
    return old.SerializeToString(deterministic=True) != new.SerializeToString(
        deterministic=True)
