"""Workloads: what each client thread does, over caller-provided operation callables.

A workload chooses the next operation (`next_op`, from the client's own seeded rng) and
performs it (`invoke`). `invoke` returns the output on success, raises DefiniteFailure
when the operation certainly did not happen, and raises anything else when the outcome is
unknown (timeouts, lost connections): the runner records ok / fail / info accordingly.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class OpSpec:
    """An operation to run: name, key and input value."""

    f: str
    key: Any = None
    value: Any = None


class Workload(Protocol):
    """What a client thread runs; implementations must be thread-safe."""

    def next_op(self, rng: random.Random, process: int) -> OpSpec:
        """The next operation for client `process` (pure apart from rng)."""
        ...

    def invoke(self, process: int, op: OpSpec) -> Any:
        """Perform `op`; return its output, or raise (see module docstring)."""
        ...


@dataclass
class RegisterWorkload:
    """get / put / cas on a few keys; written values are unique integers.

    get(key) -> value or None; put(key, value) -> anything; cas(key, expected, new) ->
    bool (True when it swapped). Mix: read_share gets, cas_share cas, rest puts. The cas
    expects a value this workload wrote recently to the key (or None), so some succeed.
    """

    get: Callable[[Hashable], Any]
    put: Callable[[Hashable, Any], Any]
    cas: Callable[[Hashable, Any, Any], bool]
    keys: Sequence[Hashable] = ("k0", "k1", "k2")
    read_share: float = 0.4
    cas_share: float = 0.3

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("register workload: keys must not be empty")
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._recent: dict[Hashable, list[Any]] = {}

    def next_op(self, rng: random.Random, process: int) -> OpSpec:
        key = rng.choice(list(self.keys))
        roll = rng.random()
        if roll < self.read_share:
            return OpSpec("get", key)
        with self._lock:
            value = next(self._counter)
            recent = self._recent.get(key, [None])
        if roll < self.read_share + self.cas_share:
            return OpSpec("cas", key, [rng.choice(recent), value])
        return OpSpec("put", key, value)

    def invoke(self, process: int, op: OpSpec) -> Any:
        if op.f == "get":
            return self.get(op.key)
        if op.f == "put":
            self.put(op.key, op.value)
            self._remember(op.key, op.value)
            return None
        if op.f == "cas":
            swapped = bool(self.cas(op.key, op.value[0], op.value[1]))
            if swapped:
                self._remember(op.key, op.value[1])
            return swapped
        raise ValueError(f"register workload: unknown operation {op.f!r}")

    def _remember(self, key: Hashable, value: Any) -> None:
        with self._lock:
            recent = self._recent.setdefault(key, [None])
            recent.append(value)
            del recent[:-4]


@dataclass
class SetWorkload:
    """Adds unique integer elements with `add(element)`; check with checkers.check_set."""

    add: Callable[[int], Any]

    def __post_init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def next_op(self, rng: random.Random, process: int) -> OpSpec:
        with self._lock:
            return OpSpec("add", None, next(self._counter))

    def invoke(self, process: int, op: OpSpec) -> Any:
        return self.add(op.value)
