"""The audit log: JSON lines with who did what and the outcome, rotated by size."""

from __future__ import annotations

import json
import os
import threading

from raftkube.security.audit import AuditConfig, AuditEvent, AuditLog, make_event
from raftkube.security.principal import Principal

BOB = Principal("bob", ("dev",))


def test_lines_hold_who_what_and_outcome(tmp_path) -> None:
    log = AuditLog(AuditConfig(tmp_path / "audit.log"), clock=lambda: 1_700_000_000.25)
    log.record(BOB, "delete", "secrets", "prod", "db", allowed=False,
               reason='user "bob" cannot delete secrets in namespace "prod"',
               code="PERMISSION_DENIED")
    log.record(BOB, "update", "pods", "dev", "web", subresource="status", allowed=True,
               reason="allowed", code="OK")
    lines = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert lines[0] == {
        "time": "2023-11-14T22:13:20.250Z", "user": "bob", "groups": ["dev"],
        "verb": "delete", "kind": "secrets", "namespace": "prod", "name": "db",
        "subresource": "", "decision": "deny",
        "reason": 'user "bob" cannot delete secrets in namespace "prod"',
        "code": "PERMISSION_DENIED"}
    assert lines[1]["decision"] == "allow" and lines[1]["subresource"] == "status"
    assert os.stat(tmp_path / "audit.log").st_mode & 0o777 == 0o600


def test_rotation_by_size_keeps_the_configured_backups(tmp_path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(AuditConfig(path, max_bytes=1000, backups=2))
    for i in range(60):
        log.record(BOB, "get", "pods", "dev", f"p{i:03d}", allowed=True, reason="r", code="OK")
    files = log.files()
    assert [f.name for f in files] == ["audit.log", "audit.log.1", "audit.log.2"]
    assert not (tmp_path / "audit.log.3").exists()
    for f in files:
        assert f.stat().st_size <= 1000
    # Newest lines are in the live file, in order, nothing torn.
    names = [json.loads(x)["name"] for f in reversed(files) for x in f.read_text().splitlines()]
    assert names == sorted(names)
    assert names[-1] == "p059"


def test_concurrent_writers_never_interleave_lines(tmp_path) -> None:
    log = AuditLog(AuditConfig(tmp_path / "a.log", max_bytes=10_000, backups=50))

    def writer(n: int) -> None:
        for i in range(100):
            log.record(Principal(f"u{n}"), "get", "pods", "ns", f"{n}-{i}", allowed=True,
                       reason="x" * 50, code="OK")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [json.loads(x) for f in log.files() for x in f.read_text().splitlines()]
    assert len(records) == 400
    assert len({r["name"] for r in records}) == 400


def _event(name: str) -> AuditEvent:
    return make_event(BOB, "create", "pods", "dev", name, allowed=True, reason="r",
                      code="OK", now=1_700_000_000.0)


def test_write_many_appends_every_line_in_one_write(tmp_path, monkeypatch) -> None:
    log = AuditLog(AuditConfig(tmp_path / "audit.log"))
    log.write(_event("first"))
    writes: list[int] = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(len(data))
                        or real_write(fd, data))
    log.write_many([_event(f"p{i}") for i in range(100)])
    assert len(writes) == 1
    names = [json.loads(x)["name"] for x in (tmp_path / "audit.log").read_text().splitlines()]
    assert names == ["first"] + [f"p{i}" for i in range(100)]


def test_write_many_rotates_inside_a_batch_like_single_writes(tmp_path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(AuditConfig(path, max_bytes=1000, backups=30))
    log.write_many([_event(f"p{i:03d}") for i in range(60)])
    files = log.files()
    assert len(files) > 2
    for f in files:
        assert f.stat().st_size <= 1000
    names = [json.loads(x)["name"] for f in reversed(files) for x in f.read_text().splitlines()]
    assert names == [f"p{i:03d}" for i in range(60)]


def test_a_removed_file_is_recreated_on_the_next_write(tmp_path) -> None:
    path = tmp_path / "logs" / "audit.log"
    log = AuditLog(AuditConfig(path))
    log.write(_event("before"))
    path.unlink()
    log.write(_event("after"))
    assert [json.loads(x)["name"] for x in path.read_text().splitlines()] == ["after"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    log.close()


def test_a_line_holds_every_field_of_the_event() -> None:
    """to_json spells its fields out (for speed); a field added to AuditEvent and not to
    the line would be lost from the audit log."""
    event = make_event(Principal("alice", ("devs", "ops")), "create", "Pod", "web", "p-1",
                       allowed=False, reason="forbidden", code="403", subresource="status",
                       now=0.0)
    line = json.loads(event.to_json())
    assert list(line) == list(AuditEvent.__dataclass_fields__)
    assert line["groups"] == ["devs", "ops"] and line["subresource"] == "status"
    assert line["decision"] == "deny" and line["time"] == "1970-01-01T00:00:00.000Z"
