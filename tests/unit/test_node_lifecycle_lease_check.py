"""The node lifecycle controller reads a stale-looking node's Lease from the store before
acting: its cache follows Nodes and Leases on separate watches, so the Lease it holds can
be older than the Node status it holds (a restarted agent's Ready beside its old Lease)."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftkube import apierrors
from raftkube.api.v1 import coordination_pb2, core_pb2
from raftkube.masters.controllers.manager import ControllerContext
from raftkube.masters.controllers.node_lifecycle import (
    LEASE_NAMESPACE,
    NodeLifecycleConfig,
    NodeLifecycleController,
)
from tests.unit.controller_factories import node


def lease(name: str, version: str) -> coordination_pb2.Lease:
    out = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
    out.metadata.name, out.metadata.namespace = name, LEASE_NAMESPACE
    out.metadata.resource_version = version
    return out


@dataclass
class Cache:
    """The controller's view: Nodes and Leases as its watches delivered them."""

    nodes: list[core_pb2.Node]
    leases: dict[str, coordination_pb2.Lease]

    def list(self, kind: str) -> list:
        assert kind == "Node"
        return list(self.nodes)

    def get(self, kind: str, namespace: str, name: str):
        if kind == "Lease":
            return self.leases.get(name)
        return next((n for n in self.nodes if n.metadata.name == name), None)

    def nodes_with_pods(self) -> list[str]:
        return []

    def list_on_node(self, name: str) -> list:
        return []


@dataclass
class Api:
    """The store as the controller writes and reads it directly."""

    leases: dict[str, coordination_pb2.Lease]
    status_writes: list[core_pb2.Node] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)

    def get(self, kind: str, namespace: str, name: str):
        assert (kind, namespace) == ("Lease", LEASE_NAMESPACE)
        self.reads.append(name)
        if name not in self.leases:
            raise apierrors.NotFound(f'leases "{name}" not found')
        return self.leases[name]

    def update_status(self, obj: core_pb2.Node) -> None:
        self.status_writes.append(obj)

    def update(self, obj: core_pb2.Node) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def controller(cache: Cache, api: Api, clock: Clock) -> NodeLifecycleController:
    return NodeLifecycleController(ControllerContext(api=api, cache=cache, term=1),  # type: ignore[arg-type]
                                   config=NodeLifecycleConfig(node_monitor_grace_seconds=6),
                                   clock=clock)


def test_a_renewal_the_cache_has_not_seen_yet_keeps_the_node_ready() -> None:
    clock = Clock()
    cache = Cache([node("w1")], {"w1": lease("w1", "10")})
    api = Api({"w1": lease("w1", "10")})
    lifecycle = controller(cache, api, clock)
    lifecycle.step()  # the renewal at version 10 is observed at t=100
    clock.now += 7  # the agent was gone longer than the grace period, then came back:
    api.leases["w1"] = lease("w1", "42")  # its renewal is in the store, not yet in the cache
    plan = lifecycle.step()
    assert plan.not_ready == () and plan.taint == ()
    assert api.status_writes == []
    assert api.reads == ["w1"], "only a node past the grace period costs a read"


def test_a_node_whose_lease_is_stale_in_the_store_too_is_marked_not_ready() -> None:
    clock = Clock()
    cache = Cache([node("w1"), node("w2")], {"w1": lease("w1", "10"), "w2": lease("w2", "11")})
    api = Api({"w1": lease("w1", "10"), "w2": lease("w2", "11")})
    lifecycle = controller(cache, api, clock)
    lifecycle.step()
    clock.now += 3
    api.leases["w2"] = cache.leases["w2"] = lease("w2", "50")  # w2 keeps renewing
    lifecycle.step()
    clock.now += 4
    plan = lifecycle.step()
    assert plan.not_ready == ("w1",) and plan.taint == ("w1",)
    [written] = api.status_writes
    ready = next(c for c in written.status.conditions if c.type == "Ready")
    assert (written.metadata.name, ready.status) == ("w1", "Unknown")
    assert api.reads == ["w1"]
