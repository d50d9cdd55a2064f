"""Interpreter settings for the long-running, many-threaded daemons (masters, stores).

`tune_for_daemon()` before the daemon starts its threads, `freeze_startup_objects()` once
it has started. Both are process-wide and idempotent.
"""

from __future__ import annotations

import gc
import sys

# Hand the GIL over every 5 ms (CPython's default, set explicitly). A shorter interval was
# tried to let the Raft thread, which releases the GIL on fsync and sockets many times per
# tick, get it back sooner; measured, it did the opposite. On a leader binding 10,000 pods
# (bench/scheduler_throughput.py, 1,000 hollow nodes) 1 ms gave 869-1044 pods/s and 43-52
# Raft ticks over 100 ms per run; 5 ms gave 1169-1420 pods/s and 28-40 slow ticks: with
# a short interval the GIL bounces among the busy controller threads more often and an
# I/O thread waits behind more of them. The store bench did not change (1471 vs 1510
# writes/s with 100 in flight).
SWITCH_INTERVAL_SECONDS = 0.005
# The cyclic collector's default thresholds (700, 10, 10) ran ~550 collections and took
# 1.5 s of a leader's 15 s while 10,000 pods were created and bound (generation-2 passes
# up to 0.17 s, stalling every thread). The objects here are mostly acyclic (protobuf
# messages, tuples, dicts of strings): collect young objects far less often.
GC_THRESHOLDS = (100_000, 50, 50)


def tune_for_daemon() -> None:
    """Set the GIL switch interval and the collector's thresholds (see above)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_startup_objects() -> None:
    """Move every object alive now to the collector's permanent generation: what start-up
    created lives as long as the process and is never scanned again."""
    gc.freeze()
