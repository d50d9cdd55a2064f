"""gRPC servicers for the store: `KVServicer` and `MaintenanceServicer`, each taking a
`Store`, so any process (the store server, a master) can mount them on its own server.

Error mapping is documented in proto/raftkube/api/v1/kv.proto. Mutating Maintenance
calls need the admin token (`admin_token(secret, cluster_name)`) in the
`raftkube-admin-token` metadata.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from typing import Any, NoReturn

import grpc

from raftkube.api.v1 import kv_pb2, kv_pb2_grpc
from raftkube.consensus.errors import (
    CompactedError,
    InvalidRequestError,
    NoQuorumError,
    NotLeaderError,
    StoreClosedError,
    StoreError,
    TxnTooLargeError,
    UnknownOutcomeError,
    ValueTooLargeError,
)
from raftkube.consensus.model import (
    Compare,
    CompareResult,
    CompareTarget,
    EventType,
    KeyValue,
    Op,
    OpResult,
    OpType,
    WatchEvent,
)
from raftkube.consensus.store import Store

ADMIN_TOKEN_METADATA = "raftkube-admin-token"
LEADER_METADATA = "raftkube-leader"
OLDEST_REVISION_METADATA = "raftkube-oldest-revision"
SNAPSHOT_CHUNK = 1 << 20

_TARGETS = {
    kv_pb2.StoreCompare.VERSION: CompareTarget.VERSION,
    kv_pb2.StoreCompare.CREATE: CompareTarget.CREATE,
    kv_pb2.StoreCompare.MOD: CompareTarget.MOD,
    kv_pb2.StoreCompare.VALUE: CompareTarget.VALUE,
}
_RESULTS = {
    kv_pb2.StoreCompare.EQUAL: CompareResult.EQUAL,
    kv_pb2.StoreCompare.GREATER: CompareResult.GREATER,
    kv_pb2.StoreCompare.LESS: CompareResult.LESS,
    kv_pb2.StoreCompare.NOT_EQUAL: CompareResult.NOT_EQUAL,
}


def admin_token(secret: bytes, cluster_name: str) -> str:
    """The token admin calls must present (derived from the cluster secret)."""
    return hmac.new(secret, b"raftkube-admin/" + cluster_name.encode(), hashlib.sha256).hexdigest()


def _range_end(raw: bytes) -> bytes | None:
    return raw if raw else None


def kv_to_pb(kv: KeyValue) -> kv_pb2.StoreKeyValue:
    return kv_pb2.StoreKeyValue(key=kv.key, value=kv.value, create_revision=kv.create_revision,
                                mod_revision=kv.mod_revision, version=kv.version)


def abort_for(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    """Map a store error to its gRPC status (see kv.proto) and abort the call."""
    if isinstance(exc, UnknownOutcomeError):
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"unknown outcome: {exc}")
    if isinstance(exc, NotLeaderError):
        context.set_trailing_metadata(((LEADER_METADATA, exc.leader or ""),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"not leader: {exc}")
    if isinstance(exc, NoQuorumError | StoreClosedError):
        context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, CompactedError):
        context.set_trailing_metadata(((OLDEST_REVISION_METADATA, str(exc.oldest_revision)),))
        context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
    if isinstance(exc, ValueTooLargeError | TxnTooLargeError):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, InvalidRequestError):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


class KVServicer(kv_pb2_grpc.KVServicer):
    """Range / Put / DeleteRange / Txn / Watch over a Store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _header(self, revision: int | None = None) -> kv_pb2.StoreResponseHeader:
        s = self._store
        return kv_pb2.StoreResponseHeader(member=s.config.node_id,
                                          revision=s.revision if revision is None else revision,
                                          leader=s.leader() or "")

    @staticmethod
    def _timeout(value: float) -> float | None:
        return value if value > 0 else None

    def Range(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            result = self._store.range(request.key, _range_end(request.range_end),
                                       request.limit, linearizable=not request.serializable)
        except StoreError as exc:
            abort_for(context, exc)
        return kv_pb2.StoreRangeResponse(header=self._header(result.revision),
                                         kvs=[kv_to_pb(kv) for kv in result.kvs],
                                         more=result.more, count=result.count)

    def Put(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            result = self._store.put(request.key, request.value,
                                     timeout=self._timeout(request.timeout_seconds))
        except StoreError as exc:
            abort_for(context, exc)
        prev = result.results[0].prev_kvs
        response = kv_pb2.StorePutResponse(header=self._header(result.revision),
                                           has_prev_kv=bool(prev))
        if prev:
            response.prev_kv.CopyFrom(kv_to_pb(prev[0]))
        return response

    def DeleteRange(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            result = self._store.delete(request.key, _range_end(request.range_end),
                                        timeout=self._timeout(request.timeout_seconds))
        except StoreError as exc:
            abort_for(context, exc)
        op = result.results[0]
        return kv_pb2.StoreDeleteRangeResponse(header=self._header(result.revision),
                                               deleted=op.deleted,
                                               prev_kvs=[kv_to_pb(kv) for kv in op.prev_kvs])

    def Txn(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            compares = [self._compare(i, c) for i, c in enumerate(request.compare)]
            success = [self._op(o) for o in request.success]
            failure = [self._op(o) for o in request.failure]
            result = self._store.txn(compares, success, failure,
                                     timeout=self._timeout(request.timeout_seconds))
        except StoreError as exc:
            abort_for(context, exc)
        return kv_pb2.StoreTxnResponse(
            header=self._header(result.revision), succeeded=result.succeeded,
            failed_compare=-1 if result.failed_compare is None else result.failed_compare,
            responses=[self._op_result(r) for r in result.results])

    @staticmethod
    def _compare(index: int, pb: Any) -> Compare:
        target = _TARGETS.get(pb.target)
        result = _RESULTS.get(pb.result)
        if target is None or result is None:
            raise InvalidRequestError(f"compare[{index}]: unknown target or result")
        value: int | bytes = pb.value if target is CompareTarget.VALUE else pb.number
        return Compare(pb.key, target, result, value)

    @staticmethod
    def _op(pb: Any) -> Op:
        kind = pb.WhichOneof("request")
        if kind == "request_put":
            return Op.put(pb.request_put.key, pb.request_put.value)
        if kind == "request_delete_range":
            return Op.delete(pb.request_delete_range.key,
                             _range_end(pb.request_delete_range.range_end))
        if kind == "request_range":
            return Op.range(pb.request_range.key, _range_end(pb.request_range.range_end),
                            pb.request_range.limit)
        raise InvalidRequestError("txn op: empty request")

    @staticmethod
    def _op_result(result: OpResult) -> Any:
        if result.type is OpType.PUT:
            put = kv_pb2.StorePutResponse(has_prev_kv=bool(result.prev_kvs))
            if result.prev_kvs:
                put.prev_kv.CopyFrom(kv_to_pb(result.prev_kvs[0]))
            return kv_pb2.StoreResponseOp(response_put=put)
        if result.type is OpType.DELETE:
            return kv_pb2.StoreResponseOp(response_delete_range=kv_pb2.StoreDeleteRangeResponse(
                deleted=result.deleted, prev_kvs=[kv_to_pb(kv) for kv in result.prev_kvs]))
        return kv_pb2.StoreResponseOp(response_range=kv_pb2.StoreRangeResponse(
            kvs=[kv_to_pb(kv) for kv in result.kvs], more=result.more, count=len(result.kvs)))

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            watch = self._store.watch(request.key, _range_end(request.range_end),
                                      request.start_revision)
        except CompactedError as exc:
            yield kv_pb2.StoreWatchResponse(header=self._header(), created=True, canceled=True,
                                            compact_revision=exc.oldest_revision)
            return
        except StoreError as exc:
            abort_for(context, exc)
        context.add_callback(watch.cancel)
        yield kv_pb2.StoreWatchResponse(header=self._header(), created=True)
        try:
            while context.is_active() and not watch.cancelled:
                batch = watch.next_batch(timeout=1.0)
                if batch:
                    yield kv_pb2.StoreWatchResponse(
                        header=self._header(batch[-1].kv.mod_revision),
                        events=[_event_to_pb(e) for e in batch])
        except CompactedError as exc:
            yield kv_pb2.StoreWatchResponse(header=self._header(), canceled=True,
                                            compact_revision=exc.oldest_revision)
        except StoreClosedError:
            return
        finally:
            watch.cancel()


def _event_to_pb(event: WatchEvent) -> Any:
    pb = kv_pb2.StoreEvent(
        type=kv_pb2.StoreEvent.PUT if event.type is EventType.PUT else kv_pb2.StoreEvent.DELETE,
        kv=kv_to_pb(event.kv), has_prev_kv=event.prev_kv is not None)
    if event.prev_kv is not None:
        pb.prev_kv.CopyFrom(kv_to_pb(event.prev_kv))
    return pb


class MaintenanceServicer(kv_pb2_grpc.MaintenanceServicer):
    """Status (open) and admin calls (need the admin token)."""

    def __init__(self, store: Store, admin_token_value: str | None = None) -> None:
        self._store = store
        self._token = admin_token_value or admin_token(store.config.secret_bytes(),
                                                       store.config.cluster_name)

    def _authorize(self, context: grpc.ServicerContext) -> None:
        presented = dict(context.invocation_metadata()).get(ADMIN_TOKEN_METADATA, "")
        if not hmac.compare_digest(str(presented), self._token):
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"admin call needs a valid {ADMIN_TOKEN_METADATA} metadata")

    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            st = self._store.status()
        except StoreError as exc:
            abort_for(context, exc)
        return kv_pb2.StoreStatusResponse(
            header=kv_pb2.StoreResponseHeader(member=st.id, revision=st.revision,
                                              raft_term=st.term, leader=st.leader or ""),
            id=st.id, address=st.address, is_leader=st.is_leader,
            commit_index=st.commit_index, applied_index=st.applied_index,
            members=[kv_pb2.StoreMember(address=m.address, connected=m.connected,
                                        match_index=-1 if m.match_index is None else m.match_index,
                                        lag=-1 if m.lag is None else m.lag) for m in st.members],
            compact_revision=st.compact_revision, state_hash=st.state_hash,
            has_quorum=st.has_quorum, journal_entries=st.journal_entries)

    def MemberAdd(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authorize(context)
        try:
            self._store.add_member(request.address)
        except StoreError as exc:
            abort_for(context, exc)
        return kv_pb2.StoreMemberResponse(header=kv_pb2.StoreResponseHeader(
            member=self._store.config.node_id, revision=self._store.revision))

    def MemberRemove(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authorize(context)
        try:
            self._store.remove_member(request.address)
        except StoreError as exc:
            abort_for(context, exc)
        return kv_pb2.StoreMemberResponse(header=kv_pb2.StoreResponseHeader(
            member=self._store.config.node_id, revision=self._store.revision))

    def TransferLeadership(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authorize(context)
        try:
            leader = self._store.transfer_leadership(request.to or None)
        except StoreError as exc:
            abort_for(context, exc)
        return kv_pb2.StoreTransferResponse(leader=leader)

    def Compact(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authorize(context)
        try:
            compacted = self._store.compact(request.revision)
        except StoreError as exc:
            abort_for(context, exc)
        return kv_pb2.StoreCompactResponse(compact_revision=compacted)

    def Snapshot(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._authorize(context)
        fd, path = tempfile.mkstemp(prefix="rk-snapshot-", dir=self._store.config.data_dir)
        os.close(fd)
        try:
            try:
                revision = self._store.save_snapshot(path)
            except StoreError as exc:
                abort_for(context, exc)
            total = os.path.getsize(path)
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(SNAPSHOT_CHUNK)
                    if not chunk:
                        break
                    yield kv_pb2.StoreSnapshotChunk(data=chunk)
            yield kv_pb2.StoreSnapshotChunk(last=True, total_size=total, revision=revision)
        finally:
            os.unlink(path)
