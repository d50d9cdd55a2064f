"""Validation per kind, as a pure function: `validate(obj) -> list[FieldError]`.

Run it on defaulted objects (manifests.load_* does: decode -> apply_defaults -> validate).
An empty list means valid. Each error names the field path and the reason, with
Kubernetes' rules: DNS-1123 names, label syntax, selectors that match the pod template,
ports in range, quantities, probes, unique names, mounts of declared volumes, NodePort
range, Ingress paths, ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType

from google.protobuf.message import Message

from raftkube.api.v1 import (
    apps_pb2,
    coordination_pb2,
    core_pb2,
    meta_pb2,
    networking_pb2,
    pod_pb2,
    storage_pb2,
)
from raftkube.objects import registry
from raftkube.objects.codec import int_or_string_value
from raftkube.objects.errors import FieldError
from raftkube.objects.names import (
    cidr_problems,
    config_key_problems,
    dns1035_label_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    ip_problems,
    ipv4_problems,
    port_name_problems,
    qualified_name_problems,
    valid_port,
)
from raftkube.objects.pod_validation import (
    PROTOCOLS,
    TAINT_EFFECTS,
    label_map_errors,
    node_selector_errors,
    one_of,
    pod_spec_errors,
    port_or_name_errors,
    quantity_errors,
    required,
    resources_errors,
)
from raftkube.objects.selectors import SelectorError, selector_from_proto

NODE_PORT_RANGE = (30000, 32767)
MAX_DATA_BYTES = 1024 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PATH_TYPES = ("Prefix", "Exact", "ImplementationSpecific")


def validate(obj: Message) -> list[FieldError]:
    """Every problem in `obj` (any registered kind); empty when valid. Pure."""
    info = registry.for_message(obj)
    errors: list[FieldError] = []
    if obj.api_version != info.api_version:
        errors.append(FieldError("apiVersion", f"must be {info.api_version!r} for {info.kind}"))
    if obj.kind != info.kind:
        errors.append(FieldError("kind", f"must be {info.kind!r}"))
    errors += metadata_errors(obj.metadata, info)
    errors += _BY_TYPE.get(type(obj), _no_errors)(obj)
    return errors


def _no_errors(_obj: Message) -> list[FieldError]:
    return []


# Kinds whose names must be DNS labels rather than subdomains (they become DNS names).
_LABEL_NAMED = {"Namespace": dns1123_label_problems, "Service": dns1035_label_problems}


def metadata_errors(meta: meta_pb2.ObjectMeta, info: registry.KindInfo) -> list[FieldError]:
    """Name (or generateName), namespace, labels and annotations of a top-level object."""
    errors: list[FieldError] = []
    name_check = _LABEL_NAMED.get(info.kind, dns1123_subdomain_problems)
    if meta.name:
        errors += [FieldError("metadata.name", p) for p in name_check(meta.name)]
    elif not meta.generate_name:
        errors.append(FieldError("metadata.name", "name or generateName is required"))
    if meta.namespace:
        if not info.namespaced:
            errors.append(FieldError("metadata.namespace",
                                     f"not allowed: {info.kind} is not namespaced"))
        else:
            errors += [FieldError("metadata.namespace", p)
                       for p in dns1123_label_problems(meta.namespace)]
    elif info.namespaced:
        errors.append(FieldError("metadata.namespace", "required value"))
    errors += _labels_and_annotations(meta, "metadata")
    controllers = 0
    for i, ref in enumerate(meta.owner_references):
        p = f"metadata.ownerReferences[{i}]"
        for value, json_name in ((ref.api_version, "apiVersion"), (ref.kind, "kind"),
                                 (ref.name, "name"), (ref.uid, "uid")):
            required(errors, f"{p}.{json_name}", value)
        controllers += ref.controller
    if controllers > 1:
        errors.append(FieldError("metadata.ownerReferences",
                                 "only one reference can have controller set to true"))
    for i, finalizer in enumerate(meta.finalizers):
        errors += [FieldError(f"metadata.finalizers[{i}]", p)
                   for p in qualified_name_problems(finalizer)]
    if meta.HasField("deletion_grace_period_seconds") and meta.deletion_grace_period_seconds < 0:
        errors.append(FieldError("metadata.deletionGracePeriodSeconds",
                                 "must be greater than or equal to 0"))
    return errors


def _labels_and_annotations(meta: meta_pb2.ObjectMeta, path: str) -> list[FieldError]:
    errors = label_map_errors(meta.labels, f"{path}.labels")
    size = 0
    for key in sorted(meta.annotations):
        errors += [FieldError(f"{path}.annotations[{key}]", p)
                   for p in qualified_name_problems(key)]
        size += len(key) + len(meta.annotations[key].encode("utf-8"))
    if size > MAX_ANNOTATION_BYTES:
        errors.append(FieldError(f"{path}.annotations",
                                 f"may not be larger than {MAX_ANNOTATION_BYTES} bytes"))
    return errors


def _non_negative(errors: list[FieldError], path: str, value: int) -> None:
    if value < 0:
        errors.append(FieldError(path, "must be greater than or equal to 0"))


# ---- workloads -----------------------------------------------------------------------


def _selector_and_template_errors(
    selector: meta_pb2.LabelSelector,
    has_selector: bool,
    template: pod_pb2.PodTemplateSpec,
    path: str,
    extra_volume_names: tuple[str, ...] = (),
) -> list[FieldError]:
    errors: list[FieldError] = []
    if not has_selector or (not selector.match_labels and not selector.match_expressions):
        errors.append(FieldError(f"{path}.selector", "required value: a non-empty label selector"))
    else:
        errors += label_map_errors(selector.match_labels, f"{path}.selector.matchLabels")
        for i, expr in enumerate(selector.match_expressions):
            p = f"{path}.selector.matchExpressions[{i}]"
            if required(errors, f"{p}.key", expr.key):
                errors += [FieldError(f"{p}.key", m) for m in qualified_name_problems(expr.key)]
        try:
            parsed = selector_from_proto(selector)
        except SelectorError as exc:
            errors.append(FieldError(f"{path}.selector", str(exc)))
        else:
            if not parsed.matches(template.metadata.labels):
                errors.append(FieldError(
                    f"{path}.template.metadata.labels",
                    f"`selector` does not match template `labels` (selector: {parsed})",
                ))
    errors += _labels_and_annotations(template.metadata, f"{path}.template.metadata")
    errors += pod_spec_errors(template.spec, f"{path}.template.spec", extra_volume_names)
    return errors


def _always_restart(errors: list[FieldError], spec: pod_pb2.PodSpec, path: str) -> None:
    if spec.restart_policy and spec.restart_policy != "Always":
        errors.append(FieldError(f"{path}.template.spec.restartPolicy",
                                 f"unsupported value {spec.restart_policy!r}: only 'Always' "
                                 "is allowed for a controller's pods"))


def percent_or_count_errors(value: meta_pb2.IntOrString, path: str) -> list[FieldError]:
    """A non-negative integer or a percentage string "0%".."100%"."""
    plain = int_or_string_value(value)
    if isinstance(plain, int):
        return [] if plain >= 0 else [FieldError(path, "must be greater than or equal to 0")]
    digits = plain[:-1]
    if not plain.endswith("%") or not digits.isdigit():
        return [FieldError(path, f"{plain!r} must be an integer or a percentage (e.g. '25%')")]
    if int(digits) > 100:
        return [FieldError(path, f"{plain!r} must not be greater than 100%")]
    return []


def _is_zero(value: meta_pb2.IntOrString) -> bool:
    plain = int_or_string_value(value)
    return plain in (0, "0%")


def _deployment_errors(deployment: apps_pb2.Deployment) -> list[FieldError]:
    spec = deployment.spec
    errors: list[FieldError] = []
    _non_negative(errors, "spec.replicas", spec.replicas)
    errors += _selector_and_template_errors(spec.selector, spec.HasField("selector"),
                                            spec.template, "spec")
    _always_restart(errors, spec.template.spec, "spec")
    one_of(errors, "spec.strategy.type", spec.strategy.type, ("RollingUpdate", "Recreate"))
    rolling = spec.strategy.rolling_update
    if spec.strategy.type == "Recreate" and spec.strategy.HasField("rolling_update"):
        errors.append(FieldError("spec.strategy.rollingUpdate",
                                 "may not be specified when strategy type is 'Recreate'"))
    elif spec.strategy.type == "RollingUpdate":
        p = "spec.strategy.rollingUpdate"
        errors += percent_or_count_errors(rolling.max_surge, f"{p}.maxSurge")
        errors += percent_or_count_errors(rolling.max_unavailable, f"{p}.maxUnavailable")
        if _is_zero(rolling.max_surge) and _is_zero(rolling.max_unavailable):
            errors.append(FieldError(f"{p}.maxUnavailable", "may not be 0 when maxSurge is 0"))
    _non_negative(errors, "spec.minReadySeconds", spec.min_ready_seconds)
    _non_negative(errors, "spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.HasField("progress_deadline_seconds") and \
            spec.progress_deadline_seconds <= spec.min_ready_seconds:
        errors.append(FieldError("spec.progressDeadlineSeconds",
                                 "must be greater than minReadySeconds"))
    return errors


def _replica_set_errors(replica_set: apps_pb2.ReplicaSet) -> list[FieldError]:
    spec = replica_set.spec
    errors: list[FieldError] = []
    _non_negative(errors, "spec.replicas", spec.replicas)
    _non_negative(errors, "spec.minReadySeconds", spec.min_ready_seconds)
    errors += _selector_and_template_errors(spec.selector, spec.HasField("selector"),
                                            spec.template, "spec")
    _always_restart(errors, spec.template.spec, "spec")
    return errors


def _stateful_set_errors(stateful_set: apps_pb2.StatefulSet) -> list[FieldError]:
    spec = stateful_set.spec
    errors: list[FieldError] = []
    _non_negative(errors, "spec.replicas", spec.replicas)
    _non_negative(errors, "spec.minReadySeconds", spec.min_ready_seconds)
    _non_negative(errors, "spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.service_name:
        errors += [FieldError("spec.serviceName", p)
                   for p in dns1035_label_problems(spec.service_name)]
    one_of(errors, "spec.podManagementPolicy", spec.pod_management_policy,
           ("OrderedReady", "Parallel"))
    strategy = spec.update_strategy
    one_of(errors, "spec.updateStrategy.type", strategy.type, ("RollingUpdate", "OnDelete"))
    if strategy.type == "OnDelete" and strategy.HasField("rolling_update"):
        errors.append(FieldError("spec.updateStrategy.rollingUpdate",
                                 "may not be specified when type is 'OnDelete'"))
    if strategy.HasField("rolling_update"):
        _non_negative(errors, "spec.updateStrategy.rollingUpdate.partition",
                      strategy.rolling_update.partition)
        if strategy.rolling_update.HasField("max_unavailable"):
            p = "spec.updateStrategy.rollingUpdate.maxUnavailable"
            errors += percent_or_count_errors(strategy.rolling_update.max_unavailable, p)
            if _is_zero(strategy.rolling_update.max_unavailable):
                errors.append(FieldError(p, "must be greater than 0"))
    policy = spec.persistent_volume_claim_retention_policy
    one_of(errors, "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", policy.when_deleted,
           ("Retain", "Delete"))
    one_of(errors, "spec.persistentVolumeClaimRetentionPolicy.whenScaled", policy.when_scaled,
           ("Retain", "Delete"))
    claim_names: list[str] = []
    for i, template in enumerate(spec.volume_claim_templates):
        p = f"spec.volumeClaimTemplates[{i}]"
        name = template.metadata.name
        if required(errors, f"{p}.metadata.name", name):
            errors += [FieldError(f"{p}.metadata.name", m) for m in dns1123_label_problems(name)]
            if name in claim_names:
                errors.append(FieldError(f"{p}.metadata.name", f"duplicate claim name {name!r}"))
        claim_names.append(name)
        errors += _labels_and_annotations(template.metadata, f"{p}.metadata")
        errors += _pvc_spec_errors(template.spec, f"{p}.spec")
    template_volumes = {v.name for v in spec.template.spec.volumes}
    for i, name in enumerate(claim_names):
        if name and name in template_volumes:
            errors.append(FieldError(f"spec.volumeClaimTemplates[{i}].metadata.name",
                                     f"{name!r} clashes with a volume of the pod template"))
    errors += _selector_and_template_errors(spec.selector, spec.HasField("selector"),
                                            spec.template, "spec", tuple(claim_names))
    _always_restart(errors, spec.template.spec, "spec")
    return errors


# ---- core ----------------------------------------------------------------------------


def _pod_errors(pod: pod_pb2.Pod) -> list[FieldError]:
    return list(_pod_spec_errors_of(pod.spec.SerializeToString(deterministic=True)))


@functools.lru_cache(maxsize=256)
def _pod_spec_errors_of(serialized_spec: bytes) -> tuple[FieldError, ...]:
    """pod_spec_errors of one serialized PodSpec, remembered: a ReplicaSet's pods share
    their template's spec, so a wave of 100 pods is checked once (the checks are pure
    and FieldErrors are immutable)."""
    return tuple(pod_spec_errors(pod_pb2.PodSpec.FromString(serialized_spec), "spec"))


def _service_errors(service: core_pb2.Service) -> list[FieldError]:
    spec = service.spec
    errors: list[FieldError] = []
    if spec.type == "ExternalName":
        errors.append(FieldError("spec.type", "ExternalName services are not supported"))
    else:
        one_of(errors, "spec.type", spec.type, SERVICE_TYPES)
    headless = spec.cluster_ip == "None"
    if spec.cluster_ip and not headless:
        errors += [FieldError("spec.clusterIP", p) for p in ipv4_problems(spec.cluster_ip)]
    if headless and spec.type != "ClusterIP":
        errors.append(FieldError("spec.clusterIP", f"may not be 'None' for a {spec.type} service"))
    for i, ip in enumerate(spec.cluster_ips):
        if ip != "None":
            errors += [FieldError(f"spec.clusterIPs[{i}]", p) for p in ipv4_problems(ip)]
    if spec.cluster_ips and spec.cluster_ip and spec.cluster_ips[0] != spec.cluster_ip:
        errors.append(FieldError("spec.clusterIPs[0]", "must match spec.clusterIP"))
    for i, ip in enumerate(spec.external_ips):
        errors += [FieldError(f"spec.externalIPs[{i}]", p) for p in ip_problems(ip)]
    if not spec.ports and not headless:
        errors.append(FieldError("spec.ports", "required value"))
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        p = f"spec.ports[{i}]"
        if len(spec.ports) > 1 and not port.name:
            errors.append(FieldError(f"{p}.name", "required when the service has more than one "
                                     "port"))
        if port.name:
            errors += [FieldError(f"{p}.name", m) for m in dns1123_label_problems(port.name)]
            if port.name in names:
                errors.append(FieldError(f"{p}.name", f"duplicate port name {port.name!r}"))
            names.add(port.name)
        if not valid_port(port.port):
            errors.append(FieldError(f"{p}.port", f"{port.port} is not a valid port"))
        one_of(errors, f"{p}.protocol", port.protocol, PROTOCOLS)
        key = (port.port, port.protocol)
        if key in seen:
            errors.append(FieldError(f"{p}.port", f"duplicate port {port.port}/{port.protocol}"))
        seen.add(key)
        if port.HasField("target_port"):
            errors += port_or_name_errors(port.target_port, f"{p}.targetPort")
        if port.node_port:
            if spec.type not in ("NodePort", "LoadBalancer"):
                errors.append(FieldError(f"{p}.nodePort", f"may not be used when type is "
                                         f"{spec.type!r}"))
            low, high = NODE_PORT_RANGE
            if not low <= port.node_port <= high:
                errors.append(FieldError(f"{p}.nodePort", f"{port.node_port} is not in the "
                                         f"valid range {low}-{high}"))
            node_key = (port.node_port, port.protocol)
            if node_key in node_ports:
                errors.append(FieldError(f"{p}.nodePort", f"duplicate nodePort {port.node_port}"))
            node_ports.add(node_key)
    errors += label_map_errors(spec.selector, "spec.selector")
    one_of(errors, "spec.sessionAffinity", spec.session_affinity, ("None", "ClientIP"))
    if spec.HasField("session_affinity_config"):
        if spec.session_affinity != "ClientIP":
            errors.append(FieldError("spec.sessionAffinityConfig",
                                     "may only be set when sessionAffinity is ClientIP"))
        timeout = spec.session_affinity_config.client_ip.timeout_seconds
        if spec.session_affinity_config.client_ip.HasField("timeout_seconds") and \
                not 1 <= timeout <= 86400:
            errors.append(FieldError("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                     "must be in the range 1-86400"))
    if spec.external_traffic_policy:
        if spec.type not in ("NodePort", "LoadBalancer"):
            errors.append(FieldError("spec.externalTrafficPolicy",
                                     "may only be set for NodePort and LoadBalancer services"))
        one_of(errors, "spec.externalTrafficPolicy", spec.external_traffic_policy,
               ("Cluster", "Local"))
    return errors


def _endpoints_errors(endpoints: core_pb2.Endpoints) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, subset in enumerate(endpoints.subsets):
        p = f"subsets[{i}]"
        for field, json_name in (("addresses", "addresses"),
                                 ("not_ready_addresses", "notReadyAddresses")):
            for j, address in enumerate(getattr(subset, field)):
                errors += [FieldError(f"{p}.{json_name}[{j}].ip", m)
                           for m in ip_problems(address.ip)]
                if address.hostname:
                    errors += [FieldError(f"{p}.{json_name}[{j}].hostname", m)
                               for m in dns1123_label_problems(address.hostname)]
        for j, port in enumerate(subset.ports):
            if not valid_port(port.port):
                errors.append(FieldError(f"{p}.ports[{j}].port",
                                         f"{port.port} is not a valid port"))
            if port.protocol:
                one_of(errors, f"{p}.ports[{j}].protocol", port.protocol, PROTOCOLS)
            if port.name:
                errors += [FieldError(f"{p}.ports[{j}].name", m)
                           for m in dns1123_label_problems(port.name)]
    return errors


def _data_errors(maps: list[tuple[str, Mapping[str, object]]]) -> list[FieldError]:
    errors: list[FieldError] = []
    owner: dict[str, str] = {}
    size = 0
    for json_name, values in maps:
        for key in sorted(values):
            errors += [FieldError(f"{json_name}[{key}]", p) for p in config_key_problems(key)]
            if key in owner:
                errors.append(FieldError(f"{json_name}[{key}]",
                                         f"duplicate of key {key!r} in {owner[key]}"))
            owner[key] = json_name
            value = values[key]
            size += len(value) if isinstance(value, bytes) else len(str(value).encode("utf-8"))
    if size > MAX_DATA_BYTES:
        errors.append(FieldError("data", f"total size of data must be at most {MAX_DATA_BYTES} "
                                 "bytes"))
    return errors


def _config_map_errors(config_map: core_pb2.ConfigMap) -> list[FieldError]:
    return _data_errors([("data", config_map.data), ("binaryData", config_map.binary_data)])


def _secret_errors(secret: core_pb2.Secret) -> list[FieldError]:
    errors = _data_errors([("data", secret.data)])
    errors += [FieldError(f"stringData[{key}]", p)
               for key in sorted(secret.string_data) for p in config_key_problems(key)]
    keys = set(secret.data) | set(secret.string_data)
    if secret.type == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in keys:
                errors.append(FieldError(f"data[{key}]", "required for a kubernetes.io/tls secret"))
    return errors


def _namespace_errors(namespace: core_pb2.Namespace) -> list[FieldError]:
    errors: list[FieldError] = []
    if namespace.status.phase:
        one_of(errors, "status.phase", namespace.status.phase, ("Active", "Terminating"))
    return errors


def _node_errors(node: core_pb2.Node) -> list[FieldError]:
    errors: list[FieldError] = []
    if node.spec.pod_cidr:
        errors += [FieldError("spec.podCIDR", p) for p in cidr_problems(node.spec.pod_cidr)]
    for i, cidr in enumerate(node.spec.pod_cidrs):
        errors += [FieldError(f"spec.podCIDRs[{i}]", p) for p in cidr_problems(cidr)]
    for i, taint in enumerate(node.spec.taints):
        p = f"spec.taints[{i}]"
        if required(errors, f"{p}.key", taint.key):
            errors += [FieldError(f"{p}.key", m) for m in qualified_name_problems(taint.key)]
        one_of(errors, f"{p}.effect", taint.effect, TAINT_EFFECTS)
    for field, json_name in (("capacity", "capacity"), ("allocatable", "allocatable")):
        values = getattr(node.status, field)
        for name in sorted(values):
            errors += quantity_errors(values[name], f"status.{json_name}[{name}]")
    for i, address in enumerate(node.status.addresses):
        one_of(errors, f"status.addresses[{i}].type", address.type,
               ("InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"))
    return errors


def _access_modes_errors(modes: list[str], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    required(errors, path, modes)
    for i, mode in enumerate(modes):
        one_of(errors, f"{path}[{i}]", mode, ACCESS_MODES)
    return errors


def _pvc_spec_errors(spec: storage_pb2.PersistentVolumeClaimSpec, path: str) -> list[FieldError]:
    errors = _access_modes_errors(list(spec.access_modes), f"{path}.accessModes")
    if "storage" not in spec.resources.requests:
        errors.append(FieldError(f"{path}.resources.requests[storage]", "required value"))
    errors += resources_errors(
        pod_pb2.ResourceRequirements(limits=spec.resources.limits,
                                     requests=spec.resources.requests),
        f"{path}.resources", ("storage",),
    )
    if spec.volume_mode:
        one_of(errors, f"{path}.volumeMode", spec.volume_mode, ("Filesystem", "Block"))
    if spec.HasField("storage_class_name") and spec.storage_class_name:
        errors += [FieldError(f"{path}.storageClassName", p)
                   for p in dns1123_subdomain_problems(spec.storage_class_name)]
    if spec.HasField("selector"):
        try:
            selector_from_proto(spec.selector)
        except SelectorError as exc:
            errors.append(FieldError(f"{path}.selector", str(exc)))
    return errors


def _pvc_errors(claim: storage_pb2.PersistentVolumeClaim) -> list[FieldError]:
    return _pvc_spec_errors(claim.spec, "spec")


def _pv_errors(volume: storage_pb2.PersistentVolume) -> list[FieldError]:
    spec = volume.spec
    errors = _access_modes_errors(list(spec.access_modes), "spec.accessModes")
    if "storage" not in spec.capacity:
        errors.append(FieldError("spec.capacity[storage]", "required value"))
    for name in sorted(spec.capacity):
        if name != "storage":
            errors.append(FieldError(f"spec.capacity[{name}]", "unsupported resource name: "
                                     "must be storage"))
        else:
            errors += quantity_errors(spec.capacity[name], f"spec.capacity[{name}]")
    sources = [s for s in ("host_path", "local") if spec.HasField(s)]
    if len(sources) != 1:
        errors.append(FieldError("spec", "must specify exactly one volume source: hostPath or "
                                 f"local (found {len(sources)})"))
    for field, json_name in (("host_path", "hostPath"), ("local", "local")):
        if spec.HasField(field):
            path = getattr(spec, field).path
            if required(errors, f"spec.{json_name}.path", path) and not path.startswith("/"):
                errors.append(FieldError(f"spec.{json_name}.path", "must be an absolute path"))
    if spec.HasField("local") and not spec.node_affinity.HasField("required"):
        errors.append(FieldError("spec.nodeAffinity.required",
                                 "required for a local volume (which node holds it)"))
    if spec.node_affinity.HasField("required"):
        errors += node_selector_errors(spec.node_affinity.required, "spec.nodeAffinity.required")
    one_of(errors, "spec.persistentVolumeReclaimPolicy", spec.persistent_volume_reclaim_policy,
           ("Retain", "Delete", "Recycle"))
    if spec.volume_mode:
        one_of(errors, "spec.volumeMode", spec.volume_mode, ("Filesystem", "Block"))
    if spec.storage_class_name:
        errors += [FieldError("spec.storageClassName", p)
                   for p in dns1123_subdomain_problems(spec.storage_class_name)]
    return errors


def _host_problems(host: str) -> list[str]:
    if host.startswith("*."):
        return dns1123_subdomain_problems(host[2:])
    if not ipv4_problems(host):
        return [f"{host!r} must be a DNS name, not an IP address"]
    return dns1123_subdomain_problems(host)


def _ingress_backend_errors(backend: networking_pb2.IngressBackend, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not backend.HasField("service"):
        errors.append(FieldError(f"{path}.service", "required value"))
        return errors
    service = backend.service
    if required(errors, f"{path}.service.name", service.name):
        errors += [FieldError(f"{path}.service.name", p)
                   for p in dns1035_label_problems(service.name)]
    port = service.port
    if bool(port.name) == bool(port.number):
        errors.append(FieldError(f"{path}.service.port",
                                 "must specify exactly one of name and number"))
    elif port.name:
        errors += [FieldError(f"{path}.service.port.name", p)
                   for p in port_name_problems(port.name)]
    elif not valid_port(port.number):
        errors.append(FieldError(f"{path}.service.port.number", f"{port.number} is not a valid "
                                 "port"))
    return errors


def _ingress_errors(ingress: networking_pb2.Ingress) -> list[FieldError]:
    spec = ingress.spec
    errors: list[FieldError] = []
    if spec.HasField("ingress_class_name"):
        errors += [FieldError("spec.ingressClassName", p)
                   for p in dns1123_subdomain_problems(spec.ingress_class_name)]
    if not spec.rules and not spec.HasField("default_backend"):
        errors.append(FieldError("spec", "either defaultBackend or rules must be specified"))
    if spec.HasField("default_backend"):
        errors += _ingress_backend_errors(spec.default_backend, "spec.defaultBackend")
    for i, rule in enumerate(spec.rules):
        p = f"spec.rules[{i}]"
        if rule.host:
            errors += [FieldError(f"{p}.host", m) for m in _host_problems(rule.host)]
        if not rule.HasField("http") or not rule.http.paths:
            errors.append(FieldError(f"{p}.http.paths", "required value"))
            continue
        for j, item in enumerate(rule.http.paths):
            q = f"{p}.http.paths[{j}]"
            if not item.path_type:
                errors.append(FieldError(f"{q}.pathType", "required value: one of "
                                         f"{', '.join(PATH_TYPES)}"))
            else:
                one_of(errors, f"{q}.pathType", item.path_type, PATH_TYPES)
            if not item.path.startswith("/"):
                errors.append(FieldError(f"{q}.path", f"{item.path!r} must be an absolute path "
                                         "(start with '/')"))
            elif item.path_type in ("Prefix", "Exact") and ("//" in item.path or any(
                    seg in (".", "..") for seg in item.path.split("/"))):
                errors.append(FieldError(f"{q}.path", f"{item.path!r} must not contain '//', "
                                         "'/./' or '/../'"))
            errors += _ingress_backend_errors(item.backend, f"{q}.backend")
    return errors


def _event_errors(event: core_pb2.Event) -> list[FieldError]:
    errors: list[FieldError] = []
    required(errors, "involvedObject.kind", event.involved_object.kind)
    required(errors, "involvedObject.name", event.involved_object.name)
    one_of(errors, "type", event.type, ("Normal", "Warning"))
    if event.count < 0:
        errors.append(FieldError("count", "must be greater than or equal to 0"))
    return errors


def _lease_errors(lease: coordination_pb2.Lease) -> list[FieldError]:
    errors: list[FieldError] = []
    _non_negative(errors, "spec.leaseDurationSeconds", lease.spec.lease_duration_seconds)
    _non_negative(errors, "spec.leaseTransitions", lease.spec.lease_transitions)
    return errors


_BY_TYPE: Mapping[type[Message], Callable[[Message], list[FieldError]]] = MappingProxyType({
    pod_pb2.Pod: _pod_errors,
    apps_pb2.Deployment: _deployment_errors,
    apps_pb2.ReplicaSet: _replica_set_errors,
    apps_pb2.StatefulSet: _stateful_set_errors,
    core_pb2.Namespace: _namespace_errors,
    core_pb2.Node: _node_errors,
    core_pb2.Service: _service_errors,
    core_pb2.Endpoints: _endpoints_errors,
    core_pb2.ConfigMap: _config_map_errors,
    core_pb2.Secret: _secret_errors,
    core_pb2.Event: _event_errors,
    storage_pb2.PersistentVolume: _pv_errors,
    storage_pb2.PersistentVolumeClaim: _pvc_errors,
    networking_pb2.Ingress: _ingress_errors,
    coordination_pb2.Lease: _lease_errors,
})
