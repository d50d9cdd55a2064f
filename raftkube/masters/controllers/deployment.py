"""Deployment -> ReplicaSets.

Pure part, `plan_deployment(deployment, replica_sets, now)` over the ReplicaSets the
Deployment controls:
- the "new" ReplicaSet is the one whose template equals the Deployment's (ignoring the
  pod-template-hash label); it is created as `<name>-<hash>` when none exists. A template
  equal to an old ReplicaSet's (rollout undo) makes that ReplicaSet the new one again;
- revisions: the new ReplicaSet carries `deployment.kubernetes.io/revision` = highest + 1
  (a reused one is renumbered), and so does the Deployment;
- RollingUpdate: the new ReplicaSet grows while the total stays <= replicas + maxSurge;
  old ones shrink (unhealthy replicas first) while available pods stay >=
  replicas - maxUnavailable; Recreate: old to 0, then the new one to replicas;
- paused: nothing is rolled out or scaled, status only;
- old ReplicaSets at 0 beyond revisionHistoryLimit are deleted, oldest revision first;
- status and the Available / Progressing conditions (Progressing False with
  ProgressDeadlineExceeded when no progress for progressDeadlineSeconds).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from raftkube.api.v1 import apps_pb2, meta_pb2, pod_pb2
from raftkube.masters.controllers.keyed_loop import KeyedController
from raftkube.masters.controllers.objects_util import (
    condition,
    controller_of,
    controller_ref,
    copy_of,
    format_time,
    parse_time,
)
from raftkube.objects.selectors import selector_from_proto

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: pod_pb2.PodTemplateSpec) -> str:
    """A stable 10-character hash of a pod template (without the hash label)."""
    clean = pod_pb2.PodTemplateSpec()
    clean.CopyFrom(template)
    clean.metadata.labels.pop(HASH_LABEL, None)
    digest = int.from_bytes(hashlib.sha256(clean.SerializeToString(deterministic=True))
                            .digest()[:8], "big")
    out = []
    for _ in range(10):
        digest, index = divmod(digest, len(HASH_ALPHABET))
        out.append(HASH_ALPHABET[index])
    return "".join(out)


def same_template(a: pod_pb2.PodTemplateSpec, b: pod_pb2.PodTemplateSpec) -> bool:
    return template_hash(a) == template_hash(b)


def revision_of(rs: apps_pb2.ReplicaSet) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def resolve_fraction(value: meta_pb2.IntOrString, total: int, round_up: bool) -> int:
    """An IntOrString ('25%' or 3) against `total`."""
    if value.WhichOneof("value") == "str_val":
        text = value.str_val.strip()
        percent = float(text[:-1]) if text.endswith("%") else float(text)
        amount = percent * total / 100
        return math.ceil(amount) if round_up else math.floor(amount)
    return value.int_val


def surge_and_unavailable(d: apps_pb2.Deployment, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved; never both 0 (then maxUnavailable is 1)."""
    rolling = d.spec.strategy.rolling_update
    surge = resolve_fraction(rolling.max_surge, desired, True) \
        if rolling.HasField("max_surge") else math.ceil(desired * 0.25)
    unavailable = resolve_fraction(rolling.max_unavailable, desired, False) \
        if rolling.HasField("max_unavailable") else math.floor(desired * 0.25)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass
class DeploymentPlan:
    """create: a ReplicaSet to create; scale: {rs name: (replicas, revision or None)};
    delete: ReplicaSet names (history cleanup); revision: the Deployment's revision
    annotation ('' = unchanged); status (None = unchanged); events (type, reason, message);
    recheck_after: seconds until the progress deadline or availability needs a look."""

    create: apps_pb2.ReplicaSet | None = None
    scale: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    revision: str = ""
    status: apps_pb2.DeploymentStatus | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    recheck_after: float | None = None


def new_replica_set(d: apps_pb2.Deployment, replicas: int, revision: int) -> apps_pb2.ReplicaSet:
    """The ReplicaSet for the Deployment's current template."""
    pod_hash = template_hash(d.spec.template)
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = f"{d.metadata.name}-{pod_hash}"
    rs.metadata.namespace = d.metadata.namespace
    rs.metadata.labels.update(d.spec.template.metadata.labels)
    rs.metadata.labels[HASH_LABEL] = pod_hash
    rs.metadata.annotations[REVISION] = str(revision)
    rs.metadata.owner_references.append(controller_ref(d))
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[HASH_LABEL] = pod_hash
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[HASH_LABEL] = pod_hash
    return rs


def _replicas(obj) -> int:
    return obj.spec.replicas if obj.spec.HasField("replicas") else 1


def plan_deployment(d: apps_pb2.Deployment, owned: Sequence[apps_pb2.ReplicaSet],
                    now: float) -> DeploymentPlan:
    """The plan for one Deployment given the ReplicaSets it controls (see module doc)."""
    plan = DeploymentPlan()
    if d.metadata.deletion_timestamp:
        return plan
    desired = _replicas(d)
    live = [rs for rs in owned if not rs.metadata.deletion_timestamp]
    new = next((rs for rs in live if same_template(rs.spec.template, d.spec.template)), None)
    old = sorted((rs for rs in live if rs is not new), key=revision_of)
    max_revision = max((revision_of(rs) for rs in live), default=0)
    target = {rs.metadata.name: _replicas(rs) for rs in live}
    surge, max_unavailable = surge_and_unavailable(d, desired)
    rolling = d.spec.strategy.type != "Recreate"
    progressed = False

    if not d.spec.paused:
        old_total = sum(target[rs.metadata.name] for rs in old)
        old_pods = sum(rs.status.replicas for rs in old)
        if new is None:
            if not rolling:
                initial = desired if old_total == 0 and old_pods == 0 else 0
            elif old_total == 0:
                initial = desired
            else:
                initial = max(0, min(desired, desired + surge - old_total))
            plan.create = new_replica_set(d, initial, max_revision + 1)
            plan.events.append(("Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {plan.create.metadata.name} "
                                f"to {initial}"))
            new_name, new_revision = plan.create.metadata.name, max_revision + 1
            target[new_name] = initial
            new_available = 0
            progressed = True
        else:
            new_name = new.metadata.name
            new_revision = revision_of(new)
            if new_revision < max_revision:
                new_revision = max_revision + 1
                plan.scale[new_name] = (target[new_name], new_revision)
            new_available = new.status.available_replicas
        if rolling:
            total = sum(target.values())
            if old_total == 0:
                want = desired
            else:
                want = min(desired, target[new_name] + max(0, desired + surge - total))
            want = max(want, 0)
            if target[new_name] > desired:
                want = desired
            if want != target[new_name] and new is not None:
                plan.scale[new_name] = (want, plan.scale.get(new_name, (0, None))[1])
                target[new_name] = want
            # Scale old ReplicaSets down without going under minAvailable.
            min_available = desired - max_unavailable
            all_available = new_available + sum(rs.status.available_replicas for rs in old)
            new_unavailable = target[new_name] - new_available
            budget = sum(target.values()) - min_available - new_unavailable
            for rs in old:  # unhealthy replicas first: removing them costs no availability
                if budget <= 0:
                    break
                name = rs.metadata.name
                unhealthy = target[name] - rs.status.available_replicas
                cut = min(max(unhealthy, 0), budget)
                if cut > 0:
                    target[name] -= cut
                    budget -= cut
            healthy_budget = all_available - min_available
            for rs in old:
                if healthy_budget <= 0:
                    break
                name = rs.metadata.name
                cut = min(target[name], healthy_budget)
                if cut > 0:
                    target[name] -= cut
                    healthy_budget -= cut
        else:
            for rs in old:
                target[rs.metadata.name] = 0
            if old_pods == 0 and all(target[rs.metadata.name] == 0 for rs in old):
                target[new_name] = desired
        for rs in live:
            name = rs.metadata.name
            if target[name] != _replicas(rs) or name in plan.scale:
                revision = plan.scale.get(name, (0, None))[1]
                plan.scale[name] = (target[name], revision)
                if target[name] != _replicas(rs):
                    progressed = True
                    verb = "up" if target[name] > _replicas(rs) else "down"
                    plan.events.append(("Normal", "ScalingReplicaSet",
                                        f"Scaled {verb} replica set {name} to {target[name]}"))
        if plan.create is not None:
            plan.create.spec.replicas = target[new_name]
        plan.revision = str(new_revision) if d.metadata.annotations.get(REVISION) != str(
            new_revision) else ""
        # History: old ReplicaSets at 0 beyond the limit, oldest first.
        limit = d.spec.revision_history_limit if d.spec.HasField(
            "revision_history_limit") else 10
        idle = [rs for rs in old if target[rs.metadata.name] == 0 and rs.status.replicas == 0]
        if len(idle) > limit:
            plan.delete = [rs.metadata.name for rs in idle[: len(idle) - limit]]
    else:
        new_name = new.metadata.name if new is not None else ""

    plan.status, plan.recheck_after = _status(d, live, new, desired, max_unavailable,
                                              progressed, now)
    return plan


def _status(d: apps_pb2.Deployment, live: Sequence[apps_pb2.ReplicaSet],
            new: apps_pb2.ReplicaSet | None, desired: int, max_unavailable: int,
            progressed: bool, now: float) -> tuple[apps_pb2.DeploymentStatus | None, float | None]:
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(d.status)
    status.replicas = sum(rs.status.replicas for rs in live)
    status.updated_replicas = new.status.replicas if new is not None else 0
    status.ready_replicas = sum(rs.status.ready_replicas for rs in live)
    status.available_replicas = sum(rs.status.available_replicas for rs in live)
    status.unavailable_replicas = max(0, desired - status.available_replicas)
    status.observed_generation = d.metadata.generation
    stamp = format_time(now)
    available_ok = status.available_replicas >= desired - max_unavailable
    _set(status.conditions, "Available", "True" if available_ok else "False",
         "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
         "Deployment has minimum availability." if available_ok
         else "Deployment does not have minimum availability.", stamp, False)
    counters_moved = (status.updated_replicas, status.ready_replicas, status.available_replicas,
                      status.replicas) != (d.status.updated_replicas, d.status.ready_replicas,
                                           d.status.available_replicas, d.status.replicas)
    new_name = new.metadata.name if new is not None else f"{d.metadata.name}"
    complete = (new is not None and status.updated_replicas == desired
                and status.replicas == desired and status.available_replicas >= desired
                and _replicas(new) == desired)
    deadline = d.spec.progress_deadline_seconds if d.spec.HasField(
        "progress_deadline_seconds") else 600
    recheck = None
    current = condition(status.conditions, "Progressing")
    if d.spec.paused:
        _set(status.conditions, "Progressing", "Unknown", "DeploymentPaused",
             "Deployment is paused", stamp, False)
    elif complete:
        _set(status.conditions, "Progressing", "True", "NewReplicaSetAvailable",
             f'ReplicaSet "{new_name}" has successfully progressed.', stamp,
             current is None or current.reason != "NewReplicaSetAvailable")
    elif progressed or counters_moved or current is None or current.reason in (
            "DeploymentPaused", "NewReplicaSetAvailable"):
        _set(status.conditions, "Progressing", "True", "ReplicaSetUpdated",
             f'ReplicaSet "{new_name}" is progressing.', stamp, True)
        recheck = float(deadline) + 0.5
    elif current.reason == "ReplicaSetUpdated":
        since = parse_time(current.last_update_time) or now
        if now - since > deadline:
            _set(status.conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                 f'ReplicaSet "{new_name}" has timed out progressing.', stamp, True)
        else:
            recheck = deadline - (now - since) + 0.5
    return (None if status == d.status else status), recheck


def _set(conditions, kind: str, status: str, reason: str, message: str, stamp: str,
         touch: bool) -> None:
    cond = condition(conditions, kind)
    if cond is None:
        conditions.add(type=kind, status=status, reason=reason, message=message,
                       last_transition_time=stamp, last_update_time=stamp)
        return
    if cond.status != status:
        cond.last_transition_time = stamp
        touch = True
    if cond.reason != reason:
        touch = True
    cond.status, cond.reason, cond.message = status, reason, message
    if touch:
        cond.last_update_time = stamp


class DeploymentController(KeyedController):
    """Reconciles Deployments (keys: (namespace, name))."""

    name = "deployment"
    workers = 2

    def keys_for(self, kind: str, namespace: str, name: str) -> Iterable[Hashable]:
        if kind == "Deployment":
            return [(namespace, name)]
        if kind != "ReplicaSet":
            return []
        rs = self.context.cache.get("ReplicaSet", namespace, name)
        if rs is None:
            return [(namespace, d.metadata.name)
                    for d in self.context.cache.list("Deployment", namespace)]
        ref = controller_of(rs)
        if ref is not None and ref.kind == "Deployment":
            return [(namespace, ref.name)]
        return []

    def sync(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        cache = self.context.cache
        d = cache.get("Deployment", namespace, name)
        if d is None:
            return None
        owned = [rs for rs in cache.list("ReplicaSet", namespace)
                 if (ref := controller_of(rs)) is not None and ref.uid == d.metadata.uid]
        if not owned:
            selector = selector_from_proto(d.spec.selector)
            owned = self._adopt(d, selector, cache.list("ReplicaSet", namespace))
        plan = plan_deployment(d, owned, time.time())
        api = self.context.api
        by_name = {rs.metadata.name: rs for rs in owned}
        if plan.create is not None:
            api.create(plan.create)
        for rs_name, (replicas, revision) in plan.scale.items():
            rs = copy_of(by_name[rs_name])
            rs.spec.replicas = replicas
            if revision is not None:
                rs.metadata.annotations[REVISION] = str(revision)
            api.update(rs)
        for rs_name in plan.delete:
            rs = by_name[rs_name]
            api.delete("ReplicaSet", namespace, rs_name, precondition_uid=rs.metadata.uid)
        for type_, reason, message in plan.events:
            self.context.record(d, type_, reason, message)
        if plan.revision:
            fresh = copy_of(d)
            fresh.metadata.annotations[REVISION] = plan.revision
            d = api.update(fresh)
        if plan.status is not None:
            fresh = copy_of(d)
            fresh.status.CopyFrom(plan.status)
            api.update_status(fresh)
        return plan.recheck_after

    def _adopt(self, d: apps_pb2.Deployment, selector, replica_sets) -> list[apps_pb2.ReplicaSet]:
        """Orphan ReplicaSets matching the selector become this Deployment's."""
        adopted = []
        for rs in replica_sets:
            if controller_of(rs) is None and not selector.empty() and selector.matches(
                    rs.metadata.labels):
                fresh = copy_of(rs)
                fresh.metadata.owner_references.append(controller_ref(d))
                adopted.append(self.context.api.update(fresh))
        return adopted
