"""The API server's gatekeeper: who is calling, may they do this, and the audit trail.

Contract: `check` returns the calling principal when the request is allowed and raises
`apierrors.Forbidden` (with the rule's reason) when not; every mutating request and every
denial is written to the audit log when one is configured. `check_many` does the same for
the objects of one batched request (one audit write for all of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from raftkube import apierrors
from raftkube.objects.registry import KindInfo
from raftkube.security.audit import AuditLog, make_event
from raftkube.security.grpc_auth import current_principal
from raftkube.security.principal import Principal
from raftkube.security.rbac import Authorizer

MUTATING_VERBS = frozenset({"create", "update", "patch", "delete"})

Target = tuple[KindInfo, str | None, str | None, str | None]
"""One object of a batched request: (kind, namespace, name, node the object is bound to)."""


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
        return self.check_many(verb, [(info, namespace, name, object_node)],
                               subresource=subresource)

    def check_many(self, verb: str, targets: Sequence[Target], *,
                   subresource: str | None = None) -> Principal:
        """`check` for every target of one request: each is judged and audited (one audit
        write for the batch); Forbidden names the first target denied."""
        principal = self.principal()
        judged = [(target, self._authorizer.authorize(
            principal, verb, target[0].kind, target[1] or None, target[2] or None,
            subresource=subresource, object_node=target[3])) for target in targets]
        if self._audit is not None:
            now = self._audit.clock()
            self._audit.write_many([
                make_event(principal, verb, info.kind, namespace, name,
                           allowed=decision.allowed, reason=decision.reason,
                           code="OK" if decision.allowed else "PERMISSION_DENIED",
                           subresource=subresource, now=now)
                for (info, namespace, name, _), decision in judged
                if verb in MUTATING_VERBS or not decision.allowed
                or subresource in ("exec", "portforward")])
        for (info, _, name, _), decision in judged:
            if not decision.allowed:
                target = f'{info.plural} "{name}"' if name else info.plural
                raise apierrors.Forbidden(f"{target} is forbidden: {decision.reason}")
        return principal
