"""The SDK's retry policy, endpoint rotation and the sans-IO retry driver."""

from __future__ import annotations

import random

import grpc
import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import core
from raftkube.client.endpoints import Endpoints
from raftkube.client.retry import (
    Action,
    Failure,
    RetryConfig,
    Safety,
    backoff,
    classify,
    decide,
)
from raftkube.objects import registry


class FakeRpcError(grpc.RpcError):
    """A failed call as grpc reports it: code, details, trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str,
                 error: apierrors.ApiError | None = None):
        super().__init__(details)
        self._code, self._details = code, details
        self._metadata = error.to_metadata() if error is not None else ()

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._metadata


def server(error: apierrors.ApiError) -> FakeRpcError:
    return FakeRpcError(error.code, error.message, error)


REFUSED = FakeRpcError(grpc.StatusCode.UNAVAILABLE,
                       "failed to connect to all addresses; last error: Connection refused")
RESET = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed")
TIMEOUT = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


@pytest.mark.parametrize("error, failure", [
    (REFUSED, Failure.NOT_SENT),
    (RESET, Failure.AMBIGUOUS),
    (TIMEOUT, Failure.AMBIGUOUS),
    (server(apierrors.Unavailable("no quorum")), Failure.NOT_SENT),
    (server(apierrors.UnknownOutcome("store timeout")), Failure.AMBIGUOUS),
    (server(apierrors.NotFound("x")), Failure.ANSWERED),
    (server(apierrors.Conflict("x")), Failure.ANSWERED),
    (FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "not leader: m2"), Failure.NOT_SENT),
    (FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "no"), Failure.ANSWERED),
])
def test_classify(error, failure) -> None:
    assert classify(error) is failure


def test_decide_table() -> None:
    assert decide(Safety.UNSAFE, Failure.AMBIGUOUS) is Action.RAISE_UNKNOWN
    assert decide(Safety.UNSAFE, Failure.NOT_SENT) is Action.RETRY
    for safety in (Safety.READ, Safety.CREATE, Safety.GUARDED, Safety.IDEMPOTENT):
        assert decide(safety, Failure.AMBIGUOUS) is Action.RETRY
        assert decide(safety, Failure.ANSWERED) is Action.RAISE


def test_backoff_is_bounded_and_jittered() -> None:
    config = RetryConfig(base_backoff=0.1, max_backoff=1.0)
    rng = random.Random(1)
    assert backoff(1, config, rng) == 0
    values = [backoff(n, config, rng) for n in range(2, 20)]
    assert all(0 < v <= 1.0 for v in values)
    assert 0.05 <= values[0] <= 0.1
    assert len(set(values)) == len(values)


def test_endpoints_rotate_and_follow_hints() -> None:
    ep = Endpoints(["a", "b", "c"])
    assert ep.current() == "a"
    assert ep.failed("a") == "b"
    assert ep.failed("a") == "b"  # someone else already moved on
    assert ep.prefer("d") == "d" and ep.addresses == ("a", "b", "c", "d")
    assert ep.failed("d") == "a"


def config_map(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = "default"
    cm.data.update(data)
    return cm


def stored(cm: core_pb2.ConfigMap, created: str = "2030-01-01T00:00:00Z") -> core_pb2.ConfigMap:
    out = core_pb2.ConfigMap()
    out.CopyFrom(cm)
    out.metadata.uid = "u1"
    out.metadata.resource_version = "7"
    out.metadata.creation_timestamp = created
    return out


def run(op: core.Operation, outcomes: list, addresses=("a", "b", "c"),
        config: RetryConfig | None = None, endpoints: Endpoints | None = None):
    """Drive `op`, answering each Invoke with the next outcome (an exception to throw or a
    response); returns (result or raised error, addresses called)."""
    endpoints = endpoints or Endpoints(list(addresses))
    gen = core.drive(op, endpoints, config or RetryConfig(), random.Random(0),
                     monotonic=lambda: 0.0)
    called: list[str] = []
    value, error = None, None
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(value)
        except StopIteration as done:
            return done.value, called
        except apierrors.ApiError as e:
            return e, called
        value, error = None, None
        if isinstance(effect, core.Sleep):
            continue
        called.append(effect.address)
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            error = outcome
        else:
            value = outcome


def test_reads_fail_over_until_a_master_answers() -> None:
    info = registry.by_kind("ConfigMap")
    answer = registry.wrap(stored(config_map("x")))
    result, called = run(core.get_op(info, "default", "x"), [REFUSED, RESET, answer])
    assert result.metadata.uid == "u1" and called == ["a", "b", "c"]


def test_unsafe_write_interrupted_is_unknown_outcome() -> None:
    result, called = run(core.apply_op(config_map("x")), [RESET])
    assert isinstance(result, apierrors.UnknownOutcome) and called == ["a"]


def test_after_an_unknown_outcome_the_next_call_goes_to_another_master() -> None:
    # A paused leader swallows calls until they time out: found by the chaos suite, where
    # every agent's Lease renewal kept timing out on it and all nodes fenced themselves.
    endpoints = Endpoints(["a", "b", "c"])
    result, called = run(core.apply_op(config_map("x")), [TIMEOUT], endpoints=endpoints)
    assert isinstance(result, apierrors.UnknownOutcome) and called == ["a"]
    assert endpoints.current() == "b"


def test_unsafe_write_refused_is_retried() -> None:
    answer = core.resources_pb2.ApplyResponse(object=registry.wrap(stored(config_map("x"))),
                                              action="created")
    result, called = run(core.apply_op(config_map("x")), [REFUSED, answer])
    assert result[1] == "created" and called == ["a", "b"]


def test_leader_hint_is_followed() -> None:
    hint = server(apierrors.Unavailable("not the leader", leader="c"))
    result, called = run(core.Operation(core.Call("Admin", "AddMaster", None, Safety.IDEMPOTENT,
                                                  "add")), [hint, "ok"])
    assert result == "ok" and called == ["a", "c"]


def test_create_retried_meets_its_own_object() -> None:
    sent = config_map("x", k="v")
    op = core.create_op(sent)
    mine = registry.wrap(stored(sent))
    exists = server(apierrors.AlreadyExists('configmaps "x" already exists'))
    result, called = run(op, [RESET, exists, mine])
    assert not isinstance(result, Exception) and result.metadata.uid == "u1"
    assert called == ["a", "b", "b"]


def test_create_retried_meets_someone_elses_object() -> None:
    sent = config_map("x", k="v")
    theirs = registry.wrap(stored(config_map("x", k="other")))
    exists = server(apierrors.AlreadyExists('configmaps "x" already exists'))
    result, _ = run(core.create_op(sent), [RESET, exists, theirs])
    assert isinstance(result, apierrors.AlreadyExists)


def test_create_retried_meets_an_older_identical_object() -> None:
    sent = config_map("x", k="v")
    old = registry.wrap(stored(sent, created="2001-01-01T00:00:00Z"))
    exists = server(apierrors.AlreadyExists("exists"))
    result, _ = run(core.create_op(sent), [RESET, exists, old])
    assert isinstance(result, apierrors.AlreadyExists)


def test_create_without_interruption_reports_already_exists_directly() -> None:
    exists = server(apierrors.AlreadyExists("exists"))
    result, called = run(core.create_op(config_map("x")), [exists])
    assert isinstance(result, apierrors.AlreadyExists) and called == ["a"]


def test_generate_name_create_is_not_retried_when_interrupted() -> None:
    cm = config_map("")
    cm.metadata.generate_name = "x-"
    result, _ = run(core.create_op(cm), [RESET])
    assert isinstance(result, apierrors.UnknownOutcome)


def test_guarded_update_interrupted_then_conflict_checks_content() -> None:
    sent = stored(config_map("x", k="new"))
    conflict = server(apierrors.Conflict("modified"))
    applied = stored(config_map("x", k="new"))
    applied.metadata.resource_version = "8"
    result, _ = run(core.update_op(sent), [RESET, conflict, registry.wrap(applied)])
    assert result.metadata.resource_version == "8"
    other = stored(config_map("x", k="someone else"))
    result, _ = run(core.update_op(sent), [RESET, conflict, registry.wrap(other)])
    assert isinstance(result, apierrors.UnknownOutcome)


def test_unguarded_update_interrupted_is_unknown() -> None:
    result, _ = run(core.update_op(config_map("x")), [TIMEOUT])
    assert isinstance(result, apierrors.UnknownOutcome)


def test_guarded_delete_interrupted_then_not_found_is_deleted() -> None:
    info = registry.by_kind("ConfigMap")
    op = core.delete_op(info, "default", "x", precondition_uid="u1")
    result, _ = run(op, [RESET, server(apierrors.NotFound("gone"))])
    assert result == core.DeleteResult(None, True)


def test_gives_up_after_max_attempts() -> None:
    info = registry.by_kind("ConfigMap")
    result, called = run(core.get_op(info, "default", "x"), [REFUSED] * 3,
                         config=RetryConfig(max_attempts=3))
    assert isinstance(result, apierrors.Unavailable) and len(called) == 3
    result, _ = run(core.create_op(config_map("x")), [RESET, REFUSED, REFUSED],
                    config=RetryConfig(max_attempts=3))
    assert isinstance(result, apierrors.UnknownOutcome)
