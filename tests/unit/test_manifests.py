"""Manifest loading: files, directories, stdin, multi-document YAML, JSON, all-or-nothing."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkube.api.v1 import apps_pb2, core_pb2
from raftkube.objects import registry
from raftkube.objects.errors import ManifestError
from raftkube.objects.manifests import (
    dump_json,
    dump_yaml,
    load_manifests,
    load_text,
    manifest_files,
    parse_documents,
)

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: localhost/busybox:latest
          command: ["httpd", "-f", "-p", "8080"]
          ports:
            - containerPort: 8080
"""


def _errors(exc: ManifestError) -> list[str]:
    return [str(p) for p in exc.problems]


def test_multi_document_yaml_loads_every_object_in_order() -> None:
    loaded = load_text(f"---\n{CONFIG_MAP}---\n---\n{DEPLOYMENT}", "app.yaml")
    assert [(o.source, o.index, o.obj.kind) for o in loaded] == [
        ("app.yaml", 0, "ConfigMap"), ("app.yaml", 1, "Deployment"),
    ]
    assert isinstance(loaded[1].obj, apps_pb2.Deployment)
    assert loaded[1].obj.spec.template.spec.containers[0].ports[0].container_port == 8080
    assert loaded[0].kind.plural == "configmaps"


def test_loading_defaults_and_validates_unless_told_not_to() -> None:
    defaulted = load_text(CONFIG_MAP, "cm.yaml")[0].obj
    assert defaulted.metadata.namespace == "default"
    raw = load_text(CONFIG_MAP, "cm.yaml", default=False, check=False)[0].obj
    assert raw.metadata.namespace == ""
    bad = CONFIG_MAP.replace("name: settings", "name: Settings")
    with pytest.raises(ManifestError):
        load_text(bad, "cm.yaml")
    assert load_text(bad, "cm.yaml", check=False)[0].obj.metadata.name == "Settings"


def test_timestamps_stay_strings_and_octal_modes_are_numbers() -> None:
    text = CONFIG_MAP.replace("  name: settings", "  name: settings\n  creationTimestamp: "
                              "2026-01-02T03:04:05Z")
    obj = load_text(text, "cm.yaml", check=False)[0].obj
    assert obj.metadata.creation_timestamp == "2026-01-02T03:04:05Z"


def test_json_documents_and_v1_lists_load() -> None:
    one = load_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}', "a")
    assert one[0].obj.metadata.name == "a"
    objs = [o.obj for o in load_text(f"{CONFIG_MAP}---\n{DEPLOYMENT}", "x.yaml")]
    listed = load_text(dump_json(objs), "list.json")
    assert [o.obj for o in listed] == objs
    with pytest.raises(ManifestError) as info:
        load_text('{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Pod"}], "x": 1}',
                  "l.json")
    assert _errors(info.value) == ["l.json[0]: x: unknown field"]
    with pytest.raises(ManifestError) as info:
        load_text('{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Pod"}]}', "l.json")
    assert _errors(info.value) == ["l.json[0]: items[0].apiVersion: required field is missing"]


def test_dumped_yaml_and_json_load_back_to_the_same_objects() -> None:
    objs = [o.obj for o in load_text(f"{CONFIG_MAP}---\n{DEPLOYMENT}", "x.yaml")]
    assert [o.obj for o in load_text(dump_yaml(objs), "again.yaml")] == objs
    assert [o.obj for o in load_text(dump_json(objs), "again.json")] == objs
    assert dump_yaml(objs[:1]).startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:\n")


def test_yaml_output_uses_literal_blocks_for_multi_line_text() -> None:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = "x"
    cm.data["index.html"] = "<h1>hi</h1>\n<p>there</p>\n"
    assert "index.html: |\n    <h1>hi</h1>\n    <p>there</p>\n" in dump_yaml([cm])


def test_directories_are_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.yml").write_text(CONFIG_MAP.replace("settings", "two"))
    (tmp_path / "a.yaml").write_text(CONFIG_MAP.replace("settings", "one"))
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "three"}}'
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert [p.name for p in manifest_files(str(tmp_path))] == ["a.yaml", "2.yml", "c.json"]
    loaded = load_manifests([str(tmp_path)])
    assert [o.obj.metadata.name for o in loaded] == ["one", "two", "three"]


def test_stdin_is_read_for_dash() -> None:
    loaded = load_manifests(["-"], stdin=io.StringIO(CONFIG_MAP))
    assert loaded[0].source == "<stdin>"
    assert loaded[0].obj.metadata.name == "settings"


def test_any_error_anywhere_loads_nothing_and_reports_everything(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(CONFIG_MAP)
    bad = tmp_path / "web.yaml"
    other = CONFIG_MAP.replace("settings", "other")
    bad.write_text(other + "---\n" + DEPLOYMENT.replace("8080\n", "70000\n"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    with pytest.raises(ManifestError) as info:
        load_manifests([str(good), str(bad), str(broken), str(tmp_path / "missing.yaml")])
    errors = _errors(info.value)
    assert errors[0] == (
        f"{bad}[1]: spec.template.spec.containers[0].ports[0].containerPort: "
        "70000 is not a valid port"
    )
    assert errors[1].startswith(f"{broken}: invalid YAML: ")
    assert errors[2] == f"{tmp_path / 'missing.yaml'}: the path '{tmp_path / 'missing.yaml'}' " \
                        "does not exist"
    assert len(errors) == 3


def test_the_same_object_twice_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_text(f"{CONFIG_MAP}---\n{CONFIG_MAP}", "dup.yaml")
    assert _errors(info.value) == [
        "dup.yaml[1]: metadata.name: ConfigMap 'settings' is also defined in dup.yaml[0]"
    ]
    (tmp_path / "a.yaml").write_text(CONFIG_MAP)
    (tmp_path / "b.yaml").write_text(CONFIG_MAP)
    with pytest.raises(ManifestError) as info:
        load_manifests([str(tmp_path)])
    assert _errors(info.value) == [
        f"{tmp_path / 'b.yaml'}[0]: metadata.name: ConfigMap 'settings' is also defined in "
        f"{tmp_path / 'a.yaml'}[0]"
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("- a\n- b\n", "x.yaml[0]: a manifest document must be an object"),
        ("kind: Pod\n", "x.yaml[0]: apiVersion: required field is missing"),
        ("apiVersion: v1\nkind: Widget\n",
         "x.yaml[0]: kind: unknown kind 'Widget'; supported kinds: ConfigMap, Deployment, "
         "Endpoints, Event, Ingress, Lease, Namespace, Node, PersistentVolume, "
         "PersistentVolumeClaim, Pod, ReplicaSet, Secret, Service, StatefulSet"),
        ("apiVersion: extensions/v1beta1\nkind: Ingress\n",
         "x.yaml[0]: apiVersion: apiVersion 'extensions/v1beta1' is not supported for kind "
         "Ingress (use 'networking.k8s.io/v1')"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nmetadata: {name: b}\n",
         None),
    ],
)
def test_document_level_errors(text: str, error: str | None) -> None:
    with pytest.raises(ManifestError) as info:
        load_text(text, "x.yaml")
    if error is None:
        assert "duplicate key 'metadata'" in str(info.value)
    else:
        assert _errors(info.value) == [error]


def test_namespace_override_fills_missing_and_rejects_mismatch() -> None:
    loaded = load_text(CONFIG_MAP, "cm.yaml", namespace="team")
    assert loaded[0].obj.metadata.namespace == "team"
    with pytest.raises(ManifestError) as info:
        load_text(DEPLOYMENT, "d.yaml", namespace="team")
    assert "the namespace from the provided object 'shop' does not match the namespace " \
           "'team'" in str(info.value)
    ns = load_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "n", namespace="t")
    assert ns[0].obj.metadata.namespace == ""


def test_parse_documents_rejects_duplicate_json_keys() -> None:
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        parse_documents('{"a": 1, "a": 2}')
    with pytest.raises(ManifestError) as info:
        load_text('{"kind": "Pod", "kind": "Pod"}', "p.json")
    assert _errors(info.value) == ["p.json: invalid JSON: duplicate key 'kind'"]


def test_no_manifest_and_empty_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest given"):
        load_manifests([])
    with pytest.raises(ManifestError, match=r"no \.yaml, \.yml or \.json files found"):
        load_manifests([str(tmp_path)])


def test_a_realistic_kubernetes_manifest_loads_unchanged() -> None:
    text = textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: api
          labels: {app: api}
        spec:
          replicas: 2
          selector:
            matchLabels: {app: api}
          template:
            metadata:
              labels: {app: api}
            spec:
              containers:
              - name: api
                image: localhost/busybox:1.36
                args: ["sh", "-c", "httpd -f -p 8080 -h /www"]
                ports:
                - containerPort: 8080
                  name: http
                env:
                - name: MODE
                  value: production
                - name: NODE
                  valueFrom:
                    fieldRef:
                      fieldPath: spec.nodeName
                envFrom:
                - configMapRef:
                    name: api-config
                resources:
                  requests: {cpu: 500m, memory: 128Mi}
                  limits: {cpu: "1", memory: 256Mi}
                volumeMounts:
                - name: www
                  mountPath: /www
                readinessProbe:
                  httpGet: {path: /, port: 8080}
                  initialDelaySeconds: 5
                  periodSeconds: 5
                livenessProbe:
                  exec:
                    command: ["sh", "-c", "test -d /www"]
              volumes:
              - name: www
                emptyDir: {}
              nodeSelector:
                disktype: ssd
              tolerations:
              - key: dedicated
                operator: Equal
                value: api
                effect: NoSchedule
              affinity:
                nodeAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                    nodeSelectorTerms:
                    - matchExpressions:
                      - {key: zone, operator: In, values: [a, b]}
                  preferredDuringSchedulingIgnoredDuringExecution:
                  - weight: 10
                    preference:
                      matchExpressions:
                      - {key: disk, operator: Exists}
        """)
    deployment = load_text(text, "api.yaml")[0].obj
    container = deployment.spec.template.spec.containers[0]
    assert container.resources.requests["cpu"] == "500m"
    assert container.image_pull_policy == "IfNotPresent"
    affinity = deployment.spec.template.spec.affinity.node_affinity
    assert affinity.preferred_during_scheduling_ignored_during_execution[0].weight == 10


def test_duplicates_inside_a_list_name_the_items() -> None:
    item = '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}'
    text = f'{{"apiVersion": "v1", "kind": "List", "items": [{item}, {item}]}}'
    with pytest.raises(ManifestError) as info:
        load_text(text, "l.json")
    assert _errors(info.value) == [
        "l.json[0]: items[1].metadata.name: Namespace 'a' is also defined in l.json[0] items[0]"
    ]
    assert len(load_text(text, "l.json", check=False)) == 2


def _json_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
    keys = st.sampled_from(["metadata", "name", "spec", "containers", "ports", "containerPort",
                            "selector", "matchLabels", "template", "labels", "data", "port",
                            "targetPort", "rules", "http", "paths", "path", "x"])
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(keys, inner, max_size=4)),
        max_leaves=20,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([(k.api_version, k.kind) for k in registry.all_kinds()]),
    st.dictionaries(st.sampled_from(["metadata", "spec", "data", "subsets", "status", "x"]),
                    _json_values(), max_size=4),
)
def test_arbitrary_documents_either_load_or_raise_manifest_error(kind, body) -> None:
    document = {"apiVersion": kind[0], "kind": kind[1], **body}
    try:
        loaded = load_text(json.dumps(document), "fuzz.json")
    except ManifestError as exc:
        assert exc.problems and all(p.source == "fuzz.json" for p in exc.problems)
    else:
        assert len(loaded) == 1
