"""Where a watch stands, so it can resume on any master without gaps or duplicates. Pure.

Revisions are global and the same on every master. Several objects may change in one
transaction (one revision), so a stream that breaks in the middle of a revision has
delivered only some of its events; the tracker therefore resumes from the last revision it
has *completely* seen and drops the events of the next revision it already delivered.

    list at R            -> complete_through = R
    event (r, key)       -> r > pending: complete_through = pending, pending = r, keys = {key}
                            r == pending: keys += key;   r < pending or seen: duplicate
    BOOKMARK r           -> complete_through = r
    resume               -> Watch(resource_version = complete_through)
    Compacted            -> relist at R', emit the difference from what was delivered
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.message import Message

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"

Key = tuple[str, str]


@dataclass(frozen=True)
class WatchEvent:
    """One change: type ADDED / MODIFIED / DELETED (object after the change; for DELETED
    the last state) or BOOKMARK (object None); `resource_version` is the store revision."""

    type: str
    object: Message | None
    resource_version: str


def key_of(obj: Message) -> Key:
    meta = obj.metadata  # type: ignore[attr-defined]
    return (meta.namespace, meta.name)


def _rv(obj: Message) -> int:
    return int(obj.metadata.resource_version or 0)  # type: ignore[attr-defined]


class WatchTracker:
    """Resume point, duplicate filter and the last delivered state of every object."""

    def __init__(self, start_revision: int = 0) -> None:
        self.complete_through = start_revision
        self._pending = start_revision
        self._pending_keys: set[Key] = set()
        self._known: dict[Key, Message] = {}

    @property
    def resume_version(self) -> str:
        """The resourceVersion to send when (re)opening the stream."""
        return str(self.complete_through)

    def known(self) -> dict[Key, Message]:
        """The last delivered state of every object the watch saw (a copy of the mapping)."""
        return dict(self._known)

    def accept(self, event: WatchEvent) -> bool:
        """Record an event from the stream; False when it is a duplicate to drop."""
        revision = int(event.resource_version or 0)
        if event.type == BOOKMARK:
            if revision >= self._pending:
                self.complete_through = revision
                self._pending, self._pending_keys = revision, set()
            return False
        if event.object is None:
            return False
        key = key_of(event.object)
        if revision <= self.complete_through or revision < self._pending:
            return False
        if revision == self._pending:
            if key in self._pending_keys:
                return False
            self._pending_keys.add(key)
        else:
            self.complete_through = self._pending
            self._pending, self._pending_keys = revision, {key}
        if event.type == DELETED:
            self._known.pop(key, None)
        else:
            self._known[key] = event.object
        return True

    def relist(self, items: Iterable[Message], revision: int) -> list[WatchEvent]:
        """The state at `revision` from a (re)list: the events that turn what was delivered
        into it (ADDED for new objects, MODIFIED for changed ones, DELETED for vanished
        ones, in key order), after which the watch resumes from `revision`."""
        fresh = {key_of(obj): obj for obj in items}
        events: list[WatchEvent] = []
        for key in sorted(set(fresh) | set(self._known)):
            new, old = fresh.get(key), self._known.get(key)
            if new is not None and old is None:
                events.append(WatchEvent(ADDED, new, str(_rv(new))))
            elif new is not None and old is not None and _rv(new) != _rv(old):
                events.append(WatchEvent(MODIFIED, new, str(_rv(new))))
            elif new is None and old is not None:
                events.append(WatchEvent(DELETED, old, str(revision)))
        self._known = fresh
        self.complete_through = self._pending = revision
        self._pending_keys = set()
        return events
