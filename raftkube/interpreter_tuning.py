"""Interpreter settings for the long-running, many-threaded daemons (masters, stores).

`tune_for_daemon()` before the daemon starts its threads, `freeze_startup_objects()` once
it has started. Both are process-wide and idempotent.
"""

from __future__ import annotations

import gc
import sys

# Hand the GIL over every 1 ms (default 5 ms): a Raft thread blocks on fsync and sockets
# many times per tick and must not queue behind API and controller threads.
SWITCH_INTERVAL_SECONDS = 0.001
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
