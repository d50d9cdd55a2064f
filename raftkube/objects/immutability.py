"""What an update may not change, per kind (Kubernetes' update validation). Pure.

`validate_update(old, new)` returns a FieldError for every immutable field that differs,
reason "field is immutable"; run it together with `validate(new)` when an object is
replaced. Fields a controller fills in once (Pod spec.nodeName, PVC spec.volumeName, PV
spec.claimRef, Node spec.podCIDR, Service spec.clusterIP) may go from empty to a value
but not change after that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from google.protobuf.message import Message

from raftkube.api.v1 import apps_pb2, core_pb2, pod_pb2, storage_pb2
from raftkube.objects import registry
from raftkube.objects.errors import FieldError

IMMUTABLE = "field is immutable"


def validate_update(old: Message, new: Message) -> list[FieldError]:
    """Every immutable field `new` changes relative to `old` (same kind required)."""
    if type(old) is not type(new):
        return [FieldError("kind", f"may not change from {old.kind} to {new.kind}")]
    registry.for_message(new)  # raises UnknownKind for non-object messages
    errors: list[FieldError] = []
    for field, json_name in (("name", "name"), ("namespace", "namespace"), ("uid", "uid"),
                             ("creation_timestamp", "creationTimestamp")):
        before, after = getattr(old.metadata, field), getattr(new.metadata, field)
        if before and after != before:
            errors.append(FieldError(f"metadata.{json_name}", IMMUTABLE))
    errors += _BY_TYPE.get(type(new), _nothing)(old, new)
    return errors


def _nothing(_old: Message, _new: Message) -> list[FieldError]:
    return []


def _same(errors: list[FieldError], path: str, before: object, after: object) -> None:
    if before != after:
        errors.append(FieldError(path, IMMUTABLE))


def _set_once(errors: list[FieldError], path: str, before: str, after: str) -> None:
    if before and after != before:
        errors.append(FieldError(path, IMMUTABLE))


def _selector(old: Message, new: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    _same(errors, "spec.selector", old.spec.selector, new.spec.selector)
    return errors


def _stateful_set(old: apps_pb2.StatefulSet, new: apps_pb2.StatefulSet) -> list[FieldError]:
    errors = _selector(old, new)
    _same(errors, "spec.serviceName", old.spec.service_name, new.spec.service_name)
    _same(errors, "spec.podManagementPolicy", old.spec.pod_management_policy,
          new.spec.pod_management_policy)
    _same(errors, "spec.volumeClaimTemplates", list(old.spec.volume_claim_templates),
          list(new.spec.volume_claim_templates))
    return errors


def _without_images(spec: pod_pb2.PodSpec) -> pod_pb2.PodSpec:
    copy = pod_pb2.PodSpec()
    copy.CopyFrom(spec)
    for container in (*copy.containers, *copy.init_containers):
        container.ClearField("image")
    copy.ClearField("active_deadline_seconds")
    copy.ClearField("tolerations")
    copy.ClearField("node_name")
    return copy


def _pod(old: pod_pb2.Pod, new: pod_pb2.Pod) -> list[FieldError]:
    errors: list[FieldError] = []
    if _without_images(old.spec) != _without_images(new.spec):
        errors.append(FieldError("spec", "pod updates may not change fields other than "
                                 "containers[*].image, initContainers[*].image, "
                                 "activeDeadlineSeconds and tolerations (only additions)"))
    _set_once(errors, "spec.nodeName", old.spec.node_name, new.spec.node_name)
    kept = list(new.spec.tolerations)
    if any(t not in kept for t in old.spec.tolerations):
        errors.append(FieldError("spec.tolerations", "existing tolerations may not be removed"))
    return errors


def _service(old: core_pb2.Service, new: core_pb2.Service) -> list[FieldError]:
    errors: list[FieldError] = []
    _set_once(errors, "spec.clusterIP", old.spec.cluster_ip, new.spec.cluster_ip)
    return errors


def _immutable_data(old: Message, new: Message, maps: tuple[tuple[str, str], ...]) -> list[
        FieldError]:
    errors: list[FieldError] = []
    if not old.immutable:
        return errors
    if not new.immutable:
        errors.append(FieldError("immutable", "may not be unset once true"))
    for field, json_name in maps:
        _same(errors, json_name, dict(getattr(old, field)), dict(getattr(new, field)))
    return errors


def _config_map(old: core_pb2.ConfigMap, new: core_pb2.ConfigMap) -> list[FieldError]:
    return _immutable_data(old, new, (("data", "data"), ("binary_data", "binaryData")))


def _secret(old: core_pb2.Secret, new: core_pb2.Secret) -> list[FieldError]:
    errors = _immutable_data(old, new, (("data", "data"),))
    if old.type:
        _same(errors, "type", old.type, new.type)
    return errors


def _node(old: core_pb2.Node, new: core_pb2.Node) -> list[FieldError]:
    errors: list[FieldError] = []
    _set_once(errors, "spec.podCIDR", old.spec.pod_cidr, new.spec.pod_cidr)
    return errors


def _pvc(old: storage_pb2.PersistentVolumeClaim,
         new: storage_pb2.PersistentVolumeClaim) -> list[FieldError]:
    errors: list[FieldError] = []
    _set_once(errors, "spec.volumeName", old.spec.volume_name, new.spec.volume_name)
    _same(errors, "spec.accessModes", list(old.spec.access_modes), list(new.spec.access_modes))
    _same(errors, "spec.volumeMode", old.spec.volume_mode, new.spec.volume_mode)
    if old.spec.HasField("storage_class_name"):
        _same(errors, "spec.storageClassName", old.spec.storage_class_name,
              new.spec.storage_class_name)
    _same(errors, "spec.selector", old.spec.selector, new.spec.selector)
    return errors


def _pv(old: storage_pb2.PersistentVolume, new: storage_pb2.PersistentVolume) -> list[
        FieldError]:
    errors: list[FieldError] = []
    _same(errors, "spec.hostPath", old.spec.host_path, new.spec.host_path)
    _same(errors, "spec.local", old.spec.local, new.spec.local)
    _same(errors, "spec.nodeAffinity", old.spec.node_affinity, new.spec.node_affinity)
    return errors


_BY_TYPE: Mapping[type[Message], Callable[[Message, Message], list[FieldError]]] = \
    MappingProxyType({
        pod_pb2.Pod: _pod,
        apps_pb2.Deployment: _selector,
        apps_pb2.ReplicaSet: _selector,
        apps_pb2.StatefulSet: _stateful_set,
        core_pb2.Service: _service,
        core_pb2.ConfigMap: _config_map,
        core_pb2.Secret: _secret,
        core_pb2.Node: _node,
        storage_pb2.PersistentVolumeClaim: _pvc,
        storage_pb2.PersistentVolume: _pv,
    })
