"""Log-compaction snapshots written in the background (a pysyncobj Serializer subclass).

pysyncobj runs a custom serializer synchronously in the Raft thread; encoding a large
state there would stall heartbeats long enough to lose leadership. `BackgroundSnapshotter`
takes only a cheap consistent capture in the Raft thread (`prepare`) and writes the
snapshot file in a worker thread (temp file, fsync, rename, fsync dir). pysyncobj polls
`checkSerializing` each tick and truncates the journal only after SUCCESS.

Snapshot installs (restart, or a snapshot received from the leader) go through
`deserialize`; a background write that started before an install is discarded, so an
older snapshot never replaces a newer one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.serializer import Serializer

from raftkube.consensus.journal import fsync_dir

log = logging.getLogger(__name__)

Writer = Callable[[str], None]


class BackgroundSnapshotter(Serializer):
    """prepare(raft_data) -> writer(path) runs in the Raft thread and must be cheap;
    writer(path) runs in a worker thread. load(path) -> (last, prev, cluster)."""

    def __init__(self, file_name: str, transmission_batch: int,
                 prepare: Callable[[Any], Writer], load: Callable[[str], tuple[Any, ...]]) -> None:
        super().__init__(file_name, transmission_batch, False, None, None, None)
        self._file_name = file_name
        self._prepare = prepare
        self._load = load
        self._thread: threading.Thread | None = None
        self._succeeded = False
        self._id: Any = None
        self._installs = 0  # bumped by every deserialize (snapshot install)

    def checkSerializing(self) -> tuple[int, Any]:
        if self._thread is None:
            return SERIALIZER_STATE.NOT_SERIALIZING, None
        if self._thread.is_alive():
            return SERIALIZER_STATE.SERIALIZING, self._id
        self._thread = None
        state = SERIALIZER_STATE.SUCCESS if self._succeeded else SERIALIZER_STATE.FAILED
        return state, self._id

    def serialize(self, data: Any, id: Any) -> None:
        if self._thread is not None:
            return
        self._id = id
        self._succeeded = False
        writer = self._prepare(data[1:])
        installs = self._installs
        tmp = self._file_name + ".bg.tmp"

        def run() -> None:
            try:
                writer(tmp)
                if installs != self._installs:
                    log.info("snapshot discarded: a newer snapshot was installed meanwhile")
                    os.unlink(tmp)
                    return
                os.replace(tmp, self._file_name)
                fsync_dir(os.path.dirname(os.path.abspath(self._file_name)))
                self._succeeded = True
            except Exception:
                log.exception("writing snapshot %s failed", self._file_name)

        self._thread = threading.Thread(target=run, name="snapshot-writer", daemon=True)
        self._thread.start()

    def deserialize(self) -> tuple[Any, ...]:
        self._installs += 1
        return (None, *self._load(self._file_name))
