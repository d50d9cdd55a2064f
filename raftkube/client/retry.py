"""The retry policy: which failures may be retried, where, and after how long. Pure.

Every call the SDK makes carries a `Safety`, and every failure is classified into a
`Failure`. `decide()` maps (safety, failure, attempt) to an `Action`:

    failure \\ safety      READ     CREATE        GUARDED,         UNSAFE
                                                 IDEMPOTENT
    not sent / refused    retry    retry         retry            retry
    ambiguous (maybe      retry    retry, then   retry, then      raise UnknownOutcome
      applied)                     reconcile     reconcile
    answered (any other   raise    raise         raise            raise
      API error)

"not sent" means the request provably did not take effect: the connection could not be
opened, or a master answered with an Unavailable error of its own (no leader, no quorum:
the store guarantees nothing was written). "ambiguous" means the request may have been
applied: the connection broke mid-call, our deadline expired, or the master reported an
unknown outcome. A CREATE retried after an ambiguous attempt that meets AlreadyExists, or a
GUARDED write that meets Conflict / NotFound, is reconciled by the caller (see
`reconcile.py`), never reported blindly.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import grpc

from raftkube import apierrors


class Safety(enum.Enum):
    """What retrying a call may do to the cluster."""

    READ = "read"          # no effect: always safe
    CREATE = "create"      # create-if-absent: a repeat meets AlreadyExists
    GUARDED = "guarded"    # a write guarded by resourceVersion / uid preconditions
    IDEMPOTENT = "idempotent"  # repeating it leaves the same state (add a member)
    UNSAFE = "unsafe"      # a repeat could apply twice or overwrite a later write


class Failure(enum.Enum):
    NOT_SENT = "not-sent"      # provably not applied: try another master
    AMBIGUOUS = "ambiguous"    # may have been applied
    ANSWERED = "answered"      # a definite answer from the API: give it to the caller


class Action(enum.Enum):
    RETRY = "retry"            # move to another master (or the leader hint) and try again
    RAISE = "raise"            # raise the error as it is
    RAISE_UNKNOWN = "unknown"  # raise UnknownOutcome: the write may or may not have applied


@dataclass(frozen=True)
class RetryConfig:
    """Bounds of the retry loop.

    max_attempts: calls made at most for one operation (first try included).
    deadline: seconds after which no new attempt starts.
    base_backoff / max_backoff: sleep before attempt n is drawn from
        [b/2, b] with b = min(max_backoff, base_backoff * 2**(n-1)) (jittered exponential).
    call_timeout: seconds each unary attempt may take (its gRPC deadline).
    """

    max_attempts: int = 10
    deadline: float = 45.0
    base_backoff: float = 0.1
    max_backoff: float = 2.0
    call_timeout: float = 15.0


_CONNECT_FAILURES = (
    "failed to connect", "connection refused", "dns resolution failed", "no route to host",
    "name resolution", "connect failed", "handshake", "ssl_error", "network is unreachable",
)


def classify(error: grpc.RpcError | apierrors.ApiError, *, from_server: bool | None = None,
             ) -> Failure:
    """Whether a failed attempt provably did nothing, maybe did something, or was answered.

    `error` is the raw RpcError (or the ApiError already built from it); `from_server`
    says whether the status carried the API's error metadata (a master answered).
    """
    if isinstance(error, apierrors.ApiError):
        api_error = error
        server = bool(from_server)
    else:
        api_error = apierrors.from_rpc_error(error)
        server = _has_api_metadata(error)
    if server:
        if isinstance(api_error, apierrors.Unavailable):
            return Failure.NOT_SENT
        if isinstance(api_error, apierrors.UnknownOutcome):
            return Failure.AMBIGUOUS
        return Failure.ANSWERED
    code = _code(error)
    if code == grpc.StatusCode.UNAVAILABLE:
        text = api_error.message.lower()
        if any(marker in text for marker in _CONNECT_FAILURES):
            return Failure.NOT_SENT
        return Failure.AMBIGUOUS
    if code == grpc.StatusCode.FAILED_PRECONDITION and "not leader" in api_error.message:
        return Failure.NOT_SENT  # the raw KV API refuses writes on a follower
    if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                grpc.StatusCode.UNKNOWN):
        return Failure.AMBIGUOUS
    if code == grpc.StatusCode.INTERNAL and "stream" in api_error.message.lower():
        return Failure.AMBIGUOUS  # RST_STREAM / stream removed: the connection broke
    return Failure.ANSWERED


def decide(safety: Safety, failure: Failure) -> Action:
    """The table in the module docstring."""
    if failure is Failure.ANSWERED:
        return Action.RAISE
    if failure is Failure.NOT_SENT:
        return Action.RETRY
    if safety is Safety.UNSAFE:
        return Action.RAISE_UNKNOWN
    return Action.RETRY


def backoff(attempt: int, config: RetryConfig, rng: random.Random) -> float:
    """Seconds to sleep before attempt number `attempt` (2, 3, ...); 0 before the first."""
    if attempt <= 1:
        return 0.0
    ceiling = min(config.max_backoff, config.base_backoff * (2 ** (attempt - 2)))
    return rng.uniform(ceiling / 2, ceiling)


def may_start(attempt: int, elapsed: float, config: RetryConfig) -> bool:
    """Whether attempt number `attempt` may start after `elapsed` seconds."""
    return attempt <= config.max_attempts and elapsed < config.deadline


def leader_hint(error: apierrors.ApiError) -> str:
    """The leader's API address an Unavailable error names ("" when none)."""
    value = error.details.get("leader") if isinstance(error, apierrors.Unavailable) else None
    return value if isinstance(value, str) else ""


def _has_api_metadata(error: grpc.RpcError) -> bool:
    try:
        metadata = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    except Exception:
        return False
    return apierrors.ERROR_KEY in metadata


def _code(error: object) -> grpc.StatusCode:
    if isinstance(error, apierrors.ApiError):
        return error.code
    try:
        return error.code()  # type: ignore[attr-defined]
    except Exception:
        return grpc.StatusCode.UNKNOWN
