"""Every manifest in examples/ loads unchanged, validates, and round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkube.objects.manifests import dump_yaml, load_manifests, load_text, manifest_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_examples_cover_every_kind_the_readme_promises() -> None:
    loaded = load_manifests([str(EXAMPLES)])
    kinds = {item.obj.kind for item in loaded}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Ingress",
            "PersistentVolume", "PersistentVolumeClaim", "StatefulSet", "Pod"} <= kinds
    services = {o.obj.metadata.name: o.obj.spec for o in loaded if o.obj.kind == "Service"}
    assert services["web"].type == "ClusterIP"
    assert services["web-external"].type == "NodePort"
    assert services["kv"].cluster_ip == "None"
    for item in loaded:
        for container in _containers(item.obj):
            assert container.image == "localhost/busybox:latest"


def _containers(obj):
    if obj.kind == "Pod":
        return list(obj.spec.containers)
    if obj.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return list(obj.spec.template.spec.containers)
    return []


@pytest.mark.parametrize("path", manifest_files(str(EXAMPLES)), ids=lambda p: p.name)
def test_each_example_file_loads_and_round_trips(path: Path) -> None:
    raw = load_text(path.read_text(), str(path), default=False, check=False)
    assert raw, f"{path} holds no objects"
    defaulted = [item.obj for item in load_text(path.read_text(), str(path))]
    again = [item.obj for item in load_text(dump_yaml(defaulted), "again.yaml")]
    assert again == defaulted


def test_the_secret_example_decodes_both_data_and_string_data() -> None:
    loaded = load_manifests([str(EXAMPLES / "11-secret.yaml")])
    assert dict(loaded[0].obj.data) == {"username": b"admin", "password": b"s3cr3t-passw0rd"}
