"""The kind registry: Kubernetes group/versions, scopes, names, TypedObject envelope."""

from __future__ import annotations

import pytest

from raftkube.api.v1 import apps_pb2, meta_pb2, objects_pb2
from raftkube.objects import registry


def test_every_kind_has_its_kubernetes_group_version_and_scope() -> None:
    table = {k.kind: (k.api_version, k.namespaced) for k in registry.all_kinds()}
    assert table == {
        "Namespace": ("v1", False), "Node": ("v1", False), "Pod": ("v1", True),
        "Service": ("v1", True), "Endpoints": ("v1", True), "ConfigMap": ("v1", True),
        "Secret": ("v1", True), "Event": ("v1", True), "PersistentVolume": ("v1", False),
        "PersistentVolumeClaim": ("v1", True), "Deployment": ("apps/v1", True),
        "ReplicaSet": ("apps/v1", True), "StatefulSet": ("apps/v1", True),
        "Ingress": ("networking.k8s.io/v1", True), "Lease": ("coordination.k8s.io/v1", True),
    }


def test_every_kind_has_a_typed_object_field_of_its_message() -> None:
    fields = objects_pb2.TypedObject.DESCRIPTOR.fields_by_name
    assert len(fields) == len(registry.all_kinds())
    for info in registry.all_kinds():
        assert fields[info.typed_field].message_type is info.message_class.DESCRIPTOR
        descriptor = info.message_class.DESCRIPTOR
        assert [f.json_name for f in descriptor.fields[:3]] == ["apiVersion", "kind", "metadata"]


@pytest.mark.parametrize(
    ("name", "kind"),
    [("po", "Pod"), ("pods", "Pod"), ("Pod", "Pod"), ("deploy", "Deployment"),
     ("deployments.apps", "Deployment"), ("svc", "Service"), ("cm", "ConfigMap"),
     ("secrets", "Secret"), ("pvc", "PersistentVolumeClaim"), ("pv", "PersistentVolume"),
     ("sts", "StatefulSet"), ("rs", "ReplicaSet"), ("ing", "Ingress"),
     ("ingresses.networking.k8s.io", "Ingress"), ("ns", "Namespace"), ("no", "Node"),
     ("ep", "Endpoints"), ("ev", "Event"), ("leases", "Lease")],
)
def test_cli_names_resolve(name: str, kind: str) -> None:
    assert registry.resolve(name).kind == kind


def test_unknown_names_raise_clear_errors() -> None:
    with pytest.raises(registry.UnknownKind, match='doesn\'t have a resource type "widgets"'):
        registry.resolve("widgets")
    with pytest.raises(registry.UnknownKind, match=r"deployments\.core"):
        registry.resolve("deployments.core")
    with pytest.raises(registry.UnknownKind, match="use 'apps/v1'"):
        registry.by_api_version_kind("extensions/v1beta1", "Deployment")
    with pytest.raises(registry.UnknownKind, match="not an object kind"):
        registry.for_message(meta_pb2.ObjectMeta())


def test_wrap_unwrap_and_new() -> None:
    info = registry.by_kind("Deployment")
    deployment = info.new("web", "shop")
    assert isinstance(deployment, apps_pb2.Deployment)
    assert (deployment.api_version, deployment.kind, deployment.metadata.namespace) == \
        ("apps/v1", "Deployment", "shop")
    typed = registry.wrap(deployment)
    assert typed.WhichOneof("object") == "deployment"
    assert registry.unwrap(typed) == deployment
    assert registry.by_kind("Node").new("w1", "ignored").metadata.namespace == ""
    with pytest.raises(ValueError, match="holds no object"):
        registry.unwrap(objects_pb2.TypedObject())
    assert info.group == "apps" and registry.by_kind("Pod").group == ""
