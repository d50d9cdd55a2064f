"""Validation rejects bad manifests with the exact field path and reason, and accepts good ones.

Each case starts from a valid manifest of its kind, breaks one thing, and asserts the
complete list of errors (so a case also proves nothing else is reported by accident).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from raftkube.objects.errors import ManifestError
from raftkube.objects.manifests import load_text


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "localhost/busybox:latest",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                                      "limits": {"cpu": "1", "memory": "64Mi"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                            "nodePort": 30080}]},
    }


def stateful_set() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db", "replicas": 3,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{
                "name": "db", "image": "localhost/busybox:latest",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    }


def ingress() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [{
            "path": "/api", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }


def persistent_volume() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/srv/pv1"}},
    }


def secret() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "YQ=="}, "stringData": {"b": "plain"}}


def _container(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["template"]["spec"]["containers"][0]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets a dotted path (list indices as numbers)."""
    def mutate(d: dict[str, Any]) -> None:
        parts = path.split(".")
        target: Any = d
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        parts = path.split(".")
        target: Any = d
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[parts[-1]]
    return mutate


C = "spec.template.spec.containers.0"
CP = "spec.template.spec.containers[0]"

Mutation = Callable[[dict[str, Any]], None]
CASES: list[tuple[str, Callable[[], dict[str, Any]], Mutation, list[str]]] = [
    ("port out of range", deployment, _set(f"{C}.ports.0.containerPort", 70000),
     [f"{CP}.ports[0].containerPort: 70000 is not a valid port"]),
    ("bad name", deployment, _set("metadata.name", "Web_1"),
     ["metadata.name: 'Web_1' is not a valid DNS-1123 subdomain: lowercase letters, digits, "
      "'-' and '.', starting and ending with a letter or digit"]),
    ("selector mismatch", deployment, _set("spec.template.metadata.labels", {"app": "api"}),
     ["spec.template.metadata.labels: `selector` does not match template `labels` "
      "(selector: app=web)"]),
    ("no selector", deployment, _delete("spec.selector"),
     ["spec.selector: required value: a non-empty label selector"]),
    ("bad label value", deployment, _set("metadata.labels", {"app": "-web"}),
     ["metadata.labels[app]: '-web' is not a valid label value: alphanumerics, '-', '_' or "
      "'.', starting and ending with an alphanumeric"]),
    ("bad quantity", deployment, _set(f"{C}.resources.requests.cpu", "half"),
     [f"{CP}.resources.requests[cpu]: 'half' is not a valid quantity (expected a number with "
      "an optional suffix such as 500m, 2, 1.5Gi, 128Mi, 1e3)"]),
    ("request above limit", deployment, _set(f"{C}.resources.requests.memory", "128Mi"),
     [f"{CP}.resources.requests[memory]: '128Mi' must be less than or equal to memory limit "
      "'64Mi'"]),
    ("unknown resource", deployment, _set(f"{C}.resources.limits.gpu", "1"),
     [f"{CP}.resources.limits[gpu]: unsupported resource name: must be one of cpu, memory, "
      "ephemeral-storage"]),
    ("mount of undeclared volume", deployment,
     _set(f"{C}.volumeMounts.0.name", "cache"),
     [f"{CP}.volumeMounts[0].name: volume 'cache' is not declared in spec.volumes"]),
    ("relative mount path", deployment, _set(f"{C}.volumeMounts.0.mountPath", "data"),
     [f"{CP}.volumeMounts[0].mountPath: 'data' must be an absolute path"]),
    ("duplicate container names", deployment,
     lambda d: d["spec"]["template"]["spec"]["containers"].append(
         {"name": "web", "image": "localhost/busybox:latest"}),
     ["spec.template.spec.containers[1].name: duplicate container name 'web'"]),
    ("duplicate port names", deployment,
     lambda d: _container(d)["ports"].append({"name": "http", "containerPort": 9090}),
     [f"{CP}.ports[1].name: duplicate port name 'http'"]),
    ("bad port name", deployment, _set(f"{C}.ports.0.name", "http_port"),
     [f"{CP}.ports[0].name: 'http_port' is not a valid port name: lowercase letters, digits "
      "and '-', starting and ending with a letter or digit"]),
    ("probe with two handlers", deployment,
     _set(f"{C}.readinessProbe.tcpSocket", {"port": 8080}),
     [f"{CP}.readinessProbe: must specify exactly one handler: exec, httpGet or tcpSocket "
      "(found 2)"]),
    ("probe period 0", deployment, _set(f"{C}.readinessProbe.periodSeconds", 0),
     [f"{CP}.readinessProbe.periodSeconds: must be greater than or equal to 1"]),
    ("probe port out of range", deployment, _set(f"{C}.readinessProbe.httpGet.port", 0),
     [f"{CP}.readinessProbe.httpGet.port: 0 is not a valid port"]),
    ("liveness success threshold", deployment,
     _set(f"{C}.livenessProbe", {"exec": {"command": ["true"]}, "successThreshold": 2}),
     [f"{CP}.livenessProbe.successThreshold: must be 1 for a livenessProbe"]),
    ("env value and valueFrom", deployment,
     _set(f"{C}.env", [{"name": "A", "value": "x",
                        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]),
     [f"{CP}.env[0].valueFrom: may not be specified when value is not empty"]),
    ("env bad field ref", deployment,
     _set(f"{C}.env", [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}}]),
     [f"{CP}.env[0].valueFrom.fieldRef.fieldPath: unsupported value 'spec.foo': must be one "
      "of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, "
      "spec.serviceAccountName, status.hostIP, status.podIP, status.podIPs, status.hostIPs, "
      "metadata.labels['KEY'], metadata.annotations['KEY']"]),
    ("env bad name", deployment, _set(f"{C}.env", [{"name": "1A", "value": "x"}]),
     [f"{CP}.env[0].name: '1A' is not a valid environment variable name: letters, digits, "
      "'_', '-' or '.', not starting with a digit"]),
    ("missing image", deployment, _delete(f"{C}.image"),
     [f"{CP}.image: required value"]),
    ("bad restart policy", deployment, _set("spec.template.spec.restartPolicy", "Never"),
     ["spec.template.spec.restartPolicy: unsupported value 'Never': only 'Always' is allowed "
      "for a controller's pods"]),
    ("negative replicas", deployment, _set("spec.replicas", -1),
     ["spec.replicas: must be greater than or equal to 0"]),
    ("surge and unavailable zero", deployment,
     _set("spec.strategy", {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
     ["spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0"]),
    ("bad percentage", deployment,
     _set("spec.strategy", {"rollingUpdate": {"maxSurge": "150%"}}),
     ["spec.strategy.rollingUpdate.maxSurge: '150%' must not be greater than 100%"]),
    ("recreate with rollingUpdate", deployment,
     _set("spec.strategy", {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     ["spec.strategy.rollingUpdate: may not be specified when strategy type is 'Recreate'"]),
    ("unknown field", deployment, _set(f"{C}.securityContext", {"privileged": True}),
     [f"{CP}.securityContext: unknown field"]),
    ("wrong type and invalid value together", deployment,
     lambda d: (_set("spec.replicas", "3")(d),
                _set(f"{C}.ports.0.containerPort", 70000)(d)),
     ["spec.replicas: must be an integer, got string '3'",
      f"{CP}.ports[0].containerPort: 70000 is not a valid port"]),
    ("volume with two sources", deployment,
     _set("spec.template.spec.volumes.0.hostPath", {"path": "/tmp"}),
     ["spec.template.spec.volumes[0]: must specify exactly one volume source: emptyDir, "
      "hostPath, configMap, secret or persistentVolumeClaim (found 2)"]),
    ("bad toleration", deployment,
     _set("spec.template.spec.tolerations", [{"key": "k", "operator": "Exists", "value": "v"}]),
     ["spec.template.spec.tolerations[0].value: must be empty when operator is Exists"]),
    ("bad affinity operator", deployment,
     _set("spec.template.spec.affinity", {"nodeAffinity": {
         "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
             {"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}}),
     ["spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
      ".nodeSelectorTerms[0].matchExpressions[0].values: must be specified when operator is "
      "In"]),
    ("node port out of range", service, _set("spec.ports.0.nodePort", 8080),
     ["spec.ports[0].nodePort: 8080 is not in the valid range 30000-32767"]),
    ("node port on ClusterIP", service, _set("spec.type", "ClusterIP"),
     ["spec.ports[0].nodePort: may not be used when type is 'ClusterIP'"]),
    ("service port 0", service, _set("spec.ports.0.port", 0),
     ["spec.ports[0].port: 0 is not a valid port"]),
    ("target port name invalid", service, _set("spec.ports.0.targetPort", "HTTP"),
     ["spec.ports[0].targetPort: 'HTTP' is not a valid port name: lowercase letters, digits "
      "and '-', starting and ending with a letter or digit"]),
    ("unnamed second port", service,
     lambda d: d["spec"]["ports"].append({"port": 443}),
     ["spec.ports[1].name: required when the service has more than one port"]),
    ("service name not a DNS-1035 label", service, _set("metadata.name", "1web"),
     ["metadata.name: '1web' is not a valid DNS-1035 label: lowercase letters, digits and '-', "
      "starting with a letter and ending with a letter or digit"]),
    ("headless NodePort", service, _set("spec.clusterIP", "None"),
     ["spec.clusterIP: may not be 'None' for a NodePort service"]),
    ("ExternalName", service, _set("spec.type", "ExternalName"),
     ["spec.type: ExternalName services are not supported",
      "spec.ports[0].nodePort: may not be used when type is 'ExternalName'"]),
    ("no ports", service, _set("spec.ports", []), ["spec.ports: required value"]),
    ("bad protocol", service, _set("spec.ports.0.protocol", "HTTP"),
     ["spec.ports[0].protocol: unsupported value 'HTTP': must be one of TCP, UDP, SCTP"]),
    ("ingress relative path", ingress,
     _set("spec.rules.0.http.paths.0.path", "api"),
     ["spec.rules[0].http.paths[0].path: 'api' must be an absolute path (start with '/')"]),
    ("ingress missing pathType", ingress, _delete("spec.rules.0.http.paths.0.pathType"),
     ["spec.rules[0].http.paths[0].pathType: required value: one of Prefix, Exact, "
      "ImplementationSpecific"]),
    ("ingress port name and number", ingress,
     _set("spec.rules.0.http.paths.0.backend.service.port", {"number": 80, "name": "http"}),
     ["spec.rules[0].http.paths[0].backend.service.port: must specify exactly one of name and "
      "number"]),
    ("ingress IP host", ingress, _set("spec.rules.0.host", "10.0.0.1"),
     ["spec.rules[0].host: '10.0.0.1' must be a DNS name, not an IP address"]),
    ("ingress empty", ingress, _set("spec", {}),
     ["spec: either defaultBackend or rules must be specified"]),
    ("statefulset mount of unknown claim", stateful_set,
     _set("spec.volumeClaimTemplates.0.metadata.name", "store"),
     ["spec.template.spec.containers[0].volumeMounts[0].name: volume 'data' is not declared in "
      "spec.volumes"]),
    ("statefulset claim without storage", stateful_set,
     _set("spec.volumeClaimTemplates.0.spec.resources", {}),
     ["spec.volumeClaimTemplates[0].spec.resources.requests[storage]: required value"]),
    ("statefulset bad policy", stateful_set, _set("spec.podManagementPolicy", "Random"),
     ["spec.podManagementPolicy: unsupported value 'Random': must be one of OrderedReady, "
      "Parallel"]),
    ("statefulset negative partition", stateful_set,
     _set("spec.updateStrategy", {"rollingUpdate": {"partition": -1}}),
     ["spec.updateStrategy.rollingUpdate.partition: must be greater than or equal to 0"]),
    ("pv without source", persistent_volume, _delete("spec.hostPath"),
     ["spec: must specify exactly one volume source: hostPath or local (found 0)"]),
    ("pv local without node affinity", persistent_volume,
     lambda d: (d["spec"].pop("hostPath"), d["spec"].update(local={"path": "/mnt/disk"})),
     ["spec.nodeAffinity.required: required for a local volume (which node holds it)"]),
    ("pv bad access mode", persistent_volume, _set("spec.accessModes", ["RWO"]),
     ["spec.accessModes[0]: unsupported value 'RWO': must be one of ReadWriteOnce, "
      "ReadOnlyMany, ReadWriteMany, ReadWriteOncePod"]),
    ("pv bad capacity", persistent_volume, _set("spec.capacity.storage", "lots"),
     ["spec.capacity[storage]: 'lots' is not a valid quantity (expected a number with an "
      "optional suffix such as 500m, 2, 1.5Gi, 128Mi, 1e3)"]),
    ("owner reference without uid", secret,
     _set("metadata.ownerReferences", [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]),
     ["metadata.ownerReferences[0].uid: required value"]),
    ("two controllers", secret,
     _set("metadata.ownerReferences", [
         {"apiVersion": "v1", "kind": "Pod", "name": n, "uid": n, "controller": True}
         for n in ("a", "b")]),
     ["metadata.ownerReferences: only one reference can have controller set to true"]),
    ("secret bad base64", secret, _set("data.a", "%%%"), ["data[a]: is not valid base64 data"]),
    ("secret bad key", secret, _set("stringData", {"a/b": "x"}),
     ["stringData[a/b]: 'a/b' is not a valid key: alphanumerics, '-', '_' or '.'"]),
]


@pytest.mark.parametrize(("case", "make", "mutate", "errors"), CASES, ids=[c[0] for c in CASES])
def test_bad_manifests_are_rejected_with_path_and_reason(case, make, mutate, errors) -> None:
    document = make()
    load_text(json.dumps(document), "web.yaml")  # the unbroken manifest is valid
    broken = copy.deepcopy(document)
    mutate(broken)
    with pytest.raises(ManifestError) as info:
        load_text(json.dumps(broken), "web.yaml")
    assert [str(p) for p in info.value.problems] == [f"web.yaml[0]: {e}" for e in errors]


@pytest.mark.parametrize("make", [deployment, service, stateful_set, ingress,
                                  persistent_volume, secret])
def test_valid_manifests_load(make) -> None:
    assert len(load_text(json.dumps(make()), "ok.yaml")) == 1


def test_headless_service_needs_no_ports_and_cluster_scoped_kinds_take_no_namespace() -> None:
    headless = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                "spec": {"clusterIP": "None", "selector": {"app": "db"}}}
    assert load_text(json.dumps(headless), "h.yaml")[0].obj.spec.cluster_ip == "None"
    pv = persistent_volume()
    pv["metadata"]["namespace"] = "ignored"
    assert load_text(json.dumps(pv), "pv.yaml")[0].obj.metadata.namespace == ""


def test_pods_sharing_a_spec_are_each_judged_by_their_own_spec() -> None:
    """Pod spec checks are remembered per spec content: a second pod with the same spec
    gets the same answer, one spec field changed gets its own, and the caller's list is
    its own (changing it changes nothing remembered)."""
    from raftkube.api.v1 import pod_pb2
    from raftkube.objects.validation import validate

    def pod(name: str, port: int) -> pod_pb2.Pod:
        p = pod_pb2.Pod(api_version="v1", kind="Pod")
        p.metadata.name, p.metadata.namespace = name, "default"
        c = p.spec.containers.add(name="web", image="localhost/busybox:latest")
        c.ports.add(container_port=port)
        return p

    assert validate(pod("a", 80)) == [] and validate(pod("b", 80)) == []
    first = validate(pod("c", 70000))
    assert [e.path for e in first] == ["spec.containers[0].ports[0].containerPort"]
    first.clear()
    assert [e.path for e in validate(pod("d", 70000))] == [
        "spec.containers[0].ports[0].containerPort"]
    assert validate(pod("e", 80)) == []
