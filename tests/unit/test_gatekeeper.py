"""The gatekeeper: batched checks judge and audit every object, with one audit write."""

from __future__ import annotations

import json

import pytest

from raftkube import apierrors
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.objects.registry import by_kind
from raftkube.security.audit import AuditConfig, AuditLog
from raftkube.security.principal import Principal
from raftkube.security.rbac import Decision

POD = by_kind("Pod")
BOB = Principal("bob", ("dev",))


class DenyNamed:
    """Allows everything but objects named 'secret-*'."""

    def authorize(self, principal, verb, kind, namespace, name, *, subresource=None,
                  object_node=None) -> Decision:
        if name and name.startswith("secret-"):
            return Decision(False, f"{name} is off limits")
        return Decision(True, "allowed")


class CountingAudit(AuditLog):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def write_many(self, events) -> None:
        self.batches.append(len(events))
        super().write_many(events)


def _gate(tmp_path) -> tuple[Gatekeeper, CountingAudit]:
    audit = CountingAudit(AuditConfig(tmp_path / "audit.log"), clock=lambda: 1_700_000_000.0)
    return Gatekeeper(DenyNamed(), audit, principal_source=lambda: BOB), audit


def _lines(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]


def test_check_many_audits_every_object_in_one_write(tmp_path) -> None:
    gate, audit = _gate(tmp_path)
    assert gate.check_many("create", [(POD, "dev", f"p{i}", None) for i in range(50)],
                           subresource="binding") == BOB
    assert audit.batches == [50]
    lines = _lines(tmp_path)
    assert [x["name"] for x in lines] == [f"p{i}" for i in range(50)]
    assert {(x["decision"], x["subresource"], x["user"]) for x in lines} == {
        ("allow", "binding", "bob")}


def test_check_many_forbids_the_first_denied_and_audits_the_denial(tmp_path) -> None:
    gate, _ = _gate(tmp_path)
    targets = [(POD, "dev", "ok", None), (POD, "dev", "secret-a", None),
               (POD, "dev", "secret-b", None)]
    with pytest.raises(apierrors.Forbidden, match="secret-a"):
        gate.check_many("create", targets)
    assert [(x["name"], x["decision"]) for x in _lines(tmp_path)] == [
        ("ok", "allow"), ("secret-a", "deny"), ("secret-b", "deny")]


def test_allowed_reads_are_not_audited(tmp_path) -> None:
    gate, audit = _gate(tmp_path)
    gate.check("get", POD, "dev", "web")
    gate.check_many("list", [(POD, "dev", None, None)])
    assert audit.batches == [0, 0]
    assert not (tmp_path / "audit.log").exists()
