"""Secrets are encrypted at rest: a ValueTransformer for ObjectStore, and key rotation.

Values under the secrets prefix are sealed with the key file's primary (first) key
(AES-GCM, bound to their storage key); every other value passes through unchanged. The key
file is re-read when it changes (checked at most once a second), so rotating keys is:
put the new key first in every master's key file (`raftkube encryption add-key`), then
`raftkubectl cluster rotate-secrets` re-encrypts every stored Secret under it, then the
old key can be removed from the files.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from raftkube.consensus.model import Compare, Op
from raftkube.masters.object_store import REGISTRY_PREFIX, prefix_end
from raftkube.security import encryption
from raftkube.security.encryption import KeyRing

SECRETS_PREFIX = REGISTRY_PREFIX + b"secrets/"
ENVELOPE_PREFIX = b"k8s:enc:"
ROTATION_BATCH = 100


class KeyFile:
    """A key file whose ring is reloaded when the file changes."""

    def __init__(self, path: Path, check_interval: float = 1.0) -> None:
        self._path = Path(path)
        self._interval = check_interval
        self._lock = threading.Lock()
        self._mtime = os.stat(self._path).st_mtime_ns
        self._ring = encryption.load_key_file(self._path)
        self._checked = time.monotonic()

    def ring(self) -> KeyRing:
        now = time.monotonic()
        if now - self._checked < self._interval:
            return self._ring
        with self._lock:
            self._checked = now
            mtime = os.stat(self._path).st_mtime_ns
            if mtime != self._mtime:
                self._ring = encryption.load_key_file(self._path)
                self._mtime = mtime
            return self._ring


class SecretEncryption:
    """Encrypts Secret objects with the key file's ring; leaves other kinds as they are."""

    def __init__(self, keys: KeyFile | KeyRing) -> None:
        self._keys = keys

    def ring(self) -> KeyRing:
        return self._keys.ring() if isinstance(self._keys, KeyFile) else self._keys

    def to_storage(self, key: bytes, data: bytes) -> bytes:
        if not key.startswith(SECRETS_PREFIX):
            return data
        return self.ring().encrypt(data, key.decode())

    def from_storage(self, key: bytes, data: bytes) -> bytes:
        if not key.startswith(SECRETS_PREFIX) or not data.startswith(ENVELOPE_PREFIX):
            return data
        return self.ring().decrypt(data, key.decode())


def rotate_stored_secrets(store, ring: KeyRing) -> int:
    """Re-encrypt every stored Secret not yet under `ring`'s primary key; returns how many
    were rewritten. Each batch is one transaction guarded by every key's mod_revision, so a
    concurrent write to a Secret makes that batch retry instead of being overwritten."""
    rewritten = 0
    start = SECRETS_PREFIX
    end = prefix_end(SECRETS_PREFIX)
    while True:
        result = store.range(start, end, limit=ROTATION_BATCH, linearizable=True)
        stale = [kv for kv in result.kvs if kv.value.startswith(ENVELOPE_PREFIX)
                 and ring.needs_rotation(kv.value)]
        plain = [kv for kv in result.kvs if not kv.value.startswith(ENVELOPE_PREFIX)]
        todo: Sequence = stale + plain
        if todo:
            updates = encryption.rotate(ring, [(kv.key.decode(), kv.value) for kv in stale])
            values = dict(updates)
            for kv in plain:
                values[kv.key.decode()] = ring.encrypt(kv.value, kv.key.decode())
            compares = [Compare.mod_revision(kv.key, kv.mod_revision) for kv in todo]
            ops = [Op.put(kv.key, values[kv.key.decode()]) for kv in todo]
            if not store.txn(compares, ops).succeeded:
                continue  # something changed under us: read this batch again
            rewritten += len(todo)
        if not result.more or not result.kvs:
            return rewritten
        start = result.kvs[-1].key + b"\0"
