"""The API server's gatekeeper: who is calling, may they do this, and the audit trail.

Contract: `check` returns the calling principal when the request is allowed and raises
`apierrors.Forbidden` (with the rule's reason) when not; every mutating request and every
denial is written to the audit log when one is configured.
"""

from __future__ import annotations

from collections.abc import Callable

from raftkube import apierrors
from raftkube.objects.registry import KindInfo
from raftkube.security.audit import AuditLog
from raftkube.security.grpc_auth import current_principal
from raftkube.security.principal import Principal
from raftkube.security.rbac import Authorizer

MUTATING_VERBS = frozenset({"create", "update", "patch", "delete"})


class Gatekeeper:
    """Authorizes each request of the current gRPC call's principal."""

    def __init__(self, authorizer: Authorizer, audit: AuditLog | None = None,
                 principal_source: Callable[[], Principal] = current_principal) -> None:
        self._authorizer = authorizer
        self._audit = audit
        self._principal_source = principal_source

    def principal(self) -> Principal:
        try:
            return self._principal_source()
        except LookupError as e:
            raise apierrors.Unauthenticated(str(e)) from e

    def check(self, verb: str, info: KindInfo, namespace: str | None, name: str | None, *,
              subresource: str | None = None, object_node: str | None = None) -> Principal:
        """Allow or raise Forbidden; audit mutations and denials."""
        principal = self.principal()
        decision = self._authorizer.authorize(
            principal, verb, info.kind, namespace or None, name or None,
            subresource=subresource, object_node=object_node)
        if self._audit is not None and (verb in MUTATING_VERBS or not decision.allowed
                                        or subresource in ("exec", "portforward")):
            self._audit.record(principal, verb, info.kind, namespace, name,
                               allowed=decision.allowed, reason=decision.reason,
                               code="OK" if decision.allowed else "PERMISSION_DENIED",
                               subresource=subresource)
        if not decision.allowed:
            target = f'{info.plural} "{name}"' if name else info.plural
            raise apierrors.Forbidden(f"{target} is forbidden: {decision.reason}")
        return principal
