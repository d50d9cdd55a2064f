"""Synthetic register histories that are linearizable by construction (tests, benchmarks).

Each client runs a closed loop: one operation at a time, with a random latency and a
random think time. Every operation takes effect at a random point inside its interval; the
operations are then executed against a real dict in the order of those points, which gives
their outputs. The result is a linearizable history with as much overlap as the latencies
make (10 clients with latency 10x the think time: about 9 operations in flight at once).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from raftkube.testing.chaos.history import FAIL, INFO, OK, Operation


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape of a generated history.

    ops: number of operations; keys: number of registers; clients: concurrent clients.
    mean_latency / mean_think: seconds, exponential distributions.
    unknown_share: share of operations whose outcome is lost (recorded as info).
    failed_share: share of writes recorded as failed (they do not take effect).
    """

    ops: int = 1000
    keys: int = 5
    clients: int = 10
    mean_latency: float = 0.010
    mean_think: float = 0.001
    unknown_share: float = 0.02
    failed_share: float = 0.01


def register_history(seed: int, config: SyntheticConfig) -> list[Operation]:
    """A linearizable get/put/cas history, in invoke order (deterministic for a seed)."""
    rng = random.Random(seed)
    intervals: list[tuple[float, float, int]] = []
    clock = [rng.uniform(0, config.mean_think) for _ in range(config.clients)]
    for _ in range(config.ops):
        client = min(range(config.clients), key=clock.__getitem__)
        start = clock[client]
        end = start + rng.expovariate(1 / config.mean_latency)
        intervals.append((start, end, client))
        clock[client] = end + rng.expovariate(1 / config.mean_think)
    points = sorted(range(len(intervals)),
                    key=lambda i: rng.uniform(intervals[i][0], intervals[i][1]))
    store: dict[str, int] = {}
    ops: list[Operation | None] = [None] * len(intervals)
    for serial, i in enumerate(points):
        start, end, client = intervals[i]
        key = f"k{rng.randrange(config.keys)}"
        kind = rng.choice(("get", "put", "cas"))
        roll = rng.random()
        status = INFO if roll < config.unknown_share else OK
        inp: object = None
        out: object = None
        if kind == "get":
            out = store.get(key)
        elif kind == "put":
            if roll > 1 - config.failed_share:
                ops[i] = Operation(i, client, kind, key, serial, None, FAIL, start, end)
                continue
            inp = serial
            store[key] = serial
        else:
            expected = store.get(key) if rng.random() < 0.5 else rng.randrange(serial + 1)
            inp = [expected, serial]
            out = store.get(key) == expected
            if out:
                store[key] = serial
        ops[i] = Operation(i, client, kind, key, inp, out if status == OK else None, status,
                           start, end if status == OK else math.inf)
    return [op for op in ops if op is not None]
