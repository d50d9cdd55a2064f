"""Helpers shared by the controller integration tests (raw Resources stubs, no SDK)."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from raftkube import apierrors
from raftkube.api.v1 import apps_pb2, core_pb2, pod_pb2, resources_pb2
from raftkube.objects import registry


def call(fn, request, timeout: float = 10.0):
    try:
        return fn(request, timeout=timeout)
    except grpc.RpcError as e:
        raise apierrors.from_rpc_error(e) from None


def create(stub, obj):
    return registry.unwrap(call(stub.Create, resources_pb2.CreateRequest(
        object=registry.wrap(obj))))


def get(stub, kind: str, name: str, namespace: str = "default"):
    return registry.unwrap(call(stub.Get, resources_pb2.GetRequest(
        kind=kind, namespace=namespace, name=name)))


def update(stub, obj):
    return registry.unwrap(call(stub.Update, resources_pb2.UpdateRequest(
        object=registry.wrap(obj))))


def list_objects(stub, kind: str, namespace: str = "default", label_selector: str = "",
                 field_selector: str = "") -> list:
    reply = call(stub.List, resources_pb2.ListRequest(
        kind=kind, namespace=namespace, label_selector=label_selector,
        field_selector=field_selector), timeout=30)
    return [registry.unwrap(item) for item in reply.items]


def delete(stub, kind: str, name: str, namespace: str = "default", grace: int | None = None):
    request = resources_pb2.DeleteRequest(kind=kind, namespace=namespace, name=name)
    if grace is not None:
        request.grace_period_seconds = grace
    for _ in range(5):  # the API server's read-then-CAS may race a concurrent writer
        try:
            return call(stub.Delete, request)
        except apierrors.Conflict:
            time.sleep(0.1)
    return call(stub.Delete, request)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1):
    """Poll until `predicate()` is truthy; returns its value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except apierrors.ApiError:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def container(name: str = "app", image: str = "localhost/busybox:latest", cpu: str = "",
              memory: str = "") -> pod_pb2.Container:
    c = pod_pb2.Container(name=name, image=image, command=["sleep", "3600"])
    if cpu:
        c.resources.requests["cpu"] = cpu
    if memory:
        c.resources.requests["memory"] = memory
    return c


def deployment(name: str, replicas: int, labels: dict[str, str] | None = None,
               cpu: str = "", memory: str = "") -> apps_pb2.Deployment:
    labels = labels or {"app": name}
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels.update(labels)
    d.spec.template.metadata.labels.update(labels)
    d.spec.template.spec.containers.append(container(cpu=cpu, memory=memory))
    return d


def pod(name: str, labels: dict[str, str] | None = None, cpu: str = "", memory: str = "",
        ) -> pod_pb2.Pod:
    p = pod_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.labels.update(labels or {})
    p.spec.containers.append(container(cpu=cpu, memory=memory))
    return p


def service(name: str, selector: dict[str, str], port: int = 80, target=8080,
            cluster_ip: str = "") -> core_pb2.Service:
    s = core_pb2.Service(api_version="v1", kind="Service")
    s.metadata.name = name
    s.spec.selector.update(selector)
    if cluster_ip:
        s.spec.cluster_ip = cluster_ip
    p = s.spec.ports.add(name="http", port=port, protocol="TCP")
    if isinstance(target, str):
        p.target_port.str_val = target
    else:
        p.target_port.int_val = target
    return s


def events_for(stub, name: str, namespace: str = "default") -> list[core_pb2.Event]:
    return [e for e in list_objects(stub, "Event", namespace)
            if e.involved_object.name == name]


def running(pods) -> list:
    return [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
