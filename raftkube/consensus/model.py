"""Public value types of the store: keys/values, compares, ops, results, events, status.

All are immutable dataclasses. Keys and values are bytes. Revisions follow etcd: one
global revision, incremented once by every transaction that changes something.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key's current state. version counts puts since the key was (re)created."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


class CompareTarget(enum.Enum):
    """Which field of a key a Compare looks at. A missing key has all fields 0 / b""."""

    VERSION = "version"
    CREATE = "create"
    MOD = "mod"
    VALUE = "value"


class CompareResult(enum.Enum):
    """How the key's field is compared with `Compare.value`."""

    EQUAL = "="
    NOT_EQUAL = "!="
    GREATER = ">"
    LESS = "<"


@dataclass(frozen=True, slots=True)
class Compare:
    """A condition of a transaction, e.g. Compare.mod_revision(b"/k", 7) or absent(b"/k")."""

    key: bytes
    target: CompareTarget
    result: CompareResult
    value: int | bytes

    @classmethod
    def absent(cls, key: bytes) -> Compare:
        """True when `key` does not exist."""
        return cls(key, CompareTarget.CREATE, CompareResult.EQUAL, 0)

    @classmethod
    def exists(cls, key: bytes) -> Compare:
        """True when `key` exists."""
        return cls(key, CompareTarget.CREATE, CompareResult.GREATER, 0)

    @classmethod
    def mod_revision(cls, key: bytes, revision: int) -> Compare:
        """True when `key`'s mod_revision equals `revision` (0: the key is absent)."""
        return cls(key, CompareTarget.MOD, CompareResult.EQUAL, revision)

    @classmethod
    def value_equals(cls, key: bytes, value: bytes) -> Compare:
        """True when `key` exists with exactly this value."""
        return cls(key, CompareTarget.VALUE, CompareResult.EQUAL, value)


class OpType(enum.Enum):
    """Kinds of transaction operation."""

    PUT = "put"
    DELETE = "delete"
    RANGE = "range"


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a transaction branch.

    PUT: key, value. DELETE: key, or [key, range_end) when range_end is set
    (range_end b"\\0" means every key >= key). RANGE: a read inside the transaction.
    """

    type: OpType
    key: bytes
    value: bytes = b""
    range_end: bytes | None = None
    limit: int = 0

    @classmethod
    def put(cls, key: bytes, value: bytes) -> Op:
        return cls(OpType.PUT, key, value)

    @classmethod
    def delete(cls, key: bytes, range_end: bytes | None = None) -> Op:
        return cls(OpType.DELETE, key, range_end=range_end)

    @classmethod
    def range(cls, key: bytes, range_end: bytes | None = None, limit: int = 0) -> Op:
        return cls(OpType.RANGE, key, range_end=range_end, limit=limit)


@dataclass(frozen=True, slots=True)
class OpResult:
    """Result of one op: prev_kvs holds the previous value(s) for PUT/DELETE; deleted
    counts deleted keys; kvs holds RANGE results."""

    type: OpType
    prev_kvs: tuple[KeyValue, ...] = ()
    deleted: int = 0
    kvs: tuple[KeyValue, ...] = ()
    more: bool = False


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Outcome of a transaction.

    succeeded: all compares held and the success branch ran (else the failure branch).
    revision: the store revision after the transaction.
    failed_compare: index of the first compare that did not hold, or None.
    results: one OpResult per op of the branch that ran.
    """

    succeeded: bool
    revision: int
    failed_compare: int | None
    results: tuple[OpResult, ...]


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Result of a range read. `more` means the limit cut the result; continue from
    the last key + b"\\0". `count` is the number of keys in the range (ignoring limit)."""

    kvs: list[KeyValue]
    more: bool
    count: int
    revision: int


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A change: for DELETE, kv carries the key and mod_revision of the deletion."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """A member as seen by this replica; match_index/lag only known on the leader."""

    address: str
    connected: bool
    match_index: int | None = None
    lag: int | None = None


@dataclass(frozen=True)
class StoreStatus:
    """One replica's view of the cluster."""

    id: str
    address: str
    leader: str | None
    is_leader: bool
    term: int
    commit_index: int
    applied_index: int
    members: list[MemberStatus] = field(default_factory=list)
    revision: int = 0
    compact_revision: int = 0
    state_hash: str = ""
    journal_entries: int = 0
    has_quorum: bool = False
