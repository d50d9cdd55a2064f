"""Object factories for the controllers' pure-plan unit tests."""

from __future__ import annotations

from raftkube.api.v1 import apps_pb2, core_pb2, meta_pb2, pod_pb2

NOW = 1_800_000_000.0
STAMP = "2027-01-15T08:00:00Z"  # = NOW


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", ready: bool = True,
         labels: dict | None = None, unschedulable: bool = False,
         taints: list[tuple[str, str, str]] = (), images: tuple[str, ...] = ()) -> core_pb2.Node:
    n = core_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    n.metadata.labels.update(labels or {})
    n.spec.unschedulable = unschedulable
    for key, value, effect in taints:
        n.spec.taints.add(key=key, value=value, effect=effect)
    n.status.allocatable.update({"cpu": cpu, "memory": memory, "pods": pods})
    n.status.conditions.add(type="Ready", status="True" if ready else "False")
    if images:
        n.status.images.add(names=list(images))
    return n


def pod(name: str, cpu: str = "", memory: str = "", node_name: str = "",
        labels: dict | None = None, owner: str = "", owner_kind: str = "ReplicaSet",
        phase: str = "", ready: bool = False, created: str = STAMP, ready_since: str = STAMP,
        namespace: str = "default", image: str = "img") -> pod_pb2.Pod:
    p = pod_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.namespace = namespace
    p.metadata.uid = f"uid-{name}"
    p.metadata.creation_timestamp = created
    p.metadata.labels.update(labels or {})
    if owner:
        p.metadata.owner_references.add(kind=owner_kind, name=owner, uid=f"uid-{owner}",
                                         controller=True)
    c = p.spec.containers.add(name="c", image=image)
    if cpu:
        c.resources.requests["cpu"] = cpu
    if memory:
        c.resources.requests["memory"] = memory
    p.spec.node_name = node_name
    p.status.phase = phase or ("Running" if ready else "Pending")
    if ready:
        p.status.conditions.add(type="Ready", status="True", last_transition_time=ready_since)
    return p


def replica_set(name: str, replicas: int, labels: dict | None = None, uid: str = "",
                owner: str = "", revision: str = "", template_args: tuple = ()
                ) -> apps_pb2.ReplicaSet:
    labels = labels or {"app": name}
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = name
    rs.metadata.namespace = "default"
    rs.metadata.uid = uid or f"uid-{name}"
    rs.metadata.generation = 1
    if owner:
        rs.metadata.owner_references.add(kind="Deployment", name=owner, uid=f"uid-{owner}",
                                          controller=True)
    if revision:
        rs.metadata.annotations["deployment.kubernetes.io/revision"] = revision
    rs.spec.replicas = replicas
    rs.spec.selector.match_labels.update(labels)
    rs.spec.template.metadata.labels.update(labels)
    rs.spec.template.spec.containers.add(name="c", image="img", args=list(template_args))
    return rs


def deployment(name: str, replicas: int, surge=None, unavailable=None,
               args: tuple = ()) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.metadata.namespace = "default"
    d.metadata.uid = f"uid-{name}"
    d.metadata.generation = 1
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="c", image="img", args=list(args))
    d.spec.strategy.type = "RollingUpdate"
    if surge is not None:
        d.spec.strategy.rolling_update.max_surge.CopyFrom(_ios(surge))
    if unavailable is not None:
        d.spec.strategy.rolling_update.max_unavailable.CopyFrom(_ios(unavailable))
    return d


def _ios(value) -> meta_pb2.IntOrString:
    return meta_pb2.IntOrString(str_val=value) if isinstance(value, str) else \
        meta_pb2.IntOrString(int_val=value)
