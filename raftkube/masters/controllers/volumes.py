"""PersistentVolumeClaim binding and local PersistentVolume provisioning.

Pure part, `plan_volumes(claims, volumes, pods, config)`:
- an unbound claim binds to the smallest Available volume (no claimRef) of the same
  storage class whose capacity covers the request and whose access modes include the
  claim's (pre-provisioned volumes: bound as soon as the claim exists);
- otherwise, once a pod using the claim is scheduled (WaitForFirstConsumer), a local
  volume is provisioned on that pod's node: PV `pvc-<claim uid>` with spec.local.path
  `<base_path>/<namespace>-<claim>`, nodeAffinity kubernetes.io/hostname In [node], the
  claim's size, access modes and class, and claimRef already pointing at the claim;
- binding writes the volume first (claimRef; phase Bound) then the claim (volumeName;
  phase Bound, capacity, accessModes): a crash in between is finished by the next pass,
  since a volume whose claimRef names a claim always wins for that claim;
- a volume whose claim is gone becomes Released (its data is kept: Retain).
The agent creates the directory when it mounts the volume.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from raftkube import apierrors
from raftkube.api.v1 import meta_pb2, pod_pb2, storage_pb2
from raftkube.logging_config import get_logger
from raftkube.masters.controllers.manager import ControllerContext
from raftkube.masters.controllers.objects_util import copy_of, quantity_units

log = get_logger(__name__)
HOSTNAME_LABEL = "kubernetes.io/hostname"


@dataclass(frozen=True)
class VolumeConfig:
    """MasterConfig.controllers.volumes.

    base_path: directory on each node under which provisioned local volumes live.
    provision: provision local volumes for claims nothing pre-provisioned matches.
    """

    base_path: str = "/var/lib/raftkube/volumes"
    provision: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> VolumeConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"controllers.volumes.{unknown[0]}: unknown field "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**options)  # type: ignore[arg-type]


@dataclass
class VolumePlan:
    """provision: new volumes (claimRef set); bind: (volume name, claim key) pairs to bind
    (the volume may be one of `provision`); release: volume names whose claim is gone."""

    provision: list[storage_pb2.PersistentVolume] = field(default_factory=list)
    bind: list[tuple[str, tuple[str, str]]] = field(default_factory=list)
    release: list[str] = field(default_factory=list)


def claim_class(claim: storage_pb2.PersistentVolumeClaim) -> str:
    return claim.spec.storage_class_name if claim.spec.HasField("storage_class_name") else ""


def requested_bytes(claim: storage_pb2.PersistentVolumeClaim) -> int:
    return quantity_units(claim.spec.resources.requests.get("storage", "0"))


def fits(volume: storage_pb2.PersistentVolume, claim: storage_pb2.PersistentVolumeClaim) -> bool:
    return (volume.spec.storage_class_name == claim_class(claim)
            and set(claim.spec.access_modes) <= set(volume.spec.access_modes)
            and quantity_units(volume.spec.capacity.get("storage", "0")) >= requested_bytes(claim))


def local_volume(claim: storage_pb2.PersistentVolumeClaim, node: str,
                 config: VolumeConfig) -> storage_pb2.PersistentVolume:
    pv = storage_pb2.PersistentVolume(api_version="v1", kind="PersistentVolume")
    pv.metadata.name = f"pvc-{claim.metadata.uid}"
    pv.metadata.annotations["raftkube.io/provisioned-by"] = "raftkube-local"
    pv.spec.capacity["storage"] = claim.spec.resources.requests.get("storage", "1Gi")
    pv.spec.access_modes.extend(claim.spec.access_modes or ["ReadWriteOnce"])
    pv.spec.local.path = f"{config.base_path}/{claim.metadata.namespace}-{claim.metadata.name}"
    pv.spec.storage_class_name = claim_class(claim)
    pv.spec.persistent_volume_reclaim_policy = "Retain"
    pv.spec.volume_mode = "Filesystem"
    term = pv.spec.node_affinity.required.node_selector_terms.add()
    term.match_expressions.add(key=HOSTNAME_LABEL, operator="In", values=[node])
    pv.spec.claim_ref.CopyFrom(claim_reference(claim))
    return pv


def claim_reference(claim: storage_pb2.PersistentVolumeClaim) -> meta_pb2.ObjectReference:
    return meta_pb2.ObjectReference(kind="PersistentVolumeClaim", api_version="v1",
                                    namespace=claim.metadata.namespace,
                                    name=claim.metadata.name, uid=claim.metadata.uid)


def plan_volumes(claims: Iterable[storage_pb2.PersistentVolumeClaim],
                 volumes: Iterable[storage_pb2.PersistentVolume],
                 pods: Iterable[pod_pb2.Pod], config: VolumeConfig) -> VolumePlan:
    plan = VolumePlan()
    claims_by_key = {(c.metadata.namespace, c.metadata.name): c for c in claims}
    vols = list(volumes)
    claimed: dict[tuple[str, str], storage_pb2.PersistentVolume] = {}
    for pv in vols:
        ref = pv.spec.claim_ref
        if not ref.name:
            continue
        claim = claims_by_key.get((ref.namespace, ref.name))
        if claim is None or (ref.uid and claim.metadata.uid != ref.uid):
            if pv.status.phase != "Released":
                plan.release.append(pv.metadata.name)
            continue
        claimed[(ref.namespace, ref.name)] = pv
    consumers: dict[tuple[str, str], str] = {}
    for pod in pods:
        if not pod.spec.node_name or pod.metadata.deletion_timestamp:
            continue
        for volume in pod.spec.volumes:
            if volume.HasField("persistent_volume_claim"):
                consumers.setdefault((pod.metadata.namespace,
                                      volume.persistent_volume_claim.claim_name),
                                     pod.spec.node_name)
    available = sorted((pv for pv in vols if not pv.spec.claim_ref.name
                        and not pv.metadata.deletion_timestamp),
                       key=lambda pv: quantity_units(pv.spec.capacity.get("storage", "0")))
    for key, claim in sorted(claims_by_key.items()):
        if claim.metadata.deletion_timestamp:
            continue
        pv = claimed.get(key)
        if pv is not None:
            if claim.spec.volume_name != pv.metadata.name or claim.status.phase != "Bound" \
                    or pv.status.phase != "Bound":
                plan.bind.append((pv.metadata.name, key))
            continue
        if claim.spec.volume_name:
            continue  # bound to a volume that does not name it (yet): the user's choice
        match = next((pv for pv in available if fits(pv, claim)), None)
        if match is not None:
            available.remove(match)
            plan.bind.append((match.metadata.name, key))
            continue
        node = consumers.get(key)
        if node and config.provision:
            pv = local_volume(claim, node, config)
            plan.provision.append(pv)
            plan.bind.append((pv.metadata.name, key))
    return plan


@dataclass
class VolumeController:
    """Applies `plan_volumes` whenever a claim, volume or pod changes."""

    context: ControllerContext
    config: VolumeConfig = field(default_factory=VolumeConfig)
    name: str = "volumes"
    _dirty: threading.Event = field(default_factory=threading.Event)

    def on_change(self, kind: str, namespace: str, name: str) -> None:
        if kind in ("PersistentVolume", "PersistentVolumeClaim"):
            self._dirty.set()
        elif kind == "Pod":
            pod = self.context.cache.get("Pod", namespace, name)
            if pod is not None and pod.spec.node_name and any(
                    v.HasField("persistent_volume_claim") for v in pod.spec.volumes):
                self._dirty.set()

    def run(self, stop: threading.Event) -> None:
        self._dirty.set()
        while not stop.is_set():
            if not self._dirty.wait(0.5):
                continue
            self._dirty.clear()
            try:
                if self.step():
                    self._dirty.set()
            except apierrors.ApiError as e:
                log.warning("volume step failed", error=str(e))
                self._dirty.set()
                stop.wait(0.2)

    def step(self) -> bool:
        """One pass; True when it changed something."""
        cache = self.context.cache
        plan = plan_volumes(cache.list("PersistentVolumeClaim"), cache.list("PersistentVolume"),
                            cache.list("Pod"), self.config)
        api = self.context.api
        made = {pv.metadata.name: pv for pv in plan.provision}
        for pv in plan.provision:
            try:
                made[pv.metadata.name] = api.create(pv)
            except apierrors.AlreadyExists:
                made.pop(pv.metadata.name)
        for pv_name, (namespace, claim_name) in plan.bind:
            self._bind(pv_name, namespace, claim_name, made.get(pv_name))
        for pv_name in plan.release:
            pv = cache.get("PersistentVolume", "", pv_name)
            if pv is not None:
                fresh = copy_of(pv)
                fresh.status.phase = "Released"
                with contextlib.suppress(apierrors.Conflict, apierrors.NotFound):
                    api.update_status(fresh)
        return bool(plan.provision or plan.bind or plan.release)

    def _bind(self, pv_name: str, namespace: str, claim_name: str,
              created: storage_pb2.PersistentVolume | None) -> None:
        cache, api = self.context.cache, self.context.api
        pv = created or cache.get("PersistentVolume", "", pv_name)
        claim = cache.get("PersistentVolumeClaim", namespace, claim_name)
        if pv is None or claim is None:
            return
        try:
            if pv.spec.claim_ref.uid != claim.metadata.uid:
                fresh = copy_of(pv)
                fresh.spec.claim_ref.CopyFrom(claim_reference(claim))
                pv = api.update(fresh)
            if pv.status.phase != "Bound":
                fresh = copy_of(pv)
                fresh.status.phase = "Bound"
                api.update_status(fresh)
            if claim.spec.volume_name != pv_name:
                fresh_claim = copy_of(claim)
                fresh_claim.spec.volume_name = pv_name
                claim = api.update(fresh_claim)
            if claim.status.phase != "Bound":
                fresh_claim = copy_of(claim)
                fresh_claim.status.phase = "Bound"
                fresh_claim.status.capacity.clear()
                fresh_claim.status.capacity.update(dict(pv.spec.capacity))
                del fresh_claim.status.access_modes[:]
                fresh_claim.status.access_modes.extend(pv.spec.access_modes)
                api.update_status(fresh_claim)
                self.context.record(claim, "Normal", "Bound",
                                    f"Bound to volume {pv_name}")
        except (apierrors.Conflict, apierrors.NotFound):
            self._dirty.set()
