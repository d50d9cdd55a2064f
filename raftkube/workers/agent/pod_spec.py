"""Pure translation of a Pod into what the runtime takes: PodFacts, PodSandboxSpec and one
ContainerSpec per container (command/args, env with its sources, resources, mounts).

Env sources are read through an `ObjectSource` (the agent's API reads, a dict in tests);
a missing object or key raises ConfigError whose message names it (the container then
waits with reason CreateContainerConfigError).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from raftkube.api.v1 import core_pb2, pod_pb2
from raftkube.objects.quantity import QuantityError, parse_quantity
from raftkube.workers.agent.config import ResolvConfig
from raftkube.workers.agent.decisions import PodFacts, RestartPolicy
from raftkube.workers.runtime.interface import (
    LABEL_FENCE,
    ContainerPort,
    ContainerSpec,
    Mount,
    PodSandboxSpec,
    PortMapping,
)

DEFAULT_GRACE_SECONDS = 30
STATEFULSET = "StatefulSet"


def is_statefulset_pod(pod: pod_pb2.Pod) -> bool:
    """Controlled by a StatefulSet: fenced when the node loses its Lease."""
    return any(ref.controller and ref.kind == STATEFULSET
               for ref in pod.metadata.owner_references)


class ConfigError(Exception):
    """A container's configuration cannot be built (missing ConfigMap/Secret or key, bad
    quantity, unsupported field path); the message names what is missing."""


class ObjectSource(Protocol):
    """Reads the objects a pod references; None when the object does not exist."""

    def configmap(self, namespace: str, name: str) -> core_pb2.ConfigMap | None: ...

    def secret(self, namespace: str, name: str) -> core_pb2.Secret | None: ...


def grace_seconds(pod: pod_pb2.Pod) -> float:
    """The grace period: deletionGracePeriodSeconds when deleting, else the spec's."""
    if pod.metadata.deletion_timestamp and pod.metadata.HasField(
            "deletion_grace_period_seconds"):
        return float(pod.metadata.deletion_grace_period_seconds)
    if pod.spec.HasField("termination_grace_period_seconds"):
        return float(pod.spec.termination_grace_period_seconds)
    return float(DEFAULT_GRACE_SECONDS)


def active_deadline(pod: pod_pb2.Pod, start_time: str) -> float | None:
    """Wall-clock time (epoch seconds) at which activeDeadlineSeconds runs out, or None."""
    if not pod.spec.HasField("active_deadline_seconds") or not start_time:
        return None
    try:
        started = datetime.fromisoformat(start_time.replace("Z", "+00:00"))
    except ValueError:
        return None
    return started.timestamp() + pod.spec.active_deadline_seconds


def pod_facts(pod: pod_pb2.Pod, fenced: bool = False, start_time: str = "",
              now: float | None = None) -> PodFacts:
    """The plan's view of `pod`. `start_time` (RFC 3339) and `now` (epoch seconds) decide
    whether activeDeadlineSeconds has run out. A fenced pod is killed (grace 0): the
    masters replace it a fencing margin after the fence began, whatever its grace."""
    deadline = active_deadline(pod, pod.status.start_time or start_time)
    wall = time.time() if now is None else now
    return PodFacts(
        uid=pod.metadata.uid,
        init_containers=tuple(c.name for c in pod.spec.init_containers),
        containers=tuple(c.name for c in pod.spec.containers),
        restart_policy=RestartPolicy.parse(pod.spec.restart_policy),
        terminating=bool(pod.metadata.deletion_timestamp) or fenced,
        grace_seconds=0.0 if fenced else grace_seconds(pod),
        deadline_exceeded=deadline is not None and wall >= deadline)


def sandbox_spec(pod: pod_pb2.Pod, node: str, network: str,
                 resolv: ResolvConfig) -> PodSandboxSpec:
    ports = []
    for container in pod.spec.containers:
        for port in container.ports:
            if port.host_port:
                ports.append(PortMapping(container_port=port.container_port,
                                         host_port=port.host_port,
                                         protocol=(port.protocol or "TCP").lower(),
                                         host_ip=port.host_ip))
    use_cluster_dns = pod.spec.dns_policy in ("", "ClusterFirst")
    hostname = pod.spec.hostname or pod.metadata.name
    return PodSandboxSpec(
        uid=pod.metadata.uid, namespace=pod.metadata.namespace, name=pod.metadata.name,
        node=node, hostname=hostname[:63], network=network,
        dns_servers=resolv.nameservers if use_cluster_dns else (),
        dns_search=_searches(pod, resolv) if use_cluster_dns else (),
        dns_options=resolv.options if use_cluster_dns else (),
        port_mappings=tuple(ports),
        labels={LABEL_FENCE: "true"} if is_statefulset_pod(pod) else {})


def _searches(pod: pod_pb2.Pod, resolv: ResolvConfig) -> tuple[str, ...]:
    """The pod's namespace search domain first (`<ns>.svc.<domain>`), then the config's."""
    searches = list(resolv.searches)
    for domain in resolv.searches:
        if domain.startswith("svc."):
            searches.insert(0, f"{pod.metadata.namespace}.{domain}")
            break
    return tuple(dict.fromkeys(searches))


def _field_value(pod: pod_pb2.Pod, path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name, "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid, "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": "default", "status.podIP": pod_ip,
        "status.hostIP": host_ip,
    }
    if path in simple:
        return simple[path]
    for prefix, values in (("metadata.labels", meta.labels),
                           ("metadata.annotations", meta.annotations)):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return values.get(path[len(prefix) + 2:-2], "")
    raise ConfigError(f"fieldRef: unsupported fieldPath {path!r}")


def _configmap_value(source: ObjectSource, ns: str, name: str, key: str) -> str | None:
    cm = source.configmap(ns, name)
    if cm is None:
        return None
    if key in cm.data:
        return cm.data[key]
    if key in cm.binary_data:
        return cm.binary_data[key].decode(errors="replace")
    return None


def _resource_field(container: pod_pb2.Container, ref: pod_pb2.ResourceFieldSelector) -> str:
    kind, _, resource = ref.resource.partition(".")
    amounts = container.resources.limits if kind == "limits" else container.resources.requests
    if resource not in ("cpu", "memory") or kind not in ("limits", "requests"):
        raise ConfigError(f"resourceFieldRef: unsupported resource {ref.resource!r}")
    text = amounts.get(resource, "0")
    divisor = parse_quantity(ref.divisor or "1")
    value = parse_quantity(text).value / divisor.value
    return str(int(-(-value // 1)))  # round up, as Kubernetes does


def container_env(pod: pod_pb2.Pod, container: pod_pb2.Container, source: ObjectSource,
                  pod_ip: str, host_ip: str) -> dict[str, str]:
    """The container's environment: envFrom first, then env (later entries win)."""
    ns = pod.metadata.namespace
    env: dict[str, str] = {}
    for item in container.env_from:
        if item.config_map_ref.name:
            ref = item.config_map_ref
            cm = source.configmap(ns, ref.name)
            if cm is None:
                if ref.optional:
                    continue
                raise ConfigError(f'configmap "{ref.name}" not found')
            for key, value in cm.data.items():
                env[item.prefix + key] = value
        if item.secret_ref.name:
            sref = item.secret_ref
            secret = source.secret(ns, sref.name)
            if secret is None:
                if sref.optional:
                    continue
                raise ConfigError(f'secret "{sref.name}" not found')
            for key, data in secret.data.items():
                env[item.prefix + key] = data.decode(errors="replace")
    for var in container.env:
        value_from = var.value_from
        if value_from.config_map_key_ref.name:
            ref = value_from.config_map_key_ref
            value = _configmap_value(source, ns, ref.name, ref.key)
            if value is None:
                if ref.optional:
                    continue
                if source.configmap(ns, ref.name) is None:
                    raise ConfigError(f'configmap "{ref.name}" not found')
                raise ConfigError(f'couldn\'t find key {ref.key} in ConfigMap {ns}/{ref.name}')
            env[var.name] = value
        elif value_from.secret_key_ref.name:
            sref = value_from.secret_key_ref
            secret = source.secret(ns, sref.name)
            if secret is None or sref.key not in secret.data:
                if sref.optional:
                    continue
                if secret is None:
                    raise ConfigError(f'secret "{sref.name}" not found')
                raise ConfigError(f"couldn't find key {sref.key} in Secret {ns}/{sref.name}")
            env[var.name] = secret.data[sref.key].decode(errors="replace")
        elif value_from.field_ref.field_path:
            env[var.name] = _field_value(pod, value_from.field_ref.field_path, pod_ip, host_ip)
        elif value_from.resource_field_ref.resource:
            try:
                env[var.name] = _resource_field(container, value_from.resource_field_ref)
            except QuantityError as exc:
                raise ConfigError(f"env {var.name}: {exc}") from None
        else:
            env[var.name] = _expand(var.value, env)
    return env


def _expand(value: str, env: Mapping[str, str]) -> str:
    """$(VAR) references to earlier variables are expanded; $$ escapes."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            name = value[i + 2:end]
            out.append(env.get(name, value[i:end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _millicores(text: str) -> int:
    return parse_quantity(text).milli_value() if text else 0


def _bytes(text: str) -> int:
    return parse_quantity(text).int_value() if text else 0


def container_spec(pod: pod_pb2.Pod, container: pod_pb2.Container, *, init: bool,
                   env: Mapping[str, str], mounts: tuple[Mount, ...]) -> ContainerSpec:
    """The runtime spec of one container. ConfigError on a bad quantity."""
    limits, requests = container.resources.limits, container.resources.requests
    try:
        cpu_limit = _millicores(limits.get("cpu", ""))
        cpu_request = _millicores(requests.get("cpu", "") or limits.get("cpu", ""))
        memory_limit = _bytes(limits.get("memory", ""))
    except QuantityError as exc:
        raise ConfigError(f"resources: {exc}") from None
    command = tuple(_expand(a, env) for a in container.command)
    args = tuple(_expand(a, env) for a in container.args)
    return ContainerSpec(
        name=container.name, image=container.image, command=command, args=args,
        env=dict(env), working_dir=container.working_dir,
        ports=tuple(ContainerPort(p.container_port, (p.protocol or "TCP").lower(), p.name)
                    for p in container.ports),
        cpu_limit_millicores=cpu_limit, cpu_request_millicores=cpu_request,
        memory_limit_bytes=memory_limit, mounts=mounts, stop_signal=int(signal.SIGTERM),
        init_container=init)
