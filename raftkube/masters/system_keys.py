"""Cluster-wide settings the masters keep in the store beside the objects.

```
/raftkube/tokens            token table (JSON; hashes only, see security.tokens)
/raftkube/masters/NAME      {"apiAddress": ..., "raftAddress": ...} of each master
```

Contract: readers are local (serializable) reads; writers use compare-and-swap so two
masters seeding the same key at once cannot both win.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from raftkube.consensus.model import Compare, Op
from raftkube.consensus.store import Store
from raftkube.security import tokens

TOKENS_KEY = b"/raftkube/tokens"
MASTERS_PREFIX = b"/raftkube/masters/"


def seed_if_absent(store: Store, key: bytes, value: bytes) -> bool:
    """Write `value` at `key` unless the key exists; True when this call wrote it."""
    return store.txn([Compare.absent(key)], [Op.put(key, value)]).succeeded


class TokenTableCache:
    """The token table from the store, parsed once per change (keyed by mod_revision)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._revision = -1
        self._table: Mapping[str, Mapping] = {}

    def table(self) -> Mapping[str, Mapping]:
        result = self._store.range(TOKENS_KEY)
        if not result.kvs:
            return {}
        kv = result.kvs[0]
        with self._lock:
            if kv.mod_revision != self._revision:
                self._table = tokens.loads(kv.value.decode(), "store token table")
                self._revision = kv.mod_revision
            return self._table

    def update(self, change: Any, attempts: int = 10) -> None:
        """Apply `change(table) -> table` with compare-and-swap, retrying on races."""
        for _ in range(attempts):
            result = self._store.range(TOKENS_KEY, linearizable=True)
            current = result.kvs[0] if result.kvs else None
            table = tokens.loads(current.value.decode()) if current else {}
            new = tokens.dumps(change(table)).encode()
            guard = (Compare.mod_revision(TOKENS_KEY, current.mod_revision) if current
                     else Compare.absent(TOKENS_KEY))
            if self._store.txn([guard], [Op.put(TOKENS_KEY, new)]).succeeded:
                return
        raise RuntimeError("token table changed too often while updating it; try again")


def register_master(store: Store, name: str, api_address: str, raft_address: str) -> None:
    """Record (or refresh) this master's addresses."""
    value = json.dumps({"apiAddress": api_address, "raftAddress": raft_address}).encode()
    key = MASTERS_PREFIX + name.encode()
    current = store.range(key)
    if current.kvs and current.kvs[0].value == value:
        return
    store.put(key, value)


def known_masters(store: Store) -> dict[str, dict[str, str]]:
    """name -> {"apiAddress", "raftAddress"} for every master that registered."""
    result = store.range(MASTERS_PREFIX, MASTERS_PREFIX[:-1] + b"0")
    return {kv.key[len(MASTERS_PREFIX):].decode(): json.loads(kv.value) for kv in result.kvs}


def forget_master(store: Store, name: str) -> None:
    store.delete(MASTERS_PREFIX + name.encode())
