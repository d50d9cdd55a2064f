"""Typed errors raised by the replicated store.

Every error a caller can act on has its own class; all derive from `StoreError`.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by raftkube.consensus."""


class CompactedError(StoreError):
    """The requested revision is older than the oldest revision still kept in history.

    `oldest_revision` is the first revision a watch can still start from; the caller
    should relist (range) and watch from the list's revision + 1.
    """

    def __init__(self, requested_revision: int, oldest_revision: int) -> None:
        super().__init__(
            f"revision {requested_revision} has been compacted; "
            f"the oldest revision still available is {oldest_revision}"
        )
        self.requested_revision = requested_revision
        self.oldest_revision = oldest_revision


class UnknownOutcomeError(StoreError):
    """The write was submitted but no outcome arrived in time: it may still be applied.

    Callers must treat the write as possibly applied (re-read before retrying a
    non-idempotent change).
    """


class NotLeaderError(StoreError):
    """The operation needs the Raft leader and this replica is not it.

    `leader` is the last known leader's Raft address, or None.
    """

    def __init__(self, message: str, leader: str | None = None) -> None:
        super().__init__(message)
        self.leader = leader


class NoQuorumError(StoreError):
    """No leader / no majority reachable: the operation was definitely not applied."""


class ValueTooLargeError(StoreError):
    """A value is larger than the store accepts (`StoreConfig.max_value_bytes`)."""


class TxnTooLargeError(StoreError):
    """A transaction has too many operations or too many bytes in total."""


class StoreClosedError(StoreError):
    """The store was stopped (or never started); no operation is possible."""


class InvalidRequestError(StoreError):
    """A request is malformed (empty key, bad compare target, bad range)."""


class SnapshotError(StoreError):
    """A snapshot file is unreadable, truncated or fails its checksum."""


class ConfigError(StoreError):
    """A StoreConfig field is missing or invalid; the message names the field."""
