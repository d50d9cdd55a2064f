"""Speed of the linearizability checker on synthetic register histories.

    /work/venv/bin/python bench/chaos_linearizability.py [--ops 5000 --keys 5 --clients 10]

Histories come from raftkube.testing.chaos.synthetic (linearizable by construction, about
`clients` operations in flight, a share with unknown outcome). The non-linearizable case
corrupts one read. The natural peer is Porcupine (Go); it cannot run on these machines
(Debian's Go 1.19 installs, but the Go module proxy is unreachable, so Porcupine cannot be
fetched), and no Python linearizability checker is published on PyPI; the peer column says
so instead of printing a number.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftkube.testing.chaos.history import OK, Operation
from raftkube.testing.chaos.linearizability import check
from raftkube.testing.chaos.synthetic import SyntheticConfig, register_history

PEER_MISSING = "n/a (not fetchable here)"


def corrupt_one_read(ops: list[Operation]) -> list[Operation]:
    """The same history with the middle ok read returning a value nobody wrote."""
    reads = [i for i, o in enumerate(ops) if o.f == "get" and o.status == OK]
    i = reads[len(reads) // 2]
    bad = ops[i]
    out = list(ops)
    out[i] = Operation(bad.op_id, bad.process, bad.f, bad.key, bad.input, -1, OK,
                       bad.invoke_time, bad.complete_time)
    return out


def ours(ops: list[Operation], repeat: int) -> tuple[str, float]:
    best = math.inf
    outcome = ""
    for _ in range(repeat):
        started = time.perf_counter()
        outcome = check(ops, time_limit=600).outcome
        best = min(best, time.perf_counter() - started)
    return outcome, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=5)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--unknown-share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = SyntheticConfig(ops=args.ops, keys=args.keys, clients=args.clients,
                             unknown_share=args.unknown_share)
    history = register_history(args.seed, config)
    cases = {"linearizable": history, "one corrupted read": corrupt_one_read(history)}
    print(f"{args.ops} ops, {args.keys} keys, {args.clients} clients, "
          f"{args.unknown_share:.0%} unknown outcomes, seed {args.seed}; best of {args.repeat}")
    print(f"{'history':22} {'raftkube (Python)':>28} {'porcupine (Go)':>28}")
    for name, ops in cases.items():
        outcome, seconds = ours(ops, args.repeat)
        mine = f"{outcome} {seconds:.3f}s"
        print(f"{name:22} {mine:>28} {PEER_MISSING:>28}")


if __name__ == "__main__":
    main()
