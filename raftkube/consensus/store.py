"""`Store`: the thread-safe facade of one replica of the Raft-replicated KV store.

    callers (API server, gRPC KV service)
        |  txn/put/delete -> command -> Raft log (majority fsync) -> apply on every replica
        |  range (serializable: local; linearizable: after a barrier through the log)
        |  watch (from local history; identical revisions on every replica)
        v
    Store -> RaftNode (pysyncobj subclass, raft_glue) -> DurableJournal / OutboxTransport
          -> KVState (apply table, history, snapshot)
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pysyncobj import SyncObjException
from pysyncobj.transport import TransportNotReadyError

from raftkube.consensus.config import StoreConfig
from raftkube.consensus.errors import (
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
    MemberStatus,
    Op,
    OpType,
    RangeResult,
    StoreStatus,
    TxnResult,
)
from raftkube.consensus.raft_glue import FAIL, ApplyFailure, RaftNode
from raftkube.consensus.snapshot_file import (
    Snapshot,
    bootstrap_from_snapshot,
    force_new_cluster,
    write_snapshot,
)
from raftkube.consensus.state import (
    KVState,
    StateCapture,
    encode_barrier,
    encode_capture,
    encode_compact,
    encode_txn,
)
from raftkube.consensus.watch import Watch
from raftkube.logging_config import get_logger

__all__ = ["Store", "bootstrap_from_snapshot", "force_new_cluster"]

log = get_logger(__name__)

LeadershipListener = Callable[[bool, int], None]


class _BarrierRound:
    """Readers waiting for one read-barrier proposal."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: tuple[Any, int] = (None, FAIL.SUCCESS)


class Store:
    """One replica. Create, `start()`, use from any thread, `stop()`."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._state = KVState(config.history_max_revisions)
        self._node: RaftNode | None = None
        self._closed = threading.Event()
        self._closed.set()
        self._listeners: list[LeadershipListener] = []
        self._listeners_lock = threading.Lock()
        self._events: queue.SimpleQueue[tuple[bool, int] | None] = queue.SimpleQueue()
        self._notifier: threading.Thread | None = None
        self._barrier_lock = threading.Lock()
        self._barrier_next: _BarrierRound | None = None
        self._barrier_in_flight = False

    # ---- lifecycle ----

    def start(self) -> None:
        """Open the data dir, bind the Raft port and join the cluster. Raises ConfigError
        (e.g. no cluster secret) or StoreError (port not bindable) - never half-started."""
        self.config.validate()
        self.config.secret_bytes()
        os.makedirs(self.config.data_dir, mode=0o700, exist_ok=True)
        try:
            self._node = RaftNode(self.config, self._state, self._on_leadership_changed)
        except SyncObjException as exc:
            raise StoreError(f"raft_address {self.config.raft_address}: cannot bind "
                             f"({exc.errorCode})") from exc
        self._closed.clear()
        self._notifier = threading.Thread(target=self._notify_loop, name="store-leadership",
                                          daemon=True)
        self._notifier.start()
        self._node.start()
        try:
            self._node.waitReady()
        except TransportNotReadyError as exc:
            self.stop()
            raise StoreError(f"raft_address {self.config.raft_address}: cannot bind") from exc
        log.info("store started", node=self.config.node_id, raft=self.config.raft_address)

    def stop(self) -> None:
        """Stop the replica (journal synced and closed). Idempotent."""
        if self._closed.is_set() and self._node is None:
            return
        self._closed.set()
        node, self._node = self._node, None
        if node is not None:
            node.stop()
        self._events.put(None)
        self._state.wake_watchers()

    def _require_node(self) -> RaftNode:
        node = self._node
        if node is None or self._closed.is_set():
            raise StoreClosedError("store is not running")
        return node

    # ---- writes ----

    def txn(self, compares: Sequence[Compare], success: Sequence[Op],
            failure: Sequence[Op] = (), timeout: float | None = None) -> TxnResult:
        """Apply atomically: if every compare holds run `success`, else `failure`.
        Raises ValueTooLargeError / TxnTooLargeError / InvalidRequestError before
        submitting, NoQuorumError / NotLeaderError when definitely not applied, and
        UnknownOutcomeError when no outcome arrived within `timeout` (it may apply)."""
        self._validate_txn(compares, success, failure)
        result = self._submit(encode_txn(compares, success, failure), timeout)
        assert isinstance(result, TxnResult)
        return result

    def put(self, key: bytes, value: bytes, timeout: float | None = None) -> TxnResult:
        """Unconditional put; results[0].prev_kvs holds the previous value if any."""
        return self.txn((), (Op.put(key, value),), timeout=timeout)

    def delete(self, key: bytes, range_end: bytes | None = None,
               timeout: float | None = None) -> TxnResult:
        """Delete a key or range; results[0].deleted counts deleted keys (0 is fine)."""
        return self.txn((), (Op.delete(key, range_end),), timeout=timeout)

    def compact(self, revision: int, timeout: float | None = None) -> int:
        """Drop watch history up to `revision` on every replica; returns the new
        compact revision."""
        return int(self._submit(encode_compact(revision), timeout))

    def _validate_txn(self, compares: Sequence[Compare], success: Sequence[Op],
                      failure: Sequence[Op]) -> None:
        cfg = self.config
        count = len(compares) + len(success) + len(failure)
        if count > cfg.max_txn_ops:
            raise TxnTooLargeError(
                f"transaction has {count} compares+ops; the limit is {cfg.max_txn_ops}")
        total = 0
        for i, cmp in enumerate(compares):
            if not isinstance(cmp.key, bytes) or not cmp.key:
                raise InvalidRequestError(f"compares[{i}].key: must be non-empty bytes")
            if not (isinstance(cmp.target, CompareTarget)
                    and isinstance(cmp.result, CompareResult)):
                raise InvalidRequestError(f"compares[{i}]: bad target or result")
            want_bytes = cmp.target is CompareTarget.VALUE
            if want_bytes != isinstance(cmp.value, bytes) or isinstance(cmp.value, bool):
                raise InvalidRequestError(
                    f"compares[{i}].value: must be {'bytes' if want_bytes else 'int'} "
                    f"for target {cmp.target.value}")
            total += len(cmp.key) + (len(cmp.value) if isinstance(cmp.value, bytes) else 8)
        for branch, ops in (("success", success), ("failure", failure)):
            put_keys: set[bytes] = set()
            for i, op in enumerate(ops):
                where = f"{branch}[{i}]"
                if not isinstance(op.key, bytes) or not op.key:
                    raise InvalidRequestError(f"{where}.key: must be non-empty bytes")
                if op.range_end is not None and not isinstance(op.range_end, bytes):
                    raise InvalidRequestError(f"{where}.range_end: must be bytes or None")
                if op.type is OpType.PUT:
                    if not isinstance(op.value, bytes):
                        raise InvalidRequestError(f"{where}.value: must be bytes")
                    if len(op.value) > cfg.max_value_bytes:
                        raise ValueTooLargeError(
                            f"{where}: value of {len(op.value)} bytes for key {op.key[:80]!r} "
                            f"exceeds the limit of {cfg.max_value_bytes} bytes")
                    if op.key in put_keys:
                        raise InvalidRequestError(f"{where}: duplicate put of key {op.key[:80]!r}")
                    put_keys.add(op.key)
                total += len(op.key) + len(op.value) + len(op.range_end or b"")
        if total > cfg.max_txn_bytes:
            raise TxnTooLargeError(
                f"transaction carries {total} bytes; the limit is {cfg.max_txn_bytes}")

    def _submit(self, command: bytes, timeout: float | None) -> Any:
        node = self._require_node()
        wait = self.config.request_timeout if timeout is None else timeout
        done = threading.Event()
        box: list[Any] = []

        def callback(result: Any, error: int) -> None:
            box.append((result, error))
            done.set()

        node.submit(command, callback)
        if not done.wait(wait):
            raise UnknownOutcomeError(
                f"no outcome within {wait:.1f}s (no leader or no quorum?); "
                "the write may still be applied")
        result, error = box[0]
        return self._outcome(result, error)

    def _outcome(self, result: Any, error: int) -> Any:
        """The result of a proposal, or the typed error for its pysyncobj failure."""
        if error == FAIL.SUCCESS:
            if isinstance(result, ApplyFailure):
                raise InvalidRequestError(f"rejected by the state machine: {result.message}")
            return result
        if error in (FAIL.LEADER_CHANGED, FAIL.UNKNOWN_OUTCOME):
            raise UnknownOutcomeError("leader changed before the outcome was known; "
                                      "the write may still be applied")
        if error == FAIL.NOT_LEADER:
            raise NotLeaderError("request reached a replica that is not the leader",
                                 self.leader())
        if error == FAIL.QUEUE_FULL:
            raise NoQuorumError("proposal queue full; not applied")
        if error == FAIL.DISCARDED:
            raise NoQuorumError("proposal discarded by a new leader; not applied")
        if error == FAIL.MISSING_LEADER:
            raise NoQuorumError("no leader; not applied")
        raise StoreError(f"proposal failed with pysyncobj reason {error}")

    # ---- reads ----

    def range(self, key: bytes, range_end: bytes | None = None, limit: int = 0,
              linearizable: bool = False, timeout: float | None = None) -> RangeResult:
        """Read keys in [key, range_end) (None: exactly key; b"\\0": all >= key).
        Serializable (local) by default; `linearizable=True` first commits a barrier
        through the leader, so the result reflects every write acknowledged before the
        call (raises UnknownOutcomeError/NoQuorumError when that is not possible)."""
        if not isinstance(key, bytes) or not key:
            raise InvalidRequestError("key: must be non-empty bytes")
        self._require_node()
        if linearizable:
            self.read_barrier(timeout)
        return self._state.range(key, range_end, limit)

    def get(self, key: bytes, linearizable: bool = False):  # type: ignore[no-untyped-def]
        """The KeyValue of `key` or None."""
        found = self.range(key, linearizable=linearizable)
        return found.kvs[0] if found.kvs else None

    def read_barrier(self, timeout: float | None = None) -> int:
        """Commit a no-op through the leader and wait until it is applied locally;
        returns the revision at that point. Concurrent callers share rounds: a caller
        joins the next barrier proposed after it arrived (never one already in flight,
        which could have been ordered before writes the caller must see). Raises
        NoQuorumError when no barrier commits within `timeout`."""
        node = self._require_node()
        wait = self.config.request_timeout if timeout is None else timeout
        with self._barrier_lock:
            if self._barrier_next is None:
                self._barrier_next = _BarrierRound()
            round_ = self._barrier_next
            if not self._barrier_in_flight:
                self._launch_barrier(node)
        if not round_.done.wait(wait):
            raise NoQuorumError(f"linearizable read: no barrier committed within {wait:.1f}s "
                                "(no leader or no quorum)")
        return int(self._outcome(*round_.outcome))

    def _launch_barrier(self, node: RaftNode) -> None:
        """Propose the pending round (caller holds _barrier_lock)."""
        round_, self._barrier_next = self._barrier_next, None
        if round_ is None:
            return
        self._barrier_in_flight = True

        def finished(result: Any, error: int) -> None:
            round_.outcome = (result, error)
            round_.done.set()
            with self._barrier_lock:
                self._barrier_in_flight = False
                if self._barrier_next is not None and not self._closed.is_set():
                    self._launch_barrier(node)

        node.submit(encode_barrier(os.urandom(8)), finished)

    @property
    def revision(self) -> int:
        return self._state.revision

    def watch(self, key: bytes, range_end: bytes | None = None, start_revision: int = 0) -> Watch:
        """Watch changes of a key/range from `start_revision` (0: from now). Raises
        CompactedError(oldest_revision) when that revision is no longer in history."""
        self._require_node()
        return Watch(self._state, key, range_end, start_revision, self._closed)

    # ---- leadership ----

    def is_leader(self) -> bool:
        node = self._node
        return bool(node is not None and node._isLeader())

    def leader(self) -> str | None:
        node = self._node
        leader = node._getLeader() if node is not None else None
        return leader.address if leader is not None else None

    def add_leadership_listener(self, callback: LeadershipListener) -> None:
        """callback(is_leader, term) on every gain/loss of leadership, called in order on
        a dedicated thread (it may call the store, including blocking writes)."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def _on_leadership_changed(self, is_leader: bool, term: int) -> None:
        log.info("leadership changed", is_leader=is_leader, term=term)
        self._events.put((is_leader, term))

    def _notify_loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            with self._listeners_lock:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(*event)
                except Exception:
                    log.exception("leadership listener failed")

    def wait_for_leader(self, timeout: float = 10.0) -> str:
        """Block until a leader is known; returns its address."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.02)
        raise NoQuorumError(f"no leader within {timeout}s")

    # ---- status ----

    def status(self, with_hash: bool = True) -> StoreStatus:
        """This replica's view: term, indexes, members (with lag when leader), revision
        and state hash (equal on all replicas at equal revisions). The hash reads every
        key under the state lock; `with_hash=False` skips it (state_hash is then "") for
        frequent callers such as health checks."""
        node = self._require_node()

        def collect() -> dict[str, Any]:
            leader = node._getLeader()
            match = node.rk_match_index() if node._isLeader() else {}
            last = node.rk_log_index()
            members = [MemberStatus(self.config.raft_address, True, last, 0)
                       if node._isLeader() else MemberStatus(self.config.raft_address, True)]
            for other in sorted(node.otherNodes, key=lambda n: n.address):
                m = match.get(other.address)
                members.append(MemberStatus(other.address, node.isNodeConnected(other),
                                            m, None if m is None else last - m))
            return {"leader": leader.address if leader else None,
                    "is_leader": node._isLeader(), "term": node.raftCurrentTerm,
                    "commit": node.raftCommitIndex, "applied": node.raftLastApplied,
                    "members": members, "entries": node._getRaftLogSize(),
                    "quorum": node.hasQuorum}

        info = node.run_in_raft_thread(collect)
        if with_hash:
            revision, digest = self._state.state_hash()
        else:
            revision, digest = self._state.revision, ""
        return StoreStatus(id=self.config.node_id, address=self.config.raft_address,
                           leader=info["leader"], is_leader=info["is_leader"],
                           term=info["term"], commit_index=info["commit"],
                           applied_index=info["applied"], members=info["members"],
                           revision=revision, compact_revision=self._state.compact_revision,
                           state_hash=digest, journal_entries=info["entries"],
                           has_quorum=info["quorum"])

    # ---- membership ----

    def _membership_call(self, starter: Callable[[RaftNode, Callable[[Any, int], None]], None],
                         what: str, timeout: float) -> None:
        node = self._require_node()
        done = threading.Event()
        box: list[int] = []

        def callback(_result: Any, error: int) -> None:
            box.append(error)
            done.set()

        node.run_in_raft_thread(lambda: starter(node, callback))
        if not done.wait(timeout):
            raise UnknownOutcomeError(f"{what}: no outcome within {timeout}s")
        if box[0] != FAIL.SUCCESS:
            raise StoreError(f"{what}: refused (pysyncobj reason {box[0]}; another change "
                             "may be in progress, or the leader has not committed its term)")

    def add_member(self, address: str, timeout: float = 10.0) -> None:
        """Add a replica (started with this cluster's secret and this cluster's members as
        peers). One change at a time; returns once committed."""
        self._membership_call(lambda n, cb: n.addNodeToCluster(address, callback=cb),
                              f"add_member {address}", timeout)

    def remove_member(self, address: str, timeout: float = 10.0) -> None:
        """Remove a replica. Removing the leader (this replica) transfers leadership first.
        To remove another replica that is the leader, call this on that leader."""
        if address == self.config.raft_address:
            self._remove_self(timeout)
            return
        if address == self.leader():
            raise NotLeaderError(f"{address} is the leader: ask it to remove itself", address)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._membership_call(
                    lambda n, cb: n.removeNodeFromCluster(address, callback=cb),
                    f"remove_member {address}", max(0.5, deadline - time.monotonic()))
                return
            except StoreError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def _remove_self(self, timeout: float) -> None:
        """Leave the cluster: hand over leadership if needed, then ask the leader to
        remove this replica. The leader drops its connection to a member as soon as it
        appends that member's removal, so the reply may never arrive: the removal is
        confirmed by that disconnect (or by the reply, whichever comes first)."""
        node = self._require_node()
        if self.is_leader():
            self.transfer_leadership(None, timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader_address = self.leader()
            if leader_address is None or leader_address == self.config.raft_address:
                time.sleep(0.05)
                continue
            box: list[int] = []
            node.run_in_raft_thread(functools.partial(
                node.removeNodeFromCluster, self.config.raft_address,
                callback=lambda _r, e, box=box: box.append(e)))
            attempt_end = min(deadline, time.monotonic() + 2.0)
            while time.monotonic() < attempt_end:
                if box and box[0] == FAIL.SUCCESS:
                    return
                if box:
                    break  # refused (e.g. another change in progress): retry
                connected = node.run_in_raft_thread(
                    functools.partial(self._connected_to, node, leader_address))
                if not connected:
                    log.warning("removed from the cluster (leader dropped this member)",
                                leader=leader_address)
                    return
                time.sleep(0.05)
        raise UnknownOutcomeError(f"remove_member {self.config.raft_address}: not confirmed "
                                  f"within {timeout}s")

    @staticmethod
    def _connected_to(node: RaftNode, address: str) -> bool:
        return any(n.address == address and node.isNodeConnected(n) for n in node.otherNodes)

    def transfer_leadership(self, to: str | None = None, timeout: float = 10.0) -> str:
        """Hand leadership to `to` (None: the most caught-up follower); waits until another
        replica leads and returns its address. Must be called on the leader."""
        node = self._require_node()
        if not self.is_leader():
            raise NotLeaderError("transfer_leadership must be called on the leader", self.leader())
        deadline = time.monotonic() + timeout
        me = self.config.raft_address
        while time.monotonic() < deadline:
            if self.is_leader():
                node.run_in_raft_thread(lambda: node.transferLeadership(to))
            until = time.monotonic() + 1.0
            while time.monotonic() < min(until, deadline):
                leader = self.leader()
                if leader is not None and leader != me and (to is None or leader == to):
                    return leader
                time.sleep(0.02)
        raise UnknownOutcomeError(
            f"leadership transfer to {to or 'any'} not confirmed in {timeout}s")

    # ---- backup ----

    def save_snapshot(self, path: str) -> int:
        """Write a consistent, checksummed snapshot of this replica's applied state to
        `path` (atomically). Returns its revision. Restore with `bootstrap_from_snapshot`."""
        node = self._require_node()

        def capture() -> tuple[Any, Any, list[str], StateCapture]:
            last, prev = node.rk_last_two_applied()
            members = sorted([self.config.raft_address, *(n.address for n in node.otherNodes)])
            return last, prev, members, self._state.capture()

        last, prev, members, state = node.run_in_raft_thread(capture, timeout=30.0)
        write_snapshot(path, Snapshot(last=tuple(last), prev=tuple(prev),  # type: ignore[arg-type]
                                      members=members, state=encode_capture(state),
                                      cluster_name=self.config.cluster_name))
        return state.revision
