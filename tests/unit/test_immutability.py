"""Updates may not change immutable fields; set-once fields may be filled in once."""

from __future__ import annotations

from raftkube.api.v1 import apps_pb2, core_pb2, pod_pb2, storage_pb2
from raftkube.objects.immutability import validate_update
from raftkube.objects.registry import by_kind


def _copy(obj):
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def _paths(old, new) -> list[str]:
    return [str(e) for e in validate_update(old, new)]


def test_metadata_identity_is_immutable_but_labels_are_not() -> None:
    old = by_kind("ConfigMap").new("a", "default")
    old.metadata.uid = "u1"
    new = _copy(old)
    new.metadata.labels["x"] = "y"
    new.data["k"] = "v"
    assert _paths(old, new) == []
    new.metadata.name = "b"
    new.metadata.uid = "u2"
    assert _paths(old, new) == ["metadata.name: field is immutable",
                                "metadata.uid: field is immutable"]


def test_workload_selectors_are_immutable() -> None:
    old = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    old.spec.selector.match_labels["app"] = "web"
    new = _copy(old)
    new.spec.replicas = 5
    assert _paths(old, new) == []
    new.spec.selector.match_labels["app"] = "api"
    assert _paths(old, new) == ["spec.selector: field is immutable"]


def test_stateful_set_identity_fields_are_immutable() -> None:
    old = apps_pb2.StatefulSet(api_version="apps/v1", kind="StatefulSet")
    old.spec.service_name = "db"
    old.spec.volume_claim_templates.add().metadata.name = "data"
    new = _copy(old)
    new.spec.replicas = 3
    new.spec.template.spec.containers.add(name="db", image="localhost/busybox:latest")
    assert _paths(old, new) == []
    new.spec.service_name = "other"
    new.spec.volume_claim_templates[0].metadata.name = "store"
    assert _paths(old, new) == ["spec.serviceName: field is immutable",
                                "spec.volumeClaimTemplates: field is immutable"]


def test_pod_spec_allows_only_images_binding_and_new_tolerations() -> None:
    old = pod_pb2.Pod(api_version="v1", kind="Pod")
    old.spec.containers.add(name="a", image="localhost/busybox:1")
    old.spec.tolerations.add(key="k", operator="Exists")
    new = _copy(old)
    new.spec.containers[0].image = "localhost/busybox:2"
    new.spec.node_name = "w1"
    new.spec.tolerations.add(key="j", operator="Exists")
    assert _paths(old, new) == []
    moved = _copy(new)
    moved.spec.node_name = "w2"
    assert _paths(new, moved) == ["spec.nodeName: field is immutable"]
    changed = _copy(new)
    changed.spec.containers[0].command.append("sh")
    del changed.spec.tolerations[0]
    assert [e.path for e in validate_update(new, changed)] == ["spec", "spec.tolerations"]


def test_set_once_fields() -> None:
    service = core_pb2.Service(api_version="v1", kind="Service")
    allocated = _copy(service)
    allocated.spec.cluster_ip = "10.96.0.10"
    assert _paths(service, allocated) == []
    changed = _copy(allocated)
    changed.spec.cluster_ip = "10.96.0.11"
    assert _paths(allocated, changed) == ["spec.clusterIP: field is immutable"]
    claim = storage_pb2.PersistentVolumeClaim(api_version="v1", kind="PersistentVolumeClaim")
    bound = _copy(claim)
    bound.spec.volume_name = "pv1"
    bound.spec.resources.requests["storage"] = "2Gi"
    assert _paths(claim, bound) == []
    rebound = _copy(bound)
    rebound.spec.volume_name = "pv2"
    assert _paths(bound, rebound) == ["spec.volumeName: field is immutable"]


def test_immutable_config_maps_and_secrets() -> None:
    old = core_pb2.Secret(api_version="v1", kind="Secret", immutable=True, type="Opaque")
    old.data["a"] = b"1"
    new = _copy(old)
    new.data["a"] = b"2"
    new.immutable = False
    assert _paths(old, new) == ["immutable: may not be unset once true",
                                "data: field is immutable"]
    mutable = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    edited = _copy(mutable)
    edited.data["x"] = "y"
    assert _paths(mutable, edited) == []


def test_kind_change_is_rejected() -> None:
    assert _paths(core_pb2.ConfigMap(kind="ConfigMap"), core_pb2.Secret(kind="Secret")) == [
        "kind: may not change from ConfigMap to Secret"
    ]
