"""The API's error vocabulary, shared by the server (raise -> gRPC status) and the SDK
(gRPC status -> typed exception).

Each error travels as a gRPC status code plus trailing metadata:
`raftkube-error` = the error class name, `raftkube-error-details` = JSON details
(field errors for Invalid, versions for Conflict, oldest revision for Compacted).
A status without that metadata (a proxy, a dead connection) maps by code alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import grpc

from raftkube.objects.errors import FieldError

ERROR_KEY = "raftkube-error"
DETAILS_KEY = "raftkube-error-details"


class ApiError(Exception):
    """Base of every error the API returns. `message` is one readable line."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((ERROR_KEY, type(self).__name__), (DETAILS_KEY, json.dumps(self.details)))

    def abort(self, context: grpc.ServicerContext) -> None:
        """End the RPC with this error (raises, as `context.abort` does)."""
        context.set_trailing_metadata(self.to_metadata())
        context.abort(self.code, self.message)


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Conflict(ApiError):
    """A compare failed: the object changed since the resourceVersion the caller sent."""

    code = grpc.StatusCode.ABORTED


class Invalid(ApiError):
    """The object or request is malformed; `field_errors` name every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, field_errors: Sequence[FieldError] = (), **details: Any):
        errors = list(field_errors)
        details["field_errors"] = [[e.path, e.reason] for e in errors]
        super().__init__(message, **details)
        self.field_errors = errors


class TooLarge(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Forbidden(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(ApiError):
    """No master could serve the call (no quorum, all unreachable); safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE


class UnknownOutcome(ApiError):
    """A write was sent but its result is unknown: it may or may not have been applied."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Compacted(ApiError):
    """A watch asked for history that is gone; `oldest_revision` is the first one kept."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Internal(ApiError):
    code = grpc.StatusCode.INTERNAL


_BY_NAME: dict[str, type[ApiError]] = {
    cls.__name__: cls
    for cls in (NotFound, AlreadyExists, Conflict, Invalid, TooLarge, Unauthenticated,
                Forbidden, Unavailable, UnknownOutcome, Compacted, Internal)
}
_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.INVALID_ARGUMENT: Invalid,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooLarge,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: UnknownOutcome,
    grpc.StatusCode.OUT_OF_RANGE: Compacted,
}


def from_rpc_error(error: grpc.RpcError) -> ApiError:
    """The typed error for a failed call (by its metadata, else by its code)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or str(code)
    metadata = dict(error.trailing_metadata() or ()) if hasattr(error, "trailing_metadata") else {}
    name = metadata.get(ERROR_KEY)
    details: dict[str, Any] = {}
    raw = metadata.get(DETAILS_KEY)
    if raw:
        try:
            details = json.loads(raw)
        except ValueError:
            details = {}
    cls = _BY_NAME.get(name or "") or _BY_CODE.get(code, Internal)
    if cls is Invalid:
        fields = [FieldError(p, m) for p, m in details.pop("field_errors", [])]
        return Invalid(message, fields, **details)
    return cls(message, **details)
