"""The kinds raftkube serves: Kubernetes group/version, scope, names, message class.

One immutable table. The API server, SDK and CLI resolve kinds only through it:
`resolve("po")`, `resolve("deployments")`, `by_kind("Deployment")`,
`by_api_version_kind("apps/v1", "Deployment")`, `for_message(obj)`; and
`wrap`/`unwrap` move objects in and out of the TypedObject envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from google.protobuf.message import Message

from raftkube.api.v1 import (
    apps_pb2,
    coordination_pb2,
    core_pb2,
    networking_pb2,
    objects_pb2,
    pod_pb2,
    storage_pb2,
)


class UnknownKind(KeyError):
    """No kind with that name, plural, short name or message type; str() says which."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown kind"


@dataclass(frozen=True)
class KindInfo:
    """Everything needed to handle objects of one kind.

    kind: "Deployment"; api_version: "apps/v1" (Kubernetes group/version, "v1" for core);
    message_class: the generated message; namespaced: False for cluster-scoped kinds;
    plural: "deployments" (also the store/URL segment); short_names: ("deploy",);
    typed_field: the TypedObject oneof field holding this kind ("deployment").
    """

    kind: str
    api_version: str
    message_class: type[Message]
    namespaced: bool
    plural: str
    short_names: tuple[str, ...]
    typed_field: str

    @property
    def group(self) -> str:
        """API group: "" for core, "apps", "networking.k8s.io", ..."""
        return self.api_version.rpartition("/")[0]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def new(self, name: str = "", namespace: str = "") -> Message:
        """A fresh object of this kind with apiVersion, kind and the given name set.

        `namespace` is ignored for cluster-scoped kinds.
        """
        obj = self.message_class(api_version=self.api_version, kind=self.kind)
        obj.metadata.name = name
        if self.namespaced and namespace:
            obj.metadata.namespace = namespace
        return obj


_KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", "v1", core_pb2.Namespace, False, "namespaces", ("ns",), "namespace"),
    KindInfo("Node", "v1", core_pb2.Node, False, "nodes", ("no",), "node"),
    KindInfo("Pod", "v1", pod_pb2.Pod, True, "pods", ("po",), "pod"),
    KindInfo("Service", "v1", core_pb2.Service, True, "services", ("svc",), "service"),
    KindInfo("Endpoints", "v1", core_pb2.Endpoints, True, "endpoints", ("ep",), "endpoints"),
    KindInfo("ConfigMap", "v1", core_pb2.ConfigMap, True, "configmaps", ("cm",), "config_map"),
    KindInfo("Secret", "v1", core_pb2.Secret, True, "secrets", (), "secret"),
    KindInfo("Event", "v1", core_pb2.Event, True, "events", ("ev",), "event"),
    KindInfo(
        "PersistentVolume", "v1", storage_pb2.PersistentVolume, False,
        "persistentvolumes", ("pv",), "persistent_volume",
    ),
    KindInfo(
        "PersistentVolumeClaim", "v1", storage_pb2.PersistentVolumeClaim, True,
        "persistentvolumeclaims", ("pvc",), "persistent_volume_claim",
    ),
    KindInfo(
        "Deployment", "apps/v1", apps_pb2.Deployment, True, "deployments", ("deploy",),
        "deployment",
    ),
    KindInfo(
        "ReplicaSet", "apps/v1", apps_pb2.ReplicaSet, True, "replicasets", ("rs",),
        "replica_set",
    ),
    KindInfo(
        "StatefulSet", "apps/v1", apps_pb2.StatefulSet, True, "statefulsets", ("sts",),
        "stateful_set",
    ),
    KindInfo(
        "Ingress", "networking.k8s.io/v1", networking_pb2.Ingress, True, "ingresses", ("ing",),
        "ingress",
    ),
    KindInfo(
        "Lease", "coordination.k8s.io/v1", coordination_pb2.Lease, True, "leases", (),
        "lease",
    ),
)

_BY_KIND = MappingProxyType({k.kind: k for k in _KINDS})
_BY_MESSAGE = MappingProxyType({k.message_class.DESCRIPTOR.full_name: k for k in _KINDS})
_BY_NAME = MappingProxyType(
    {
        name: k
        for k in _KINDS
        for name in (k.kind.lower(), k.plural, *k.short_names)
    }
)


def all_kinds() -> tuple[KindInfo, ...]:
    """Every supported kind, in a stable order."""
    return _KINDS


def by_kind(kind: str) -> KindInfo:
    """The kind named exactly `kind` ("Deployment"); raise UnknownKind otherwise."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise UnknownKind(
            f"unknown kind {kind!r}; supported kinds: {', '.join(sorted(_BY_KIND))}"
        ) from None


def by_api_version_kind(api_version: str, kind: str) -> KindInfo:
    """The kind for a manifest's apiVersion + kind; raise UnknownKind naming the fix."""
    info = by_kind(kind)
    if api_version != info.api_version:
        raise UnknownKind(
            f"apiVersion {api_version!r} is not supported for kind {kind} "
            f"(use {info.api_version!r})"
        )
    return info


def resolve(name: str) -> KindInfo:
    """The kind a CLI user means: kind, singular, plural or short name, any case;
    "deployments.apps" style group suffixes are accepted. Raise UnknownKind otherwise."""
    lowered = name.lower()
    info = _BY_NAME.get(lowered)
    if info is None and "." in lowered:
        resource, _, group = lowered.partition(".")
        candidate = _BY_NAME.get(resource)
        if candidate is not None and candidate.group == group:
            info = candidate
    if info is None:
        raise UnknownKind(f'the server doesn\'t have a resource type "{name}"')
    return info


def for_message(obj: Message) -> KindInfo:
    """The kind of a message instance or class; raise UnknownKind for other messages."""
    try:
        return _BY_MESSAGE[obj.DESCRIPTOR.full_name]
    except KeyError:
        raise UnknownKind(f"{obj.DESCRIPTOR.full_name} is not an object kind") from None


def wrap(obj: Message) -> objects_pb2.TypedObject:
    """A TypedObject holding a copy of `obj`."""
    typed = objects_pb2.TypedObject()
    getattr(typed, for_message(obj).typed_field).CopyFrom(obj)
    return typed


def unwrap(typed: objects_pb2.TypedObject) -> Message:
    """The object inside a TypedObject (the message itself, not a copy).

    Raise ValueError when the envelope is empty.
    """
    field = typed.WhichOneof("object")
    if field is None:
        raise ValueError("TypedObject holds no object")
    return getattr(typed, field)
