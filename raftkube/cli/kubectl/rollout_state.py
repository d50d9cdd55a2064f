"""Deployment rollout decisions, pure: is a rollout done, which ReplicaSets are its
revisions, what does undo restore.

Revisions are ReplicaSets owned (controller ownerReference) by the Deployment and carrying
the `deployment.kubernetes.io/revision` annotation, as the deployment controller writes
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raftkube.api.v1 import apps_pb2

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
POD_TEMPLATE_HASH = "pod-template-hash"


@dataclass(frozen=True)
class RolloutState:
    done: bool
    message: str
    failed: bool = False


def rollout_state(d: apps_pb2.Deployment) -> RolloutState:
    """kubectl's reading of a Deployment's status fields."""
    name = d.metadata.name
    if d.metadata.generation > d.status.observed_generation:
        return RolloutState(False, "Waiting for deployment spec update to be observed...")
    for c in d.status.conditions:
        if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded":
            return RolloutState(False, f'deployment "{name}" exceeded its progress deadline',
                                failed=True)
    want = d.spec.replicas if d.spec.HasField("replicas") else 1
    s = d.status
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if s.updated_replicas < want:
        return RolloutState(False, f"{prefix}{s.updated_replicas} out of {want} new replicas "
                                   "have been updated...")
    if s.replicas > s.updated_replicas:
        return RolloutState(False, f"{prefix}{s.replicas - s.updated_replicas} old replicas "
                                   "are pending termination...")
    if s.available_replicas < s.updated_replicas:
        return RolloutState(False, f"{prefix}{s.available_replicas} of {s.updated_replicas} "
                                   "updated replicas are available...")
    return RolloutState(True, f'deployment "{name}" successfully rolled out')


def revision_of(rs: apps_pb2.ReplicaSet) -> int | None:
    try:
        return int(rs.metadata.annotations[REVISION])
    except (KeyError, ValueError):
        return None


def revisions(d: apps_pb2.Deployment,
              replica_sets: Sequence[apps_pb2.ReplicaSet]) -> list[tuple[int, apps_pb2.ReplicaSet]]:
    """(revision, ReplicaSet) owned by `d`, oldest revision first."""
    owned = []
    for rs in replica_sets:
        if rs.metadata.namespace != d.metadata.namespace:
            continue
        if not any(ref.controller and ref.kind == "Deployment" and ref.name == d.metadata.name
                   and (not ref.uid or ref.uid == d.metadata.uid)
                   for ref in rs.metadata.owner_references):
            continue
        number = revision_of(rs)
        if number is not None:
            owned.append((number, rs))
    return sorted(owned, key=lambda pair: pair[0])


def undo_target(d: apps_pb2.Deployment, replica_sets: Sequence[apps_pb2.ReplicaSet],
                to_revision: int = 0) -> tuple[int, apps_pb2.ReplicaSet]:
    """The revision undo restores: `to_revision`, else the one before the latest.
    Raise ValueError saying why there is none."""
    history = revisions(d, replica_sets)
    if not history:
        raise ValueError(f'no rollout history found for deployment "{d.metadata.name}"')
    if to_revision:
        for number, rs in history:
            if number == to_revision:
                return number, rs
        raise ValueError(f"unable to find specified revision {to_revision} in history")
    if len(history) < 2:
        raise ValueError(f'no previous revision to roll back to for deployment '
                         f'"{d.metadata.name}"')
    return history[-2]


def rolled_back(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet) -> apps_pb2.Deployment:
    """A copy of `d` with the pod template of `rs` (without the pod-template-hash label)."""
    out = apps_pb2.Deployment()
    out.CopyFrom(d)
    out.spec.template.CopyFrom(rs.spec.template)
    out.spec.template.metadata.labels.pop(POD_TEMPLATE_HASH, None)
    return out
