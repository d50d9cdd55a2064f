"""The transport-free core shared by the sync and asyncio clients.

An *operation* is one logical request: the gRPC call to make, how safe it is to repeat,
how to decode the answer, and how to settle an error met after an ambiguous attempt.
`drive()` runs an operation as a generator of effects — `Invoke(address, call)` and
`Sleep(seconds)` — so the retry loop, failover, leader hints and reconciliation exist once;
`Client` performs the effects with blocking gRPC, `AsyncClient` with grpc.aio.

    drive(op) --Invoke--> transport --response / RpcError--> drive --... --> result
              --Sleep---> time.sleep / asyncio.sleep
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.api.v1 import resources_pb2
from raftkube.client import reconcile
from raftkube.client.endpoints import Endpoints
from raftkube.client.retry import (
    Action,
    Failure,
    RetryConfig,
    Safety,
    backoff,
    classify,
    decide,
    leader_hint,
    may_start,
)
from raftkube.objects import registry


@dataclass(frozen=True)
class Call:
    """One gRPC unary call: `service` ("Resources", "Admin", "KV"), method, request."""

    service: str
    method: str
    request: Message
    safety: Safety
    what: str


@dataclass(frozen=True)
class Resolved:
    """The outcome is known without another call."""

    value: Any


Settle = Callable[[apierrors.ApiError], "Operation | Resolved | None"]
"""After an ambiguous attempt, a later attempt failed with this error: an operation (a
read) whose result decides the outcome, the outcome itself, or None to raise the error as
it is. It may also raise (UnknownOutcome when the outcome cannot be told)."""


@dataclass
class Operation:
    """A call plus what to do with its answer (see module docstring)."""

    call: Call
    decode: Callable[[Any], Any] = lambda response: response
    settle: Settle | None = None
    started_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Invoke:
    address: str
    call: Call


@dataclass(frozen=True)
class Sleep:
    seconds: float


Effect = Invoke | Sleep


def drive(op: Operation, endpoints: Endpoints, config: RetryConfig, rng: random.Random,
          monotonic: Callable[[], float] = time.monotonic) -> Generator[Effect, Any, Any]:
    """Run `op` to a result or a typed ApiError, as a generator of effects.

    The runner sends the response of each Invoke back in, or throws the grpc.RpcError.
    """
    start = monotonic()
    ambiguous = False
    attempt = 0
    last_error: apierrors.ApiError | None = None
    while True:
        attempt += 1
        if not may_start(attempt, monotonic() - start, config):
            raise _gave_up(op, attempt - 1, ambiguous, last_error)
        pause = backoff(attempt, config, rng)
        if pause:
            yield Sleep(pause)
        address = endpoints.current()
        try:
            response = yield Invoke(address, op.call)
        except grpc.RpcError as rpc_error:
            error = apierrors.from_rpc_error(rpc_error)
            failure = classify(rpc_error)
        else:
            return op.decode(response)
        last_error = error
        if failure is Failure.ANSWERED:
            if ambiguous and op.settle is not None:
                follow = op.settle(error)
                if isinstance(follow, Resolved):
                    return follow.value
                if follow is not None:
                    return (yield from drive(follow, endpoints, config, rng, monotonic))
            raise error
        action = decide(op.call.safety, failure)
        if action is Action.RAISE_UNKNOWN:
            # The next call goes elsewhere: a master that swallowed this one (paused,
            # partitioned) would swallow the next one too.
            endpoints.failed(address)
            raise apierrors.UnknownOutcome(
                f"{op.call.what}: the connection to {address} failed after the request was "
                f"sent ({error.message}); it may or may not have been applied — read the "
                "object to find out")
        ambiguous = ambiguous or failure is Failure.AMBIGUOUS
        hint = leader_hint(error)
        if hint and hint != address:
            endpoints.prefer(hint)
        else:
            endpoints.failed(address)


def _gave_up(op: Operation, attempts: int, ambiguous: bool,
             last: apierrors.ApiError | None) -> apierrors.ApiError:
    why = f" (last error: {last.message})" if last is not None else ""
    if ambiguous and op.call.safety is not Safety.READ:
        return apierrors.UnknownOutcome(
            f"{op.call.what}: gave up after {attempts} attempts; an attempt may have been "
            f"applied{why}")
    return apierrors.Unavailable(f"{op.call.what}: no master answered after {attempts} "
                                 f"attempts{why}")


# ---- operations on objects ---------------------------------------------------------------


@dataclass(frozen=True)
class DeleteResult:
    """What a delete did: the object as last stored, and whether it is gone now (False while
    graceful deletion or finalizers keep it)."""

    object: Message | None
    deleted: bool


@dataclass(frozen=True)
class ListResult:
    """One page of a list: items, the store revision they were read at, continue token."""

    items: list[Message]
    resource_version: str
    continue_token: str


def _describe(info: registry.KindInfo, namespace: str, name: str) -> str:
    where = f' in namespace "{namespace}"' if info.namespaced and namespace else ""
    return f'{info.plural} "{name}"{where}'


def _unwrap(typed: Any) -> Message:
    return registry.unwrap(typed)


def namespace_of(info: registry.KindInfo, namespace: str | None,
                 default_namespace: str) -> str:
    """The namespace a request goes to: "" for cluster-scoped kinds, else the given one or
    the client's default."""
    if not info.namespaced:
        return ""
    return namespace or default_namespace


def get_op(info: registry.KindInfo, namespace: str, name: str,
           linearizable: bool = False) -> Operation:
    request = resources_pb2.GetRequest(kind=info.kind, namespace=namespace, name=name,
                                       linearizable=linearizable)
    return Operation(Call("Resources", "Get", request, Safety.READ,
                          f"get {_describe(info, namespace, name)}"), _unwrap)


def list_op(info: registry.KindInfo, namespace: str, label_selector: str = "",
            field_selector: str = "", limit: int = 0, continue_token: str = "",
            linearizable: bool = False) -> Operation:
    request = resources_pb2.ListRequest(
        kind=info.kind, namespace=namespace, label_selector=label_selector,
        field_selector=field_selector, limit=limit, continue_token=continue_token,
        linearizable=linearizable)

    def decode(response: Any) -> ListResult:
        return ListResult([_unwrap(t) for t in response.items],
                          response.metadata.resource_version,
                          response.metadata.continue_token)

    return Operation(Call("Resources", "List", request, Safety.READ,
                          f"list {info.plural}"), decode)


def create_op(obj: Message, dry_run: bool = False, clock_skew: float = 30.0) -> Operation:
    """Create; safe to retry unless the server picks the name (generateName)."""
    info = registry.for_message(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    named = bool(meta.name)
    request = resources_pb2.CreateRequest(object=registry.wrap(obj), dry_run=dry_run)
    safety = Safety.CREATE if named or dry_run else Safety.UNSAFE
    op = Operation(Call("Resources", "Create", request, safety,
                        f"create {_describe(info, meta.namespace, meta.name or '<generated>')}"),
                   _unwrap)

    def settle(error: apierrors.ApiError) -> Operation | Resolved | None:
        if not isinstance(error, apierrors.AlreadyExists) or dry_run:
            return None
        read = get_op(info, meta.namespace or ("default" if info.namespaced else ""),
                      meta.name, linearizable=True)

        def judge(stored: Any) -> Message:
            existing = _unwrap(stored)
            if reconcile.created_by_us(obj, existing, op.started_at, clock_skew):
                return existing
            raise error

        read.decode = judge
        return read

    op.settle = settle
    return op


def update_op(obj: Message, dry_run: bool = False, status: bool = False) -> Operation:
    """Update (or UpdateStatus). Guarded, hence retried, when resourceVersion is set."""
    info = registry.for_message(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    guarded = bool(meta.resource_version)
    request = resources_pb2.UpdateRequest(object=registry.wrap(obj), dry_run=dry_run)
    method = "UpdateStatus" if status else "Update"
    op = Operation(Call("Resources", method, request,
                        Safety.GUARDED if guarded or dry_run else Safety.UNSAFE,
                        f"{'update status of' if status else 'update'} "
                        f"{_describe(info, meta.namespace, meta.name)}"), _unwrap)

    def settle(error: apierrors.ApiError) -> Operation | Resolved | None:
        if not isinstance(error, apierrors.Conflict):
            return None
        read = get_op(info, meta.namespace or ("default" if info.namespaced else ""),
                      meta.name, linearizable=True)

        def judge(stored: Any) -> Message:
            current = _unwrap(stored)
            applied = (_status_bytes(obj) == _status_bytes(current) if status
                       else reconcile.update_applied(obj, current))
            if applied:
                return current
            raise apierrors.UnknownOutcome(
                f"{op.call.what}: an attempt was interrupted and the object has changed "
                f"since (resourceVersion {current.metadata.resource_version}); it cannot be "
                "told whether this update was applied before that change")

        read.decode = judge
        return read

    op.settle = settle
    return op


def _status_bytes(obj: Message) -> bytes:
    return obj.status.SerializeToString(deterministic=True)  # type: ignore[attr-defined]


def patch_op(info: registry.KindInfo, namespace: str, name: str, merge_patch_json: str,
             status: bool = False, dry_run: bool = False) -> Operation:
    """JSON merge patch: not guarded (applies to whatever version is current)."""
    request = resources_pb2.PatchRequest(kind=info.kind, namespace=namespace, name=name,
                                         merge_patch_json=merge_patch_json, status=status,
                                         dry_run=dry_run)
    return Operation(Call("Resources", "Patch", request,
                          Safety.READ if dry_run else Safety.UNSAFE,
                          f"patch {_describe(info, namespace, name)}"), _unwrap)


def apply_op(obj: Message, dry_run: bool = False) -> Operation:
    """Server-side apply: (object, "created" | "configured" | "unchanged"). Not guarded."""
    info = registry.for_message(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    request = resources_pb2.ApplyRequest(object=registry.wrap(obj), dry_run=dry_run)
    return Operation(Call("Resources", "Apply", request,
                          Safety.READ if dry_run else Safety.UNSAFE,
                          f"apply {_describe(info, meta.namespace, meta.name)}"),
                     lambda r: (_unwrap(r.object), r.action))


def delete_op(info: registry.KindInfo, namespace: str, name: str, *,
              grace_period_seconds: int | None = None, propagation_policy: str = "",
              precondition_resource_version: str = "", precondition_uid: str = "",
              dry_run: bool = False) -> Operation:
    """Delete. Guarded, hence retried, when a uid or resourceVersion precondition is given:
    after an ambiguous attempt NotFound means it is gone, and a Conflict on an object that
    is being deleted means the first attempt marked it."""
    request = resources_pb2.DeleteRequest(
        kind=info.kind, namespace=namespace, name=name,
        propagation_policy=propagation_policy,
        precondition_resource_version=precondition_resource_version,
        precondition_uid=precondition_uid, dry_run=dry_run)
    if grace_period_seconds is not None:
        request.grace_period_seconds = grace_period_seconds
    guarded = bool(precondition_uid or precondition_resource_version)
    op = Operation(Call("Resources", "Delete", request,
                        Safety.GUARDED if guarded or dry_run else Safety.UNSAFE,
                        f"delete {_describe(info, namespace, name)}"),
                   lambda r: DeleteResult(_unwrap(r.object), r.deleted))

    def settle(error: apierrors.ApiError) -> Operation | Resolved | None:
        if isinstance(error, apierrors.NotFound):
            return Resolved(DeleteResult(None, True))
        if isinstance(error, apierrors.Conflict):
            read = get_op(info, namespace, name, linearizable=True)

            def judge(stored: Any) -> DeleteResult:
                current = _unwrap(stored)
                if current.metadata.deletion_timestamp and (  # type: ignore[attr-defined]
                        not precondition_uid or current.metadata.uid == precondition_uid):  # type: ignore[attr-defined]
                    return DeleteResult(current, False)
                raise apierrors.UnknownOutcome(
                    f"{op.call.what}: an attempt was interrupted and the object has changed "
                    "since; it cannot be told whether the delete was applied")

            read.decode = judge
            return read
        return None

    op.settle = settle
    return op


def bind_pods_op(bindings: list[tuple[str, str, str, str]]) -> Operation:
    """Bind (namespace, pod, resourceVersion, node) in one transaction; each binding is
    guarded by the pod's resourceVersion."""
    request = resources_pb2.BindPodsRequest(bindings=[
        resources_pb2.Binding(namespace=ns, pod_name=pod, resource_version=rv, node_name=node)
        for ns, pod, rv, node in bindings])
    guarded = all(rv for _, _, rv, _ in bindings)
    op = Operation(Call("Resources", "BindPods", request,
                        Safety.GUARDED if guarded else Safety.UNSAFE,
                        f"bind {len(bindings)} pod(s)"),
                   lambda r: r.resource_version)

    def settle(error: apierrors.ApiError) -> None:
        if isinstance(error, apierrors.Conflict):
            raise apierrors.UnknownOutcome(
                f"{op.call.what}: an attempt was interrupted and a retry met a conflict "
                f"({error.message}); read the pods to see whether they were bound")

    op.settle = settle
    return op
