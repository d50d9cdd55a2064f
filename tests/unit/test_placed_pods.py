"""PlacedPods: node states rebuilt only where something changed must always equal a full
rebuild from the pods placed (random sequences of binds, moves, removals, node updates and
batches that take pods themselves)."""

from __future__ import annotations

import random
from dataclasses import astuple

from raftkube.masters.controllers.placed_pods import PlacedPods
from raftkube.masters.controllers.scheduling import build_node_states, pod_needs
from tests.unit.controller_factories import node, pod


def _nodes(versions: dict[str, int]):
    nodes = []
    for name, version in versions.items():
        n = node(name, cpu=str(2 + version % 3))  # a new version may change allocatable
        n.metadata.resource_version = str(version)
        nodes.append(n)
    return nodes


def _comparable(states) -> dict:
    return {name: (astuple(s)[:12], sorted(s.ports), dict(+s.owners))
            for name, s in states.items()}


def test_incremental_states_equal_a_full_rebuild_after_any_sequence() -> None:
    rng = random.Random(7)
    versions = {f"n{i}": 1 for i in range(6)}
    book = PlacedPods()
    needs = {}
    for step in range(600):
        key = ("default", f"p{rng.randrange(40)}")
        if key not in needs:
            owner = f"rs{rng.randrange(3)}"
            needs[key] = pod_needs(pod(key[1], cpu=f"{rng.randrange(1, 5) * 100}m",
                                       owner=owner), {}, {})
        action = rng.random()
        if action < 0.35:  # bound by someone else / seen in the cache
            book.place(key, rng.choice(list(versions)), needs[key])
        elif action < 0.5:
            book.remove(key)
        elif action < 0.6:
            name = rng.choice(list(versions))
            versions[name] += 1
        elif action < 0.65 and len(versions) > 2:
            versions.pop(rng.choice(list(versions)))
        elif action < 0.7:
            versions[f"n{len(versions) + step}"] = 1
        else:  # a scheduling batch: take on the states handed out, then record
            if book.node_of(key) is not None:
                book.remove(key)  # a batch decides pending pods only
            states = book.states(_nodes(versions))
            name = rng.choice(list(states))
            states[name].take(needs[key])
            book.place(key, name, needs[key], counted=True)
        nodes = _nodes(versions)
        expected = build_node_states(nodes, [p for p in book.placed() if p[0] in versions])
        assert _comparable(book.states(nodes)) == _comparable(expected), f"step {step}"


def test_only_changed_nodes_are_rebuilt() -> None:
    book = PlacedPods()
    nodes = _nodes({"a": 1, "b": 1})
    first = book.states(nodes)
    book.place(("default", "x"), "a", pod_needs(pod("x", cpu="1"), {}, {}))
    second = book.states(nodes)
    assert second["b"] is first["b"], "an untouched node is reused"
    assert second["a"] is not first["a"] and second["a"].used_cpu == 1000
    third = book.states(_nodes({"a": 1, "b": 2}))
    assert third["a"] is second["a"] and third["b"] is not second["b"]
