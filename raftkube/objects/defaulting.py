"""Kubernetes defaulting, per kind, as a pure function: `apply_defaults(obj) -> copy`.

Only fields the user left unset are filled in, with Kubernetes' values (namespace
"default", replicas 1, RollingUpdate 25%/25%, restartPolicy Always, protocol TCP,
targetPort = port, terminationGracePeriodSeconds 30, probe timings 1/10/1/3, ...).
Idempotent: defaulting a defaulted object changes nothing. Server-assigned fields (uid,
resourceVersion, clusterIP, nodePort, timestamps) are not defaults and are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from google.protobuf.message import Message

from raftkube.api.v1 import (
    apps_pb2,
    core_pb2,
    pod_pb2,
    storage_pb2,
)
from raftkube.objects import registry
from raftkube.objects.codec import int_or_string
from raftkube.objects.names import config_key_problems

DEFAULT_NAMESPACE = "default"
DEFAULT_TERMINATION_GRACE_SECONDS = 30
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_FILE_MODE = 0o644
DEFAULT_SESSION_AFFINITY_TIMEOUT = 10800


def apply_defaults(obj: Message) -> Message:
    """A defaulted copy of `obj` (any registered kind); `obj` itself is not changed."""
    info = registry.for_message(obj)
    out = type(obj)()
    out.CopyFrom(obj)
    if not out.api_version:
        out.api_version = info.api_version
    if not out.kind:
        out.kind = info.kind
    if info.namespaced:
        if not out.metadata.namespace:
            out.metadata.namespace = DEFAULT_NAMESPACE
    else:
        out.metadata.ClearField("namespace")
    _BY_TYPE.get(type(out), _nothing)(out)
    return out


def _nothing(_obj: Message) -> None:
    return None


# ---- pods ----------------------------------------------------------------------------


def image_pull_policy_for(image: str) -> str:
    """Kubernetes' rule: Always for ":latest" or untagged images, else IfNotPresent."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_probe(probe: pod_pb2.Probe) -> None:
    if not probe.HasField("timeout_seconds"):
        probe.timeout_seconds = 1
    if not probe.HasField("period_seconds"):
        probe.period_seconds = 10
    if not probe.HasField("success_threshold"):
        probe.success_threshold = 1
    if not probe.HasField("failure_threshold"):
        probe.failure_threshold = 3
    if probe.HasField("http_get"):
        if not probe.http_get.path:
            probe.http_get.path = "/"
        if not probe.http_get.scheme:
            probe.http_get.scheme = "HTTP"


def _default_container(container: pod_pb2.Container) -> None:
    if not container.image_pull_policy and container.image:
        container.image_pull_policy = image_pull_policy_for(container.image)
    for port in container.ports:
        if not port.protocol:
            port.protocol = "TCP"
    for env in container.env:
        if env.value_from.HasField("field_ref") and not env.value_from.field_ref.api_version:
            env.value_from.field_ref.api_version = "v1"
    for name in ("liveness_probe", "readiness_probe", "startup_probe"):
        if container.HasField(name):
            _default_probe(getattr(container, name))


def default_pod_spec(spec: pod_pb2.PodSpec) -> None:
    """Fill in a PodSpec's defaults in place (used for pods and pod templates)."""
    if not spec.restart_policy:
        spec.restart_policy = "Always"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = DEFAULT_TERMINATION_GRACE_SECONDS
    if not spec.dns_policy:
        spec.dns_policy = "ClusterFirst"
    for container in (*spec.init_containers, *spec.containers):
        _default_container(container)
    for volume in spec.volumes:
        if volume.HasField("config_map") and not volume.config_map.HasField("default_mode"):
            volume.config_map.default_mode = DEFAULT_FILE_MODE
        if volume.HasField("secret") and not volume.secret.HasField("default_mode"):
            volume.secret.default_mode = DEFAULT_FILE_MODE
    for toleration in spec.tolerations:
        if not toleration.operator:
            toleration.operator = "Equal"


def _default_pod(pod: pod_pb2.Pod) -> None:
    default_pod_spec(pod.spec)


# ---- workloads -----------------------------------------------------------------------


def _default_deployment(deployment: apps_pb2.Deployment) -> None:
    spec = deployment.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if not spec.strategy.type:
        spec.strategy.type = "RollingUpdate"
    if spec.strategy.type == "RollingUpdate":
        rolling = spec.strategy.rolling_update
        if not rolling.HasField("max_surge"):
            rolling.max_surge.CopyFrom(int_or_string(DEFAULT_MAX_SURGE))
        if not rolling.HasField("max_unavailable"):
            rolling.max_unavailable.CopyFrom(int_or_string(DEFAULT_MAX_UNAVAILABLE))
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = DEFAULT_REVISION_HISTORY_LIMIT
    if not spec.HasField("progress_deadline_seconds"):
        spec.progress_deadline_seconds = DEFAULT_PROGRESS_DEADLINE_SECONDS
    default_pod_spec(spec.template.spec)


def _default_replica_set(replica_set: apps_pb2.ReplicaSet) -> None:
    if not replica_set.spec.HasField("replicas"):
        replica_set.spec.replicas = 1
    default_pod_spec(replica_set.spec.template.spec)


def _default_pvc_spec(spec: storage_pb2.PersistentVolumeClaimSpec) -> None:
    if not spec.volume_mode:
        spec.volume_mode = "Filesystem"


def _default_stateful_set(stateful_set: apps_pb2.StatefulSet) -> None:
    spec = stateful_set.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if not spec.pod_management_policy:
        spec.pod_management_policy = "OrderedReady"
    if not spec.update_strategy.type:
        spec.update_strategy.type = "RollingUpdate"
    if spec.update_strategy.type == "RollingUpdate":
        rolling = spec.update_strategy.rolling_update
        if not rolling.HasField("partition"):
            rolling.partition = 0
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = DEFAULT_REVISION_HISTORY_LIMIT
    policy = spec.persistent_volume_claim_retention_policy
    if not policy.when_deleted:
        policy.when_deleted = "Retain"
    if not policy.when_scaled:
        policy.when_scaled = "Retain"
    for template in spec.volume_claim_templates:
        _default_pvc_spec(template.spec)
    default_pod_spec(spec.template.spec)


# ---- core ----------------------------------------------------------------------------


def _default_service(service: core_pb2.Service) -> None:
    spec = service.spec
    if not spec.type:
        spec.type = "ClusterIP"
    if not spec.session_affinity:
        spec.session_affinity = "None"
    if spec.session_affinity == "ClientIP":
        client_ip = spec.session_affinity_config.client_ip
        if not client_ip.HasField("timeout_seconds"):
            client_ip.timeout_seconds = DEFAULT_SESSION_AFFINITY_TIMEOUT
    if spec.type in ("NodePort", "LoadBalancer") and not spec.external_traffic_policy:
        spec.external_traffic_policy = "Cluster"
    for port in spec.ports:
        if not port.protocol:
            port.protocol = "TCP"
        if not port.HasField("target_port") or (
            port.target_port.WhichOneof("value") == "int_val" and port.target_port.int_val == 0
        ):
            port.target_port.CopyFrom(int_or_string(port.port))


def _default_secret(secret: core_pb2.Secret) -> None:
    if not secret.type:
        secret.type = "Opaque"
    # Keys that are not valid stay in stringData, so validation names the field the user
    # wrote.
    for key in [k for k in secret.string_data if not config_key_problems(k)]:
        secret.data[key] = secret.string_data.pop(key).encode("utf-8")


def _default_persistent_volume(volume: storage_pb2.PersistentVolume) -> None:
    if not volume.spec.persistent_volume_reclaim_policy:
        volume.spec.persistent_volume_reclaim_policy = "Retain"
    if not volume.spec.volume_mode:
        volume.spec.volume_mode = "Filesystem"


def _default_persistent_volume_claim(claim: storage_pb2.PersistentVolumeClaim) -> None:
    _default_pvc_spec(claim.spec)


def _default_event(event: core_pb2.Event) -> None:
    if not event.type:
        event.type = "Normal"
    if event.count == 0:
        event.count = 1


# Kinds without an entry (Namespace, Node, Endpoints, ConfigMap, Ingress, Lease) have no
# defaults beyond metadata.namespace.
_BY_TYPE: Mapping[type[Message], Callable[[Message], None]] = MappingProxyType({
    pod_pb2.Pod: _default_pod,
    apps_pb2.Deployment: _default_deployment,
    apps_pb2.ReplicaSet: _default_replica_set,
    apps_pb2.StatefulSet: _default_stateful_set,
    core_pb2.Service: _default_service,
    core_pb2.Secret: _default_secret,
    core_pb2.Event: _default_event,
    storage_pb2.PersistentVolume: _default_persistent_volume,
    storage_pb2.PersistentVolumeClaim: _default_persistent_volume_claim,
})
