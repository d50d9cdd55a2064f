"""Defaulting fills in what Kubernetes fills in, only where unset, and is idempotent."""

from __future__ import annotations

import json

from raftkube.api.v1 import apps_pb2, core_pb2, pod_pb2
from raftkube.objects.codec import encode, int_or_string_value
from raftkube.objects.defaulting import apply_defaults, image_pull_policy_for
from raftkube.objects.manifests import load_text


def _load(document: dict) -> object:
    return load_text(json.dumps(document), "x.yaml", default=False, check=False)[0].obj


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{
                "name": "web", "image": "localhost/busybox:latest",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "readinessProbe": {"httpGet": {"port": 80}},
            }],
            "volumes": [{"name": "c", "configMap": {"name": "c"}},
                        {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400}}],
            "tolerations": [{"key": "k", "value": "v"}],
        }},
    },
}


def test_deployment_defaults_match_kubernetes() -> None:
    original = _load(DEPLOYMENT)
    deployment = apply_defaults(original)
    assert original.metadata.namespace == ""  # the input is not changed
    spec = deployment.spec
    assert deployment.metadata.namespace == "default"
    assert spec.replicas == 1
    assert spec.strategy.type == "RollingUpdate"
    assert int_or_string_value(spec.strategy.rolling_update.max_surge) == "25%"
    assert int_or_string_value(spec.strategy.rolling_update.max_unavailable) == "25%"
    assert spec.revision_history_limit == 10
    assert spec.progress_deadline_seconds == 600
    pod = spec.template.spec
    assert pod.restart_policy == "Always"
    assert pod.termination_grace_period_seconds == 30
    assert pod.dns_policy == "ClusterFirst"
    assert pod.tolerations[0].operator == "Equal"
    container = pod.containers[0]
    assert container.image_pull_policy == "Always"
    assert container.ports[0].protocol == "TCP"
    assert container.env[0].value_from.field_ref.api_version == "v1"
    probe = container.readiness_probe
    assert (probe.timeout_seconds, probe.period_seconds, probe.success_threshold,
            probe.failure_threshold) == (1, 10, 1, 3)
    assert (probe.http_get.path, probe.http_get.scheme) == ("/", "HTTP")
    assert pod.volumes[0].config_map.default_mode == 0o644
    assert pod.volumes[1].secret.default_mode == 0o400


def test_values_the_user_set_are_kept_even_when_zero() -> None:
    document = json.loads(json.dumps(DEPLOYMENT))
    document["spec"].update(replicas=0, revisionHistoryLimit=0,
                            strategy={"type": "Recreate"})
    document["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 0
    spec = apply_defaults(_load(document)).spec
    assert spec.replicas == 0 and spec.HasField("replicas")
    assert spec.revision_history_limit == 0
    assert spec.strategy.type == "Recreate" and not spec.strategy.HasField("rolling_update")
    assert spec.template.spec.termination_grace_period_seconds == 0


def test_defaulting_is_idempotent() -> None:
    once = apply_defaults(_load(DEPLOYMENT))
    assert apply_defaults(once) == once


def test_service_defaults() -> None:
    service = apply_defaults(_load({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "sessionAffinity": "ClientIP",
                 "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]},
    }))
    assert isinstance(service, core_pb2.Service)
    spec = service.spec
    assert [int_or_string_value(p.target_port) for p in spec.ports] == [80, "dns"]
    assert [p.protocol for p in spec.ports] == ["TCP", "UDP"]
    assert spec.external_traffic_policy == "Cluster"
    assert spec.session_affinity_config.client_ip.timeout_seconds == 10800
    assert apply_defaults(_load({"apiVersion": "v1", "kind": "Service",
                                 "metadata": {"name": "x"}})).spec.type == "ClusterIP"


def test_secret_string_data_is_merged_into_data() -> None:
    secret = apply_defaults(_load({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"a": "YQ==", "b": "Yg=="}, "stringData": {"b": "B", "c": "C"},
    }))
    assert dict(secret.data) == {"a": b"a", "b": b"B", "c": b"C"}
    assert not secret.string_data
    assert secret.type == "Opaque"


def test_stateful_set_and_storage_defaults() -> None:
    sts = apply_defaults(apps_pb2.StatefulSet(api_version="apps/v1", kind="StatefulSet"))
    spec = sts.spec
    assert (spec.replicas, spec.pod_management_policy, spec.update_strategy.type,
            spec.update_strategy.rolling_update.partition, spec.revision_history_limit) == \
        (1, "OrderedReady", "RollingUpdate", 0, 10)
    assert spec.update_strategy.rolling_update.HasField("partition")
    policy = spec.persistent_volume_claim_retention_policy
    assert (policy.when_deleted, policy.when_scaled) == ("Retain", "Retain")
    pv = apply_defaults(_load({"apiVersion": "v1", "kind": "PersistentVolume",
                               "metadata": {"name": "p", "namespace": "x"}}))
    assert pv.spec.persistent_volume_reclaim_policy == "Retain"
    assert pv.metadata.namespace == ""


def test_image_pull_policy_rule() -> None:
    assert image_pull_policy_for("busybox") == "Always"
    assert image_pull_policy_for("localhost/busybox:latest") == "Always"
    assert image_pull_policy_for("localhost/busybox:1.36") == "IfNotPresent"
    assert image_pull_policy_for("registry:5000/busybox") == "Always"
    assert image_pull_policy_for("busybox@sha256:abc") == "IfNotPresent"


def test_api_version_and_kind_are_filled_for_bare_messages() -> None:
    pod = apply_defaults(pod_pb2.Pod())
    assert encode(pod)["apiVersion"] == "v1" and pod.kind == "Pod"
