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

import datetime
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
        d = asdict(self)
        d["groups"] = list(self.groups)
        return json.dumps(d, sort_keys=False, separators=(",", ":"))


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
    Contract: each `write` is one complete line, flushed before it returns; a rotation
    never loses a line (rename, then a new file).
    """

    config: AuditConfig
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

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
        line = (event.to_json() + "\n").encode()
        path = Path(self.config.path)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size > 0 and size + len(line) > self.config.max_bytes:
                self._rotate(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

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
