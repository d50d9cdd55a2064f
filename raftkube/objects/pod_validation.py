"""Validation of PodSpec and everything in it (containers, probes, volumes, scheduling).

`pod_spec_errors(spec, path, extra_volume_names)` returns every FieldError; pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from raftkube.api.v1 import meta_pb2, pod_pb2
from raftkube.objects.codec import int_or_string_value
from raftkube.objects.errors import FieldError
from raftkube.objects.names import (
    config_key_problems,
    dns1123_label_problems,
    dns1123_subdomain_problems,
    env_var_name_problems,
    label_value_problems,
    port_name_problems,
    qualified_name_problems,
    valid_port,
)
from raftkube.objects.quantity import QuantityError, parse_quantity

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
HOST_PATH_TYPES = (
    "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
    "BlockDevice",
)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
DOWNWARD_FIELDS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
    "spec.serviceAccountName", "status.hostIP", "status.podIP", "status.podIPs",
    "status.hostIPs",
)
RESOURCE_FIELDS = (
    "limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu",
    "requests.memory", "requests.ephemeral-storage",
)


def _add(errors: list[FieldError], path: str, problems: Iterable[str]) -> None:
    errors.extend(FieldError(path, p) for p in problems)


def required(errors: list[FieldError], path: str, value: object) -> bool:
    """Record "required value" when `value` is empty; True when it is present."""
    if value:
        return True
    errors.append(FieldError(path, "required value"))
    return False


def one_of(errors: list[FieldError], path: str, value: str, allowed: Iterable[str]) -> None:
    """Record an error unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        choices = ", ".join(repr(a) if a == "" else a for a in allowed)
        errors.append(FieldError(path, f"unsupported value {value!r}: must be one of {choices}"))


def label_map_errors(labels: Mapping[str, str], path: str) -> list[FieldError]:
    """Every key a qualified name, every value a valid label value."""
    errors: list[FieldError] = []
    for key in sorted(labels):
        _add(errors, f"{path}[{key}]", qualified_name_problems(key))
        _add(errors, f"{path}[{key}]", label_value_problems(labels[key]))
    return errors


def quantity_errors(value: str, path: str, *, allow_negative: bool = False) -> list[FieldError]:
    """A valid quantity string, not negative unless allowed."""
    try:
        quantity = parse_quantity(value)
    except QuantityError as exc:
        return [FieldError(path, str(exc))]
    if quantity.value < 0 and not allow_negative:
        return [FieldError(path, f"{value!r} must be greater than or equal to 0")]
    return []


def port_or_name_errors(value: meta_pb2.IntOrString, path: str) -> list[FieldError]:
    """A port number 1..65535 or an IANA port name."""
    plain = int_or_string_value(value)
    if isinstance(plain, int):
        return [] if valid_port(plain) else [FieldError(path, f"{plain} is not a valid port")]
    return [FieldError(path, p) for p in port_name_problems(plain)]


def _resource_map_errors(
    values: Mapping[str, str], path: str, allowed: Iterable[str]
) -> list[FieldError]:
    allowed = tuple(allowed)
    errors: list[FieldError] = []
    for name in sorted(values):
        if name not in allowed:
            errors.append(
                FieldError(f"{path}[{name}]", f"unsupported resource name: must be one of "
                           f"{', '.join(allowed)}")
            )
        else:
            errors.extend(quantity_errors(values[name], f"{path}[{name}]"))
    return errors


def resources_errors(
    resources: pod_pb2.ResourceRequirements, path: str, allowed: Iterable[str]
) -> list[FieldError]:
    """Known resource names, valid quantities, each request <= its limit."""
    allowed = tuple(allowed)
    errors = _resource_map_errors(resources.limits, f"{path}.limits", allowed)
    errors += _resource_map_errors(resources.requests, f"{path}.requests", allowed)
    if errors:
        return errors
    for name, request in resources.requests.items():
        limit = resources.limits.get(name)
        if limit is not None and parse_quantity(limit) < parse_quantity(request):
            errors.append(
                FieldError(f"{path}.requests[{name}]",
                           f"{request!r} must be less than or equal to {name} limit {limit!r}")
            )
    return errors


def _probe_errors(probe: pod_pb2.Probe, path: str, kind: str) -> list[FieldError]:
    errors: list[FieldError] = []
    handlers = [h for h in ("exec", "http_get", "tcp_socket") if probe.HasField(h)]
    if len(handlers) != 1:
        errors.append(FieldError(path, "must specify exactly one handler: exec, httpGet or "
                                 f"tcpSocket (found {len(handlers)})"))
    if probe.HasField("exec") and not probe.exec.command:
        errors.append(FieldError(f"{path}.exec.command", "required value"))
    if probe.HasField("http_get"):
        get = probe.http_get
        if not get.HasField("port"):
            errors.append(FieldError(f"{path}.httpGet.port", "required value"))
        else:
            errors += port_or_name_errors(get.port, f"{path}.httpGet.port")
        if get.path and not get.path.startswith("/"):
            errors.append(FieldError(f"{path}.httpGet.path", f"{get.path!r} must start with '/'"))
        if get.scheme:
            one_of(errors, f"{path}.httpGet.scheme", get.scheme, ("HTTP", "HTTPS"))
    if probe.HasField("tcp_socket"):
        if not probe.tcp_socket.HasField("port"):
            errors.append(FieldError(f"{path}.tcpSocket.port", "required value"))
        else:
            errors += port_or_name_errors(probe.tcp_socket.port, f"{path}.tcpSocket.port")
    if probe.initial_delay_seconds < 0:
        errors.append(FieldError(f"{path}.initialDelaySeconds",
                                 "must be greater than or equal to 0"))
    for field, json_name in (
        ("timeout_seconds", "timeoutSeconds"), ("period_seconds", "periodSeconds"),
        ("success_threshold", "successThreshold"), ("failure_threshold", "failureThreshold"),
    ):
        if probe.HasField(field) and getattr(probe, field) < 1:
            errors.append(FieldError(f"{path}.{json_name}", "must be greater than or equal to 1"))
    if kind in ("livenessProbe", "startupProbe") and probe.HasField("success_threshold") \
            and probe.success_threshold != 1:
        errors.append(FieldError(f"{path}.successThreshold", f"must be 1 for a {kind}"))
    return errors


def _env_errors(env: pod_pb2.EnvVar, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if required(errors, f"{path}.name", env.name):
        _add(errors, f"{path}.name", env_var_name_problems(env.name))
    if not env.HasField("value_from"):
        return errors
    if env.value:
        errors.append(FieldError(f"{path}.valueFrom",
                                 "may not be specified when value is not empty"))
    source = env.value_from
    kinds = ("config_map_key_ref", "secret_key_ref", "field_ref", "resource_field_ref")
    sources = [s for s in kinds if source.HasField(s)]
    if len(sources) != 1:
        errors.append(FieldError(f"{path}.valueFrom", "must specify exactly one of "
                                 "configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef"))
    for name, json_name in (("config_map_key_ref", "configMapKeyRef"),
                            ("secret_key_ref", "secretKeyRef")):
        if source.HasField(name):
            ref = getattr(source, name)
            ref_path = f"{path}.valueFrom.{json_name}"
            required(errors, f"{ref_path}.name", ref.name)
            if required(errors, f"{ref_path}.key", ref.key):
                _add(errors, f"{ref_path}.key", config_key_problems(ref.key))
    if source.HasField("field_ref"):
        field_path = source.field_ref.field_path
        ref_path = f"{path}.valueFrom.fieldRef.fieldPath"
        if required(errors, ref_path, field_path) and field_path not in DOWNWARD_FIELDS \
                and not field_path.startswith(("metadata.labels['", "metadata.annotations['")):
            errors.append(FieldError(ref_path, f"unsupported value {field_path!r}: must be one "
                                     f"of {', '.join(DOWNWARD_FIELDS)}, metadata.labels['KEY'], "
                                     "metadata.annotations['KEY']"))
        if source.field_ref.api_version not in ("", "v1"):
            errors.append(FieldError(f"{path}.valueFrom.fieldRef.apiVersion", "must be v1"))
    if source.HasField("resource_field_ref"):
        ref = source.resource_field_ref
        one_of(errors, f"{path}.valueFrom.resourceFieldRef.resource", ref.resource, RESOURCE_FIELDS)
        if ref.divisor:
            errors += quantity_errors(ref.divisor, f"{path}.valueFrom.resourceFieldRef.divisor")
    return errors


def _env_from_errors(source: pod_pb2.EnvFromSource, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    refs = [r for r in ("config_map_ref", "secret_ref") if source.HasField(r)]
    if len(refs) != 1:
        errors.append(FieldError(path, "must specify exactly one of configMapRef, secretRef"))
    if source.HasField("config_map_ref"):
        required(errors, f"{path}.configMapRef.name", source.config_map_ref.name)
    if source.HasField("secret_ref"):
        required(errors, f"{path}.secretRef.name", source.secret_ref.name)
    if source.prefix:
        _add(errors, f"{path}.prefix", env_var_name_problems(source.prefix))
    return errors


def _container_errors(
    container: pod_pb2.Container, path: str, volume_names: set[str], init: bool
) -> list[FieldError]:
    errors: list[FieldError] = []
    if required(errors, f"{path}.name", container.name):
        _add(errors, f"{path}.name", dns1123_label_problems(container.name))
    required(errors, f"{path}.image", container.image.strip())
    if container.image_pull_policy:
        one_of(errors, f"{path}.imagePullPolicy", container.image_pull_policy, PULL_POLICIES)
    port_names: set[str] = set()
    seen_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(container.ports):
        p = f"{path}.ports[{i}]"
        if not valid_port(port.container_port):
            errors.append(FieldError(f"{p}.containerPort",
                                     f"{port.container_port} is not a valid port"))
        if port.host_port and not valid_port(port.host_port):
            errors.append(FieldError(f"{p}.hostPort", f"{port.host_port} is not a valid port"))
        if port.protocol:
            one_of(errors, f"{p}.protocol", port.protocol, PROTOCOLS)
        if port.name:
            _add(errors, f"{p}.name", port_name_problems(port.name))
            if port.name in port_names:
                errors.append(FieldError(f"{p}.name", f"duplicate port name {port.name!r}"))
            port_names.add(port.name)
        key = (port.container_port, port.protocol or "TCP")
        if key in seen_ports:
            errors.append(FieldError(f"{p}.containerPort",
                                     f"duplicate port {port.container_port}/{key[1]}"))
        seen_ports.add(key)
    for i, env in enumerate(container.env):
        errors += _env_errors(env, f"{path}.env[{i}]")
    for i, source in enumerate(container.env_from):
        errors += _env_from_errors(source, f"{path}.envFrom[{i}]")
    errors += resources_errors(container.resources, f"{path}.resources", CONTAINER_RESOURCES)
    mount_paths: set[str] = set()
    for i, mount in enumerate(container.volume_mounts):
        p = f"{path}.volumeMounts[{i}]"
        if required(errors, f"{p}.name", mount.name) and mount.name not in volume_names:
            errors.append(FieldError(f"{p}.name", f"volume {mount.name!r} is not declared in "
                                     "spec.volumes"))
        if required(errors, f"{p}.mountPath", mount.mount_path):
            if not mount.mount_path.startswith("/"):
                errors.append(FieldError(f"{p}.mountPath", f"{mount.mount_path!r} must be an "
                                         "absolute path"))
            if mount.mount_path in mount_paths:
                errors.append(FieldError(f"{p}.mountPath", f"duplicate mount path "
                                         f"{mount.mount_path!r}"))
            mount_paths.add(mount.mount_path)
        if mount.sub_path and (mount.sub_path.startswith("/") or ".." in mount.sub_path.split("/")):
            errors.append(FieldError(f"{p}.subPath", "must be a relative path without '..'"))
    for name, json_name in (("liveness_probe", "livenessProbe"),
                            ("readiness_probe", "readinessProbe"),
                            ("startup_probe", "startupProbe")):
        if container.HasField(name):
            if init:
                errors.append(FieldError(f"{path}.{json_name}", "init containers may not have "
                                         "probes"))
            else:
                errors += _probe_errors(getattr(container, name), f"{path}.{json_name}", json_name)
    return errors


def _key_to_path_errors(items: Iterable[pod_pb2.KeyToPath], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        p = f"{path}.items[{i}]"
        if required(errors, f"{p}.key", item.key):
            _add(errors, f"{p}.key", config_key_problems(item.key))
        if required(errors, f"{p}.path", item.path) and (
            item.path.startswith("/") or ".." in item.path.split("/")
        ):
            errors.append(FieldError(f"{p}.path", "must be a relative path without '..'"))
        if item.HasField("mode") and not 0 <= item.mode <= 0o777:
            errors.append(FieldError(f"{p}.mode", "must be a number between 0 and 0777 (octal)"))
    return errors


def _volume_errors(volume: pod_pb2.Volume, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if required(errors, f"{path}.name", volume.name):
        _add(errors, f"{path}.name", dns1123_label_problems(volume.name))
    sources = [s for s in ("empty_dir", "host_path", "config_map", "secret",
                           "persistent_volume_claim") if volume.HasField(s)]
    if len(sources) != 1:
        errors.append(FieldError(path, "must specify exactly one volume source: emptyDir, "
                                 "hostPath, configMap, secret or persistentVolumeClaim "
                                 f"(found {len(sources)})"))
    if volume.HasField("empty_dir"):
        one_of(errors, f"{path}.emptyDir.medium", volume.empty_dir.medium, ("", "Memory"))
        if volume.empty_dir.size_limit:
            errors += quantity_errors(volume.empty_dir.size_limit, f"{path}.emptyDir.sizeLimit")
    if volume.HasField("host_path"):
        if required(errors, f"{path}.hostPath.path", volume.host_path.path) and \
                not volume.host_path.path.startswith("/"):
            errors.append(FieldError(f"{path}.hostPath.path", "must be an absolute path"))
        one_of(errors, f"{path}.hostPath.type", volume.host_path.type, HOST_PATH_TYPES)
    for name, json_name, ref in (("config_map", "configMap", "name"),
                                 ("secret", "secret", "secret_name")):
        if volume.HasField(name):
            source = getattr(volume, name)
            ref_json = "name" if ref == "name" else "secretName"
            required(errors, f"{path}.{json_name}.{ref_json}", getattr(source, ref))
            errors += _key_to_path_errors(source.items, f"{path}.{json_name}")
            if source.HasField("default_mode") and not 0 <= source.default_mode <= 0o777:
                errors.append(FieldError(f"{path}.{json_name}.defaultMode",
                                         "must be a number between 0 and 0777 (octal)"))
    if volume.HasField("persistent_volume_claim"):
        required(errors, f"{path}.persistentVolumeClaim.claimName",
                 volume.persistent_volume_claim.claim_name)
    return errors


def node_selector_term_errors(term: pod_pb2.NodeSelectorTerm, path: str) -> list[FieldError]:
    """Operators known; In/NotIn need values, Exists/DoesNotExist none, Gt/Lt one integer."""
    errors: list[FieldError] = []
    for field, json_name in (("match_expressions", "matchExpressions"),
                             ("match_fields", "matchFields")):
        for i, req in enumerate(getattr(term, field)):
            p = f"{path}.{json_name}[{i}]"
            if required(errors, f"{p}.key", req.key):
                _add(errors, f"{p}.key", qualified_name_problems(req.key))
            one_of(errors, f"{p}.operator", req.operator, NODE_SELECTOR_OPERATORS)
            if req.operator in ("In", "NotIn") and not req.values:
                errors.append(FieldError(f"{p}.values", f"must be specified when operator is "
                                         f"{req.operator}"))
            if req.operator in ("Exists", "DoesNotExist") and req.values:
                errors.append(FieldError(f"{p}.values", f"may not be specified when operator "
                                         f"is {req.operator}"))
            if req.operator in ("Gt", "Lt") and (
                len(req.values) != 1 or not req.values[0].lstrip("-").isdigit()
            ):
                errors.append(FieldError(f"{p}.values", f"must be a single integer when "
                                         f"operator is {req.operator}"))
    return errors


def node_selector_errors(selector: pod_pb2.NodeSelector, path: str) -> list[FieldError]:
    """At least one term, each valid."""
    errors: list[FieldError] = []
    required(errors, f"{path}.nodeSelectorTerms", list(selector.node_selector_terms))
    for i, term in enumerate(selector.node_selector_terms):
        errors += node_selector_term_errors(term, f"{path}.nodeSelectorTerms[{i}]")
    return errors


def _affinity_errors(affinity: pod_pb2.Affinity, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    node = affinity.node_affinity
    p = f"{path}.nodeAffinity"
    if node.HasField("required_during_scheduling_ignored_during_execution"):
        errors += node_selector_errors(
            node.required_during_scheduling_ignored_during_execution,
            f"{p}.requiredDuringSchedulingIgnoredDuringExecution",
        )
    for i, pref in enumerate(node.preferred_during_scheduling_ignored_during_execution):
        q = f"{p}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        if not 1 <= pref.weight <= 100:
            errors.append(FieldError(f"{q}.weight", "must be in the range 1-100"))
        errors += node_selector_term_errors(pref.preference, f"{q}.preference")
    return errors


def _toleration_errors(toleration: pod_pb2.Toleration, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if toleration.key:
        _add(errors, f"{path}.key", qualified_name_problems(toleration.key))
    one_of(errors, f"{path}.operator", toleration.operator, ("", "Equal", "Exists"))
    if toleration.operator == "Exists" and toleration.value:
        errors.append(FieldError(f"{path}.value", "must be empty when operator is Exists"))
    if not toleration.key and toleration.operator != "Exists":
        errors.append(FieldError(f"{path}.operator", "must be Exists when key is empty"))
    one_of(errors, f"{path}.effect", toleration.effect, ("", *TAINT_EFFECTS))
    if toleration.HasField("toleration_seconds") and toleration.effect != "NoExecute":
        errors.append(FieldError(f"{path}.tolerationSeconds",
                                 "may only be specified when effect is NoExecute"))
    return errors


def pod_spec_errors(
    spec: pod_pb2.PodSpec, path: str, extra_volume_names: Iterable[str] = ()
) -> list[FieldError]:
    """Every problem in a PodSpec, paths prefixed with `path`.

    `extra_volume_names` are volumes provided from outside the spec (a StatefulSet's
    volumeClaimTemplates) that volumeMounts may refer to.
    """
    errors: list[FieldError] = []
    volume_names: set[str] = set()
    for i, volume in enumerate(spec.volumes):
        errors += _volume_errors(volume, f"{path}.volumes[{i}]")
        if volume.name in volume_names:
            errors.append(FieldError(f"{path}.volumes[{i}].name",
                                     f"duplicate volume name {volume.name!r}"))
        volume_names.add(volume.name)
    volume_names.update(extra_volume_names)
    required(errors, f"{path}.containers", list(spec.containers))
    container_names: set[str] = set()
    for field, json_name, init in (("init_containers", "initContainers", True),
                                   ("containers", "containers", False)):
        for i, container in enumerate(getattr(spec, field)):
            p = f"{path}.{json_name}[{i}]"
            errors += _container_errors(container, p, volume_names, init)
            if container.name and container.name in container_names:
                errors.append(FieldError(f"{p}.name", f"duplicate container name "
                                         f"{container.name!r}"))
            container_names.add(container.name)
    if spec.restart_policy:
        one_of(errors, f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
    if spec.dns_policy:
        one_of(errors, f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES)
    if spec.HasField("termination_grace_period_seconds") and \
            spec.termination_grace_period_seconds < 0:
        errors.append(FieldError(f"{path}.terminationGracePeriodSeconds",
                                 "must be greater than or equal to 0"))
    if spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds < 1:
        errors.append(FieldError(f"{path}.activeDeadlineSeconds", "must be greater than 0"))
    errors += label_map_errors(spec.node_selector, f"{path}.nodeSelector")
    if spec.node_name:
        _add(errors, f"{path}.nodeName", dns1123_subdomain_problems(spec.node_name))
    if spec.hostname:
        _add(errors, f"{path}.hostname", dns1123_label_problems(spec.hostname))
    if spec.subdomain:
        _add(errors, f"{path}.subdomain", dns1123_label_problems(spec.subdomain))
    if spec.HasField("affinity"):
        errors += _affinity_errors(spec.affinity, f"{path}.affinity")
    for i, toleration in enumerate(spec.tolerations):
        errors += _toleration_errors(toleration, f"{path}.tolerations[{i}]")
    return errors
