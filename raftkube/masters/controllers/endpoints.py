"""Service -> Endpoints.

Pure part, `plan_endpoints(service, pods)`: for a Service with a selector, the Endpoints
object it should have: every pod matching the selector that has an IP and is not being
deleted, under `addresses` when Ready (or when the Service publishes not-ready
addresses) and `notReadyAddresses` otherwise; ports are the Service's ports with
targetPort resolved per pod (a number, or a container port name). Pods resolving a port
differently end up in different subsets. Services without a selector are left alone (their
Endpoints are the user's).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from raftkube import apierrors
from raftkube.api.v1 import core_pb2, meta_pb2, pod_pb2
from raftkube.masters.controllers.keyed_loop import KeyedController
from raftkube.masters.controllers.objects_util import copy_of, pod_is_ready
from raftkube.objects.selectors import selector_from_map


def resolve_target_port(port: core_pb2.ServicePort, pod: pod_pb2.Pod) -> int | None:
    """The pod port a service port sends to; None when a named port is not found."""
    target = port.target_port
    if target.WhichOneof("value") == "str_val":
        for container in pod.spec.containers:
            for cport in container.ports:
                if cport.name == target.str_val and (cport.protocol or "TCP") == port.protocol:
                    return cport.container_port
        return None
    return target.int_val or port.port


def plan_endpoints(service: core_pb2.Service, pods: Sequence[pod_pb2.Pod],
                   ) -> core_pb2.Endpoints | None:
    """The desired Endpoints of `service` (None: no selector, nothing to manage)."""
    if not service.spec.selector:
        return None
    selector = selector_from_map(service.spec.selector)
    groups: dict[tuple, core_pb2.EndpointSubset] = {}
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        if (pod.metadata.namespace != service.metadata.namespace
                or not selector.matches(pod.metadata.labels)
                or not pod.status.pod_ip or pod.metadata.deletion_timestamp
                or pod.status.phase in ("Succeeded", "Failed")):
            continue
        ports = []
        for sport in service.spec.ports:
            number = resolve_target_port(sport, pod)
            if number is not None:
                ports.append(core_pb2.EndpointPort(name=sport.name, port=number,
                                                   protocol=sport.protocol or "TCP",
                                                   app_protocol=sport.app_protocol))
        if service.spec.ports and not ports:
            continue
        signature = tuple((p.name, p.port, p.protocol) for p in ports)
        subset = groups.get(signature)
        if subset is None:
            subset = core_pb2.EndpointSubset(ports=ports)
            groups[signature] = subset
        address = core_pb2.EndpointAddress(
            ip=pod.status.pod_ip, node_name=pod.spec.node_name,
            target_ref=meta_pb2.ObjectReference(kind="Pod", namespace=pod.metadata.namespace,
                                                name=pod.metadata.name, uid=pod.metadata.uid))
        if pod.spec.hostname:
            address.hostname = pod.spec.hostname
        if pod_is_ready(pod) or service.spec.publish_not_ready_addresses:
            subset.addresses.append(address)
        else:
            subset.not_ready_addresses.append(address)
    endpoints = core_pb2.Endpoints(api_version="v1", kind="Endpoints")
    endpoints.metadata.name = service.metadata.name
    endpoints.metadata.namespace = service.metadata.namespace
    endpoints.metadata.labels.update(service.metadata.labels)
    endpoints.subsets.extend(groups[k] for k in sorted(groups))
    return endpoints


class EndpointsController(KeyedController):
    """Keeps each selector Service's Endpoints current (keys: (namespace, service))."""

    name = "endpoints"
    workers = 2

    def keys_for(self, kind: str, namespace: str, name: str) -> Iterable[Hashable]:
        cache = self.context.cache
        if kind in ("Service", "Endpoints"):
            return [(namespace, name)]
        if kind != "Pod":
            return []
        pod = cache.get("Pod", namespace, name)
        keys = []
        for service in cache.list("Service", namespace):
            if not service.spec.selector:
                continue
            if pod is not None and selector_from_map(service.spec.selector).matches(
                    pod.metadata.labels):
                keys.append((namespace, service.metadata.name))
                continue
            endpoints = cache.get("Endpoints", namespace, service.metadata.name)
            if endpoints is not None and any(
                    a.target_ref.name == name for s in endpoints.subsets
                    for a in list(s.addresses) + list(s.not_ready_addresses)):
                keys.append((namespace, service.metadata.name))
        return keys

    def sync(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        cache = self.context.cache
        service = cache.get("Service", namespace, name)
        current = cache.get("Endpoints", namespace, name)
        if service is None or service.metadata.deletion_timestamp:
            return None  # the garbage collector or the user removes stale Endpoints
        desired = plan_endpoints(service, cache.list("Pod", namespace))
        if desired is None:
            return None
        api = self.context.api
        if current is None:
            try:
                api.create(desired)
            except apierrors.AlreadyExists:
                return 0.1
            return None
        if list(current.subsets) == list(desired.subsets) and dict(
                current.metadata.labels) == dict(desired.metadata.labels):
            return None
        fresh = copy_of(current)
        del fresh.subsets[:]
        fresh.subsets.extend(desired.subsets)
        fresh.metadata.labels.clear()
        fresh.metadata.labels.update(desired.metadata.labels)
        api.update(fresh)
        return None
