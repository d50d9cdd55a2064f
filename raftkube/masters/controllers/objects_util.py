"""Small pure helpers the controllers share: owner references, pod states, timestamps,
resource requests, conditions. Nothing here writes; nothing mutates its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.message import Message

from raftkube.api.v1 import meta_pb2, pod_pb2
from raftkube.objects.quantity import cpu_millis, quantity_units
from raftkube.objects.registry import for_message

TERMINAL_PHASES = ("Succeeded", "Failed")


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp; None when empty or malformed."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def format_time(epoch: float) -> str:
    """RFC 3339 (seconds, UTC) as the API writes timestamps."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def controller_of(obj: Message) -> meta_pb2.OwnerReference | None:
    """The owner reference with controller=true, or None."""
    for ref in obj.metadata.owner_references:  # type: ignore[attr-defined]
        if ref.controller:
            return ref
    return None


def controller_ref(owner: Message) -> meta_pb2.OwnerReference:
    """A controller owner reference pointing at `owner`."""
    info = for_message(owner)
    return meta_pb2.OwnerReference(
        api_version=info.api_version, kind=info.kind, name=owner.metadata.name,  # type: ignore[attr-defined]
        uid=owner.metadata.uid, controller=True, block_owner_deletion=True)  # type: ignore[attr-defined]


def condition(conditions: Iterable[meta_pb2.Condition], kind: str) -> meta_pb2.Condition | None:
    for cond in conditions:
        if cond.type == kind:
            return cond
    return None


def pod_is_terminating(pod: pod_pb2.Pod) -> bool:
    return bool(pod.metadata.deletion_timestamp)


def pod_is_active(pod: pod_pb2.Pod) -> bool:
    """Counts towards a controller's replicas: not terminal and not being deleted."""
    return pod.status.phase not in TERMINAL_PHASES and not pod.metadata.deletion_timestamp


def pod_is_ready(pod: pod_pb2.Pod) -> bool:
    cond = condition(pod.status.conditions, "Ready")
    return cond is not None and cond.status == "True" and pod.status.phase == "Running"


def pod_ready_since(pod: pod_pb2.Pod) -> float | None:
    """When the pod became Ready (epoch seconds), None if not ready."""
    if not pod_is_ready(pod):
        return None
    cond = condition(pod.status.conditions, "Ready")
    assert cond is not None
    return parse_time(cond.last_transition_time) or 0.0


def pod_is_available(pod: pod_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds`."""
    since = pod_ready_since(pod)
    return since is not None and (min_ready_seconds <= 0 or now - since >= min_ready_seconds)


def pod_requests(spec: pod_pb2.PodSpec) -> tuple[int, int]:
    """(cpu millicores, memory bytes) a pod requests: the sum over containers, or the
    largest init container when that is bigger (the Kubernetes rule)."""
    cpu = sum(cpu_millis(c.resources.requests.get("cpu", "0")) for c in spec.containers)
    mem = sum(quantity_units(c.resources.requests.get("memory", "0")) for c in spec.containers)
    for init in spec.init_containers:
        cpu = max(cpu, cpu_millis(init.resources.requests.get("cpu", "0")))
        mem = max(mem, quantity_units(init.resources.requests.get("memory", "0")))
    return cpu, mem


def copy_of(obj: Message) -> Message:
    """A mutable deep copy (cached objects must never be mutated)."""
    out = type(obj)()
    out.CopyFrom(obj)
    return out
