"""StatefulSet -> Pods `<name>-0 .. <name>-(N-1)` and one PVC per ordinal and template.

Pure part, `plan_stateful_set(sts, pods, claims)`:
- identity: pod `<sts>-<i>` gets hostname `<sts>-<i>` and subdomain spec.serviceName (its
  DNS name through the headless Service), label statefulset.kubernetes.io/pod-name, and
  for every volumeClaimTemplate a volume on claim `<template>-<sts>-<i>`; claims are
  created before their pod, never deleted by this controller (kept on scale down and
  re-attached when the ordinal comes back);
- OrderedReady (default): the lowest missing ordinal is created only when every lower one
  is Running and Ready; on scale down the highest ordinal goes first, one at a time, and
  only while the others are Ready; Parallel: all at once;
- failed pods are deleted (and so recreated with the same identity);
- RollingUpdate: when all pods are Ready, the highest ordinal >= partition whose
  controller-revision-hash differs from the update revision is deleted (and recreated
  from the new template by the next pass); OnDelete: never;
- status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
  currentRevision, updateRevision, observedGeneration.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from raftkube import apierrors
from raftkube.api.v1 import apps_pb2, pod_pb2, storage_pb2
from raftkube.masters.controllers.deployment import template_hash
from raftkube.masters.controllers.keyed_loop import KeyedController
from raftkube.masters.controllers.objects_util import (
    controller_of,
    controller_ref,
    copy_of,
    pod_is_available,
    pod_is_ready,
)

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"


@dataclass
class StatefulSetPlan:
    """create_claims: PVCs to create first; create: pods to create; delete: pods to delete;
    status: new status or None."""

    create_claims: list[storage_pb2.PersistentVolumeClaim] = field(default_factory=list)
    create: list[pod_pb2.Pod] = field(default_factory=list)
    delete: list[pod_pb2.Pod] = field(default_factory=list)
    status: apps_pb2.StatefulSetStatus | None = None


def update_revision(sts: apps_pb2.StatefulSet) -> str:
    return f"{sts.metadata.name}-{template_hash(sts.spec.template)}"


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    match = re.fullmatch(re.escape(sts_name) + r"-(\d+)", pod_name)
    return int(match.group(1)) if match else None


def claim_name(template: storage_pb2.PersistentVolumeClaim, sts: apps_pb2.StatefulSet,
               ordinal: int) -> str:
    return f"{template.metadata.name}-{sts.metadata.name}-{ordinal}"


def claim_for(sts: apps_pb2.StatefulSet, template: storage_pb2.PersistentVolumeClaim,
              ordinal: int) -> storage_pb2.PersistentVolumeClaim:
    claim = storage_pb2.PersistentVolumeClaim(api_version="v1", kind="PersistentVolumeClaim")
    claim.metadata.name = claim_name(template, sts, ordinal)
    claim.metadata.namespace = sts.metadata.namespace
    claim.metadata.labels.update(template.metadata.labels)
    claim.metadata.labels.update(sts.spec.selector.match_labels)
    claim.spec.CopyFrom(template.spec)
    return claim


def pod_for(sts: apps_pb2.StatefulSet, ordinal: int) -> pod_pb2.Pod:
    """Pod `<sts>-<ordinal>` from the current template with its stable identity."""
    name = f"{sts.metadata.name}-{ordinal}"
    pod = pod_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = sts.metadata.namespace
    pod.metadata.labels.update(sts.spec.template.metadata.labels)
    pod.metadata.labels[POD_NAME_LABEL] = name
    pod.metadata.labels[REVISION_LABEL] = update_revision(sts)
    pod.metadata.annotations.update(sts.spec.template.metadata.annotations)
    pod.metadata.owner_references.append(controller_ref(sts))
    pod.spec.CopyFrom(sts.spec.template.spec)
    pod.spec.hostname = name
    if sts.spec.service_name:
        pod.spec.subdomain = sts.spec.service_name
    for template in sts.spec.volume_claim_templates:
        kept = [v for v in pod.spec.volumes if v.name != template.metadata.name]
        del pod.spec.volumes[:]
        pod.spec.volumes.extend(kept)
        volume = pod.spec.volumes.add(name=template.metadata.name)
        volume.persistent_volume_claim.claim_name = claim_name(template, sts, ordinal)
    return pod


def plan_stateful_set(sts: apps_pb2.StatefulSet, pods: Sequence[pod_pb2.Pod],
                      claims: Iterable[str], now: float) -> StatefulSetPlan:
    """The next steps for `sts` given its pods and the claim names of its namespace."""
    plan = StatefulSetPlan()
    replicas = sts.spec.replicas if sts.spec.HasField("replicas") else 1
    parallel = sts.spec.pod_management_policy == "Parallel"
    revision = update_revision(sts)
    by_ordinal: dict[int, pod_pb2.Pod] = {}
    for pod in pods:
        ordinal = ordinal_of(sts.metadata.name, pod.metadata.name)
        if ordinal is not None:
            by_ordinal[ordinal] = pod
    existing_claims = set(claims)
    plan.status = _status(sts, by_ordinal, replicas, revision, now)
    if sts.metadata.deletion_timestamp:
        return plan
    terminating = any(p.metadata.deletion_timestamp for p in by_ordinal.values())

    def healthy(ordinal: int) -> bool:
        pod = by_ordinal.get(ordinal)
        return pod is not None and pod_is_ready(pod) and not pod.metadata.deletion_timestamp

    for _, pod in sorted(by_ordinal.items()):
        if pod.status.phase == "Failed" and not pod.metadata.deletion_timestamp:
            plan.delete.append(pod)
    if plan.delete:
        return plan
    # Scale up / replace missing ordinals, lowest first.
    for ordinal in range(replicas):
        if ordinal in by_ordinal:
            if not parallel and not healthy(ordinal):
                return plan  # OrderedReady: wait for this one before going on
            continue
        for template in sts.spec.volume_claim_templates:
            claim = claim_for(sts, template, ordinal)
            if claim.metadata.name not in existing_claims:
                plan.create_claims.append(claim)
        plan.create.append(pod_for(sts, ordinal))
        if not parallel:
            return plan
    if plan.create:
        return plan
    # Scale down, highest first.
    extra = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
    if extra:
        if parallel:
            plan.delete.extend(by_ordinal[o] for o in extra
                               if not by_ordinal[o].metadata.deletion_timestamp)
        elif not terminating and all(healthy(o) for o in range(replicas)):
            plan.delete.append(by_ordinal[extra[0]])
        return plan
    # Rolling update, highest ordinal first, partition honoured.
    strategy = sts.spec.update_strategy
    if strategy.type == "OnDelete" or terminating:
        return plan
    if not all(healthy(o) for o in range(replicas)):
        return plan
    partition = strategy.rolling_update.partition if strategy.rolling_update.HasField(
        "partition") else 0
    for ordinal in range(replicas - 1, partition - 1, -1):
        pod = by_ordinal[ordinal]
        if pod.metadata.labels.get(REVISION_LABEL) != revision:
            plan.delete.append(pod)
            break
    return plan


def _status(sts: apps_pb2.StatefulSet, by_ordinal: dict[int, pod_pb2.Pod], replicas: int,
            revision: str, now: float) -> apps_pb2.StatefulSetStatus | None:
    status = apps_pb2.StatefulSetStatus()
    status.CopyFrom(sts.status)
    live = [p for p in by_ordinal.values() if not p.metadata.deletion_timestamp]
    status.replicas = len(live)
    status.ready_replicas = sum(1 for p in live if pod_is_ready(p))
    status.available_replicas = sum(1 for p in live if pod_is_available(
        p, sts.spec.min_ready_seconds, now))
    status.update_revision = revision
    status.updated_replicas = sum(1 for p in live
                                  if p.metadata.labels.get(REVISION_LABEL) == revision)
    if not status.current_revision:
        first = by_ordinal[min(by_ordinal)] if by_ordinal else None
        status.current_revision = (first.metadata.labels.get(REVISION_LABEL, revision)
                                   if first is not None else revision)
    if status.updated_replicas == replicas == len(live):
        status.current_revision = revision  # the rollout is complete
    status.current_replicas = sum(
        1 for p in live if p.metadata.labels.get(REVISION_LABEL) == status.current_revision)
    status.observed_generation = sts.metadata.generation
    return None if status == sts.status else status


class StatefulSetController(KeyedController):
    """Reconciles StatefulSets (keys: (namespace, name))."""

    name = "statefulset"
    workers = 2

    def keys_for(self, kind: str, namespace: str, name: str) -> Iterable[Hashable]:
        if kind == "StatefulSet":
            return [(namespace, name)]
        if kind != "Pod":
            return []
        pod = self.context.cache.get("Pod", namespace, name)
        if pod is None:
            return [(namespace, s.metadata.name)
                    for s in self.context.cache.list("StatefulSet", namespace)
                    if ordinal_of(s.metadata.name, name) is not None]
        ref = controller_of(pod)
        return [(namespace, ref.name)] if ref is not None and ref.kind == "StatefulSet" else []

    def sync(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        cache = self.context.cache
        sts = cache.get("StatefulSet", namespace, name)
        if sts is None:
            return None
        pods = cache.list_controlled("Pod", namespace, sts.metadata.uid)
        claims = [c.metadata.name for c in cache.list("PersistentVolumeClaim", namespace)]
        plan = plan_stateful_set(sts, pods, claims, time.time())
        api = self.context.api
        for claim in plan.create_claims:
            with contextlib.suppress(apierrors.AlreadyExists):
                api.create(claim)
        for pod in plan.create:
            try:
                api.create(pod)
            except apierrors.AlreadyExists:
                continue  # the cache lags: the pod is there already
            self.context.record(sts, "Normal", "SuccessfulCreate",
                                f"create Pod {pod.metadata.name} in StatefulSet {name} "
                                "successful")
        for pod in plan.delete:
            try:
                api.delete("Pod", namespace, pod.metadata.name,
                           precondition_uid=pod.metadata.uid)
            except apierrors.NotFound:
                continue
            self.context.record(sts, "Normal", "SuccessfulDelete",
                                f"delete Pod {pod.metadata.name} in StatefulSet {name} "
                                "successful")
        if plan.status is not None:
            fresh = copy_of(sts)
            fresh.status.CopyFrom(plan.status)
            api.update_status(fresh)
        return None
