"""Which pods sit on which node, for the scheduler, and the node states built from them.

`PlacedPods` records every pod placed on a node: bound (seen in the cache) or assumed (just
decided, binding in flight). `states(nodes)` returns a `NodeState` per node with those
pods' resources taken, rebuilding only the nodes that changed since the last call: a node
whose object changed (resourceVersion), or from which a pod left, or onto which a pod came
that the last states did not already count. A batch of decisions mutates the states it was
given (`NodeState.take`) and records them with `place(..., counted=True)`, so the next
batch starts from them as they are. With 10,000 pods on 1,000 nodes this replaces a full
rebuild (every node, every pod) per scheduling cycle.

Thread-safe: the cache's threads call `place`/`remove`; one scheduling thread calls
`states`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from raftkube.api.v1 import core_pb2
from raftkube.masters.controllers.scheduling import (
    NodeState,
    NodeStateMemo,
    PodNeeds,
    unplaced_state,
)

PodKey = tuple[str, str]


class PlacedPods:
    """Pods by node plus incrementally rebuilt node states (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_node: dict[str, dict[PodKey, PodNeeds]] = {}
        self._node_of: dict[PodKey, str] = {}
        self._dirty: set[str] = set()
        self._states: dict[str, NodeState] = {}
        self._versions: dict[str, str] = {}
        self._memo: NodeStateMemo = {}

    def place(self, key: PodKey, node: str, needs: PodNeeds, *, counted: bool = False) -> None:
        """`key` now sits on `node` (moved off any other node). `counted`: the states
        last returned already count it there (the scheduling batch took it), so the node
        need not be rebuilt."""
        with self._lock:
            previous = self._node_of.get(key)
            if previous is not None and previous != node:
                self._drop(key, previous)
            already = previous == node
            self._by_node.setdefault(node, {})[key] = needs
            self._node_of[key] = node
            if not counted and not already:
                self._dirty.add(node)

    def remove(self, key: PodKey) -> None:
        """`key` sits on no node any more (gone, finished, or its binding failed)."""
        with self._lock:
            node = self._node_of.get(key)
            if node is not None:
                self._drop(key, node)

    def _drop(self, key: PodKey, node: str) -> None:
        pods = self._by_node.get(node)
        if pods is not None:
            pods.pop(key, None)
            if not pods:
                del self._by_node[node]
        self._node_of.pop(key, None)
        self._dirty.add(node)

    def node_of(self, key: PodKey) -> str | None:
        with self._lock:
            return self._node_of.get(key)

    def placed(self) -> list[tuple[str, PodNeeds]]:
        """Every (node, needs) recorded."""
        with self._lock:
            return [(node, needs) for node, pods in self._by_node.items()
                    for needs in pods.values()]

    def states(self, nodes: Iterable[core_pb2.Node]) -> dict[str, NodeState]:
        """A state per node in `nodes` with its placed pods taken (see the module
        docstring). The caller may mutate the states (and must then `place(counted=True)`
        what it took)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        fresh: dict[str, NodeState] = {}
        for node in nodes:
            name, version = node.metadata.name, node.metadata.resource_version
            state = self._states.get(name)
            if (state is None or name in dirty or not version
                    or self._versions.get(name) != version):
                state = unplaced_state(node, self._memo)
                with self._lock:
                    pods = list(self._by_node.get(name, {}).values())
                for needs in pods:
                    state.take(needs)
                self._versions[name] = version
            fresh[name] = state
        for name in [name for name in self._memo if name not in fresh]:
            del self._memo[name]
            self._versions.pop(name, None)
        self._states = fresh
        return fresh
