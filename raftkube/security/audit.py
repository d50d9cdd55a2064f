"""The audit log: one JSON line per request that the API server judged.

A line holds: time (ISO-8601 UTC), user, groups, verb, kind, namespace, name,
subresource, decision ("allow"/"deny"), reason, code (the gRPC status name the call
ended with, e.g. "OK", "PERMISSION_DENIED", "CONFLICT" as the server reports it).
Object contents are never logged, so no secret reaches the log.

Rotation by size: before a line would push the file past `max_bytes`, the file becomes
`PATH.1` (the older ones shift to `.2` ... `.backups`; the oldest is dropped) and a new
file starts. Files are created with mode 0600.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from raftkube.security.principal import Principal


@dataclass(frozen=True)
class AuditConfig:
    """Where and how much to audit.

    path: the live log file; rotated files are PATH.1 (newest) to PATH.<backups>.
    max_bytes: size at which the file rotates (a single line longer than this still goes
      into a file of its own).
    backups: how many rotated files to keep (0 = drop the old file on rotation).
    """

    path: Path
    max_bytes: int = 50 * 1024 * 1024
    backups: int = 5


@dataclass(frozen=True)
class AuditEvent:
    """One audited request."""

    time: str
    user: str
    groups: tuple[str, ...]
    verb: str
    kind: str
    namespace: str
    name: str
    subresource: str
    decision: str
    reason: str
    code: str

    def to_json(self) -> str:
        # fields spelled out: dataclasses.asdict deep-copies every value and was most of
        # the cost of auditing a batch of 100 pod creates
        return json.dumps({"time": self.time, "user": self.user, "groups": list(self.groups),
                           "verb": self.verb, "kind": self.kind, "namespace": self.namespace,
                           "name": self.name, "subresource": self.subresource,
                           "decision": self.decision, "reason": self.reason,
                           "code": self.code}, separators=(",", ":"))


def make_event(principal: Principal, verb: str, kind: str, namespace: str | None,
               name: str | None, *, allowed: bool, reason: str, code: str,
               subresource: str | None = None, now: float) -> AuditEvent:
    """An AuditEvent for a request judged at Unix time `now`."""
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    return AuditEvent(stamp, principal.name, tuple(principal.groups), verb, kind,
                      namespace or "", name or "", subresource or "",
                      "allow" if allowed else "deny", reason, code)


@dataclass
class AuditLog:
    """Appends audit events to a size-rotated JSON-lines file. Thread-safe.

    clock: Unix time source for `record`.
    Contract: each `write` / `write_many` appends complete lines, in order, flushed (written
    to the file, not fsynced) before it returns; a rotation never loses a line (rename,
    then a new file). The file is kept open between writes; each call checks (one stat)
    that the path still names the open file and reopens it otherwise (removed or rotated
    by someone else), so a batch costs one stat and one write, not five calls per line.
    """

    config: AuditConfig
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _fd: int | None = field(default=None, init=False, repr=False)
    _file_id: tuple[int, int] = field(default=(0, 0), init=False, repr=False)

    def record(self, principal: Principal, verb: str, kind: str, namespace: str | None,
               name: str | None, *, allowed: bool, reason: str, code: str,
               subresource: str | None = None) -> AuditEvent:
        """Build and write the event for one request; returns it."""
        event = make_event(principal, verb, kind, namespace, name, allowed=allowed,
                           reason=reason, code=code, subresource=subresource,
                           now=self.clock())
        self.write(event)
        return event

    def write(self, event: AuditEvent) -> None:
        self.write_many([event])

    def write_many(self, events: Sequence[AuditEvent]) -> None:
        """Append one line per event, in order, with one write per file touched (a batch
        that crosses `max_bytes` is split at the rotation, like single writes)."""
        lines = [(event.to_json() + "\n").encode() for event in events]
        if not lines:
            return
        path = Path(self.config.path)
        with self._lock:
            size = self._open(path)
            chunk: list[bytes] = []
            for line in lines:
                if size > 0 and size + len(line) > self.config.max_bytes:
                    self._append(b"".join(chunk))
                    chunk = []
                    self._close()
                    self._rotate(path)
                    size = self._open(path)
                chunk.append(line)
                size += len(line)
            self._append(b"".join(chunk))

    def close(self) -> None:
        """Close the open file (the next write reopens it)."""
        with self._lock:
            self._close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _open(self, path: Path) -> int:
        """Make sure the open file is the one at `path`; returns its size."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and self._fd is not None and (st.st_dev, st.st_ino) == self._file_id:
            return st.st_size
        self._close()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        st = os.fstat(self._fd)
        self._file_id = (st.st_dev, st.st_ino)
        return st.st_size

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            assert self._fd is not None
            view = view[os.write(self._fd, view):]

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _rotate(self, path: Path) -> None:
        backups = self.config.backups
        if backups <= 0:
            path.unlink()
            return
        oldest = path.with_name(f"{path.name}.{backups}")
        if oldest.exists():
            oldest.unlink()
        for i in range(backups - 1, 0, -1):
            src = path.with_name(f"{path.name}.{i}")
            if src.exists():
                os.replace(src, path.with_name(f"{path.name}.{i + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))

    def files(self) -> list[Path]:
        """The live file then the rotated ones that exist, newest first."""
        path = Path(self.config.path)
        out = [path] if path.exists() else []
        for i in range(1, self.config.backups + 1):
            p = path.with_name(f"{path.name}.{i}")
            if p.exists():
                out.append(p)
        return out
