"""The Raft replica: a pysyncobj SyncObj subclass closing pysyncobj's gaps.

What this adds to pysyncobj 0.3.17 (configured, subclassed or wrapped, not forked):
- durability: `DurableJournal` replaces the in-memory/mmap journal; our own tick loop
  runs a *durability barrier* (group fsync of the journal, then flush of the outbox)
  before every tick and right before every poll. pysyncobj counts the leader's own
  entries and followers ack entries only through messages/ticks after that barrier, so
  nothing is committed or acknowledged before it is on disk. Term and vote are fsynced
  inside `setCurrentTerm`.
- authentication: every frame is AES-GCM encrypted and authenticated with a key derived
  from the cluster secret and a per-cluster salt, so no byte from an unauthenticated peer is
  unpickled, and admin utility commands need the secret too.
- low latency without the 'truncating already-applied entries' hazard: unbatched
  append-entries, and duplicate append-entries (re-sent after optimistic nextIndex
  resets) are rewritten so a follower never truncates entries it already has.
- check-quorum: leaderFallbackTimeout = leader_lease_timeout < election timeout.
- snapshots in our own format (`snapshot_file`), membership from snapshot + log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import random
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pysyncobj.pickle as pysyncobj_pickle
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.config import FAIL_REASON
from pysyncobj.monotonic import monotonic as raft_clock
from pysyncobj.node import TCPNode

from raftkube.consensus.config import StoreConfig
from raftkube.consensus.journal import DurableJournal, fsync_dir, write_file_durably
from raftkube.consensus.snapshot_file import (
    SNAPSHOT_FILE,
    Snapshot,
    read_snapshot,
    write_snapshot_in_place,
)
from raftkube.consensus.snapshotter import BackgroundSnapshotter
from raftkube.consensus.state import KVState, encode_capture
from raftkube.consensus.transport import OutboxTransport, ack_from_other_term, is_plain_ack

log = logging.getLogger(__name__)

_REGULAR, _NO_OP, _MEMBERSHIP = 0, 1, 2
_LEADER = 2


def derive_cluster_key(secret: bytes, cluster_name: str) -> bytes:
    """256-bit key from the cluster secret, salted per cluster (not pysyncobj's fixed
    salt), so equal secrets in two clusters still give different keys."""
    salt = hashlib.sha256(b"raftkube/raft-transport/v1/" + cluster_name.encode()).digest()
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=200_000)
    return kdf.derive(secret)


class FrameCipher:
    """Authenticated encryption of pysyncobj frames (AES-256-GCM), with the interface
    pysyncobj's TcpConnection expects from its Fernet encryptor:
    encrypt_at_time / extract_timestamp / decrypt. A frame is
    version(1) | timestamp(8) | nonce(12) | ciphertext+tag; the header is authenticated.
    Any frame that fails authentication raises before pysyncobj unpickles anything."""

    _VERSION = b"\x01"
    _HEADER = struct.Struct(">cQ12s")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        header = self._HEADER.pack(self._VERSION, max(0, int(current_time)), os.urandom(12))
        return header + self._aead.encrypt(header[9:], data, header)

    def extract_timestamp(self, token: bytes) -> int:
        if len(token) < self._HEADER.size + 16 or token[:1] != self._VERSION:
            raise InvalidToken("not a raftkube frame")
        return int(self._HEADER.unpack_from(token)[1])

    def decrypt(self, token: bytes) -> bytes:
        if len(token) < self._HEADER.size + 16 or token[:1] != self._VERSION:
            raise InvalidToken("not a raftkube frame")
        header = bytes(token[:self._HEADER.size])
        return self._aead.decrypt(header[9:], bytes(token[self._HEADER.size:]), header)


def decode_regular_command(command: bytes) -> bytes | None:
    """Our command payload inside a pysyncobj journal entry, or None for no-op /
    membership entries. Only for entries read from our own journal."""
    if not command or command[0] != _REGULAR:
        return None
    decoded = pysyncobj_pickle.loads(command[1:])
    return decoded[1][0]


def membership_change(command: bytes) -> tuple[str, str] | None:
    """("add"|"rem", address) for a membership journal entry, else None."""
    if not command or command[0] != _MEMBERSHIP:
        return None
    request = pysyncobj_pickle.loads(command[1:])
    return request[0], request[1]


BOOTSTRAP_FILE = "raft.bootstrap"
"""The members a replica's log starts from (JSON list), recorded when it first starts."""


def bootstrap_members(config: StoreConfig, has_log: bool) -> list[str]:
    """The members this replica's log starts from. Frozen once the replica has a log: the
    configured members are recorded (durably) while it has none and read back afterwards,
    so a master listed in the cluster file before it joined (`credentials add-master`,
    then `join --control-plane`) is never counted by a replica that restarts meanwhile.
    Before the first log entry the configuration still wins (a wrong address can be
    fixed by editing it)."""
    path = os.path.join(config.data_dir, BOOTSTRAP_FILE)
    if has_log and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            return sorted(json.load(fh))
    members = sorted(config.all_members)
    os.makedirs(config.data_dir, exist_ok=True)
    write_file_durably(path, json.dumps(members).encode())
    return members


def effective_members(config: StoreConfig, journal: DurableJournal) -> list[str]:
    """Membership a restarting replica must use: the snapshot's members (or the bootstrap
    members when there is none) updated by every membership entry in the journal."""
    snap_path = os.path.join(config.data_dir, SNAPSHOT_FILE)
    entries = list(journal)
    snap_index = 0
    if os.path.exists(snap_path):
        snap = read_snapshot(snap_path)
        members = set(snap.members)
        snap_index = snap.index
    else:
        members = set(bootstrap_members(config, bool(entries)))
    for command, index, _term in entries:
        if index <= snap_index:
            continue
        change = membership_change(command)
        if change is not None:
            kind, address = change
            if kind == "add":
                members.add(address)
            else:
                members.discard(address)
    return sorted(members)


class ApplyFailure:
    """Result of a command the state machine rejected (deterministic on all replicas)."""

    def __init__(self, message: str) -> None:
        self.message = message


class RaftNode(SyncObj):
    """One Raft replica of a KVState. Thread-safe entry points: `submit`,
    `run_in_raft_thread`, `start`, `stop`; everything else runs in the Raft thread."""

    def __init__(self, config: StoreConfig, state: KVState,
                 on_state_changed: Callable[[bool, int], None]) -> None:
        self._rk_config = config
        self._rk_state = state
        self._rk_on_state_changed = on_state_changed
        self._rk_cipher = FrameCipher(derive_cluster_key(config.secret_bytes(),
                                                         config.cluster_name))
        self._rk_calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._rk_stop = threading.Event()
        self._rk_thread: threading.Thread | None = None
        self._rk_snapshot_path = os.path.join(config.data_dir, SNAPSHOT_FILE)
        journal = DurableJournal(config.data_dir, fsync=config.fsync, audit=config.fsync_audit)
        members = effective_members(config, journal)
        if config.raft_address not in members:
            log.warning("this replica (%s) is not a member in its log/snapshot: %s",
                        config.raft_address, members)
        conf = SyncObjConf(
            autoTick=False,
            appendEntriesUseBatch=False,
            appendEntriesPeriod=config.heartbeat_interval,
            raftMinTimeout=config.election_timeout_min,
            raftMaxTimeout=config.election_timeout_max,
            leaderFallbackTimeout=config.leader_lease_timeout,
            connectionTimeout=config.connection_timeout,
            connectionRetryTime=config.connection_retry_interval,
            appendEntriesBatchSizeBytes=4 * 1024 * 1024,
            sendBufferSize=2 ** 20,
            recvBufferSize=2 ** 20,
            dynamicMembershipChange=True,
            commandsWaitLeader=True,
            fullDumpFile=self._rk_snapshot_path,
            serializer=self._rk_write_snapshot,
            deserializer=self._rk_read_snapshot,
            logCompactionMinEntries=config.snapshot_every_entries,
            logCompactionMinTime=config.snapshot_min_interval,
            logCompactionSplit=False,
            onStateChanged=self._rk_state_changed,
            bindRetryTime=0.2,
            maxBindRetries=25,
        )
        others = [m for m in members if m != config.raft_address]
        super().__init__(config.raft_address, others, conf, transportClass=OutboxTransport)
        self._rk_install_journal(journal)
        self._SyncObj__serializer = BackgroundSnapshotter(
            self._rk_snapshot_path, conf.logCompactionBatchSize,
            self._rk_prepare_snapshot, self._rk_read_snapshot)
        self._rk_transport: OutboxTransport = self._SyncObj__transport  # type: ignore[attr-defined]
        self._rk_transport.inbound_hook = self._rk_inbound
        self._rk_transport.ack_term = lambda: self._SyncObj__raftCurrentTerm
        self._rk_transport.disconnect_hook = self._rk_peer_disconnected

    # ---- pysyncobj hooks ----

    @property
    def encryptor(self) -> FrameCipher:  # used by the transport for every connection
        return self._rk_cipher

    def _rk_install_journal(self, journal: DurableJournal) -> None:
        """Swap pysyncobj's journal for the durable one, restoring term/vote/commit the
        same way SyncObj.__init__ does (nothing has ticked yet: autoTick is off)."""
        if len(journal) == 0:
            journal.add(bytes((_NO_OP,)), 1, 0)
            journal.sync()
        self._SyncObj__raftLog = journal
        self._SyncObj__raftCurrentTerm = max(journal.getCurrentTerm(), journal[-1][2])
        self._SyncObj__votedForNodeId = journal.getVotedForNodeId()
        self._SyncObj__raftCommitIndex = journal.getRaftCommitIndex()
        self._rk_journal = journal

    @replicated
    def _rk_apply(self, command: bytes) -> Any:
        try:
            return self._rk_state.apply(command)
        except Exception as exc:  # deterministic: every replica rejects the same way
            log.error("state machine rejected a command: %s", exc)
            return ApplyFailure(str(exc))

    def _rk_state_changed(self, old: int, new: int) -> None:
        if (old == _LEADER) != (new == _LEADER):
            self._rk_on_state_changed(new == _LEADER, self.raftCurrentTerm)

    def _rk_write_snapshot(self, filename: str, data: Any) -> None:
        """Synchronous serializer hook required by SyncObjConf; unused because the
        BackgroundSnapshotter replaces pysyncobj's Serializer."""
        self._rk_prepare_snapshot(data)(filename)

    def _rk_prepare_snapshot(self, data: Any) -> Callable[[str], None]:
        """In the Raft thread: capture state and raft metadata (cheap); returns the
        function that encodes and writes the snapshot file (run in the background)."""
        last, prev, cluster = data
        capture = self._rk_state.capture()
        members = sorted(n.address for n in cluster)
        cluster_name = self._rk_config.cluster_name

        def write(path: str) -> None:
            snap = Snapshot(last=tuple(last), prev=tuple(prev),  # type: ignore[arg-type]
                            members=members, state=encode_capture(capture),
                            cluster_name=cluster_name)
            write_snapshot_in_place(path, snap)

        return write

    def _rk_read_snapshot(self, filename: str) -> tuple[Any, Any, list[TCPNode]]:
        fd = os.open(filename, os.O_RDONLY)  # a snapshot received from the leader: make it durable
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(os.path.dirname(os.path.abspath(filename)))
        snap = read_snapshot(filename)
        self._rk_state.load_snapshot(snap.state)
        log.info("loaded snapshot at raft index %d (revision %d)", snap.index,
                 self._rk_state.revision)
        return snap.last, snap.prev, [TCPNode(m) for m in snap.members]

    def _rk_peer_disconnected(self, node: Any) -> None:
        """The connection to our leader dropped (a killed process resets it at once):
        start an election soon instead of waiting out the full election timeout. Only
        the timing changes; Raft's safety does not depend on when elections start. A
        random delay keeps followers from splitting the vote."""
        if self._isLeader() or node != self._getLeader():
            return
        # pysyncobj's deadlines are on its own clock (CLOCK_MONOTONIC_RAW), which drifts
        # away from time.monotonic (0.25 s after 16 hours here): mixing them delayed
        # this early election by the drift, and the failover with it
        soon = raft_clock() + random.uniform(0.05, 0.2)
        if soon < self._SyncObj__raftElectionDeadline:
            self._SyncObj__raftElectionDeadline = soon

    def _rk_inbound(self, node: Any, message: Any, deliver: Callable[[Any], None]) -> None:
        """Pre/post-process a peer message around pysyncobj's handler.

        Follower: drop entries it already holds (see _rk_dedupe_append_entries).
        Leader: pysyncobj sets nextIndex back to the acknowledged index on every ack,
        which makes it re-send every entry still in flight (quadratic traffic under
        load). Entries in flight travel in order on one connection, so nextIndex is
        kept where it was; a gap (lost connection) makes the follower answer with a
        reset, which pysyncobj still applies.
        Anyone: an acknowledgement stamped with another term than ours is dropped (a
        late one from an earlier term must not count for entries of this one)."""
        if ack_from_other_term(message, self._SyncObj__raftCurrentTerm):
            return
        message = self._rk_dedupe_append_entries(message)
        if not (is_plain_ack(message) and self._isLeader()):
            deliver(message)
            return
        next_index = self._SyncObj__raftNextIndex
        before = next_index.get(node)
        deliver(message)
        after = next_index.get(node)
        if before is not None and after is not None and after < before:
            next_index[node] = before

    def _rk_dedupe_append_entries(self, message: Any) -> Any:
        """Rewrite an append-entries whose entries this log already holds, so pysyncobj
        appends only new ones instead of truncating (and re-writing) applied entries.
        Entries with equal index and term are identical (Raft log matching)."""
        if (not isinstance(message, dict) or message.get("type") != "append_entries"
                or "prevLogIdx" not in message or "transmission" in message):
            return message
        entries = message.get("entries") or []
        journal = self._rk_journal
        if not entries or not len(journal):
            return message
        first, last = journal[0][1], journal[-1][1]

        def term_at(index: int) -> int | None:
            return journal[index - first][2] if first <= index <= last else None

        if term_at(message["prevLogIdx"]) != message["prevLogTerm"]:
            return message
        matched = 0
        for _cmd, index, term in entries:
            if term_at(index) != term:
                break
            matched += 1
        if matched == 0:
            return message
        rewritten = dict(message)
        if matched < len(entries):
            rewritten["prevLogIdx"], rewritten["prevLogTerm"] = entries[matched - 1][1:3]
            rewritten["entries"] = entries[matched:]
            return rewritten
        last_new = entries[-1][1]
        # Our log goes further. Safe to keep it only if the rest came from this same
        # leader (same term): then it equals the leader's log.
        if last_new < last and term_at(last_new + 1) != message["term"]:
            return message
        rewritten["prevLogIdx"], rewritten["prevLogTerm"] = last, journal[-1][2]
        rewritten["entries"] = []
        return rewritten

    # ---- our tick loop ----

    def start(self) -> None:
        self.addOnTickCallback(self._rk_durability_barrier)
        self._rk_thread = threading.Thread(target=self._rk_loop, name="raft", daemon=True)
        self._rk_thread.start()

    def _rk_durability_barrier(self) -> None:
        """Group commit: one fsync for everything appended since the last barrier.
        Acknowledgements of entries leave only after it; a leader's append-entries leave
        before it, so followers fsync in parallel with the leader. pysyncobj computes
        the commit index only at the start of a tick, after this barrier ran."""
        self._rk_transport.flush_unacknowledging()
        self._rk_journal.sync()
        self._rk_transport.flush_outbox()

    def _rk_loop(self) -> None:
        wait = min(0.01, self._rk_config.heartbeat_interval / 4)
        while not self._rk_stop.is_set():
            started = time.monotonic()
            try:
                self._rk_run_calls()
                self._rk_durability_barrier()
                self.doTick(wait)
                took = time.monotonic() - started
                if took > self._rk_config.heartbeat_interval * 2:
                    log.warning("raft tick took %.0f ms (heartbeats delayed)", took * 1000)
            except Exception:
                log.exception("raft tick failed")
                self._rk_stop.wait(0.05)
        try:
            self._rk_durability_barrier()
        finally:
            self._doDestroy()

    def _rk_run_calls(self) -> None:
        while True:
            try:
                call = self._rk_calls.get_nowait()
            except queue.Empty:
                return
            call()

    def run_in_raft_thread(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run `fn` in the Raft thread (pysyncobj is not thread-safe) and return its
        result; raises TimeoutError if the Raft thread does not get to it in time."""
        if self._rk_thread is not None and threading.current_thread() is self._rk_thread:
            return fn()
        done = threading.Event()
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["result"] = fn()
            except Exception as exc:
                box["error"] = exc
            done.set()

        self._rk_calls.put(call)
        if not done.wait(timeout):
            raise TimeoutError("raft thread did not run the call in time")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def submit(self, command: bytes, callback: Callable[[Any, int], None]) -> None:
        """Propose a command; callback(result, FAIL_REASON) runs in the Raft thread."""
        self._rk_apply(command, callback=callback)

    def stop(self) -> None:
        self._rk_stop.set()
        if self._rk_thread is not None:
            self._rk_thread.join(10)

    # ---- helpers for the store (call in the Raft thread) ----

    def rk_last_two_applied(self) -> tuple[Any, Any]:
        applied = self.raftLastApplied
        entries = self._SyncObj__getEntries(applied - 1, 2)
        return entries[1], entries[0]

    def rk_match_index(self) -> dict[str, int]:
        return {n.address: i for n, i in self._SyncObj__raftMatchIndex.items()}

    def rk_log_index(self) -> int:
        return self._rk_journal[-1][1]


FAIL = FAIL_REASON
