"""Resource usage of nodes and pods (what `raftkubectl top` prints), from the agents'
samples relayed by the masters (NodeAgent.Stats, authorized as `get nodes/stats`).

    top_nodes(client)             one NodeTop per node: CPU and memory in use, allocatable
    top_pods(client, namespace)   PodsTop: one PodTop per pod that has figures (with its
                                  containers), and the nodes that gave none, with why

Contract: figures are rates over the agent's last sampling window (default 10 s), so a pod
started within the last window or two has none yet and is left out; a node whose agent does
not answer is reported with `error` set instead of failing the whole call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raftkube import apierrors
from raftkube.api.v1 import node_agent_pb2
from raftkube.objects.quantity import cpu_millis, quantity_units

if TYPE_CHECKING:
    from raftkube.client.client import Client

_NANOS_PER_MILLI = 1_000_000


@dataclass(frozen=True)
class NodeTop:
    """A node's usage. cpu in millicores, memory in bytes; allocatable 0 when unknown;
    `error` is why there are no figures ("" when there are)."""

    name: str
    cpu_millicores: int = 0
    memory_bytes: int = 0
    cpu_allocatable_millicores: int = 0
    memory_allocatable_bytes: int = 0
    error: str = ""


@dataclass(frozen=True)
class ContainerTop:
    name: str
    cpu_millicores: int
    memory_bytes: int


@dataclass(frozen=True)
class PodsTop:
    """`pods`: the pods with figures; `unavailable`: node name -> why it gave none."""

    pods: list[PodTop]
    unavailable: dict[str, str]


@dataclass(frozen=True)
class PodTop:
    """A pod's usage: the sum of its running containers'."""

    namespace: str
    name: str
    node: str
    containers: tuple[ContainerTop, ...]

    @property
    def cpu_millicores(self) -> int:
        return sum(c.cpu_millicores for c in self.containers)

    @property
    def memory_bytes(self) -> int:
        return sum(c.memory_bytes for c in self.containers)


def top_nodes(client: Client, names: Iterable[str] = (), label_selector: str = ""
              ) -> list[NodeTop]:
    """Usage of the named nodes (all matching `label_selector` when none are named).
    Raises NotFound for a named node that does not exist."""
    wanted = list(names)
    nodes = ([client.nodes.get(n) for n in wanted] if wanted
             else client.nodes.list(label_selector=label_selector))
    result = []
    for node in nodes:
        allocatable = node.status.allocatable
        cpu = cpu_millis(allocatable.get("cpu", ""))
        memory = quantity_units(allocatable.get("memory", ""))
        try:
            stats = client.node_stats(node.metadata.name)
        except apierrors.ApiError as e:
            if isinstance(e, apierrors.Forbidden | apierrors.Unauthenticated):
                raise
            result.append(NodeTop(node.metadata.name, cpu_allocatable_millicores=cpu,
                                  memory_allocatable_bytes=memory, error=str(e)))
            continue
        result.append(NodeTop(node.metadata.name, stats.cpu_nanocores // _NANOS_PER_MILLI,
                              stats.memory_bytes, cpu, memory))
    return result


def top_pods(client: Client, namespace: str | None = None, name: str = "",
             label_selector: str = "", all_namespaces: bool = False) -> PodsTop:
    """Usage of the pods in `namespace` (or every namespace) that have figures, sorted by
    namespace and name; `name` picks one pod (NotFound when it does not exist). Forbidden
    and Unauthenticated are raised; a node's other errors land in `unavailable`."""
    if name:
        pods = [client.pods.get(name, namespace)]
    else:
        pods = client.pods.list(namespace, label_selector=label_selector,
                                all_namespaces=all_namespaces)
    by_node: dict[str, list] = {}
    for pod in pods:
        if pod.spec.node_name:
            by_node.setdefault(pod.spec.node_name, []).append(pod)
    result: list[PodTop] = []
    unavailable: dict[str, str] = {}
    for node, node_pods in sorted(by_node.items()):
        try:
            stats = client.node_stats(node)
        except (apierrors.Forbidden, apierrors.Unauthenticated):
            raise
        except apierrors.ApiError as e:
            unavailable[node] = str(e)
            continue
        result.extend(_pods_of(stats, node, node_pods))
    return PodsTop(sorted(result, key=lambda p: (p.namespace, p.name)), unavailable)


def _pods_of(stats: node_agent_pb2.NodeStats, node: str, pods: list) -> list[PodTop]:
    containers: dict[str, list[ContainerTop]] = {}
    for c in stats.containers:
        containers.setdefault(c.pod_uid, []).append(
            ContainerTop(c.container, c.cpu_nanocores // _NANOS_PER_MILLI, c.memory_bytes))
    return [PodTop(p.metadata.namespace, p.metadata.name, node,
                   tuple(sorted(containers[p.metadata.uid], key=lambda c: c.name)))
            for p in pods if p.metadata.uid in containers]

