"""gRPC Admin service: master status, Raft membership, snapshots and join tokens.

Membership changes must run on the Raft leader; a follower answers UNAVAILABLE with the
leader's API address in the error details (`leader`), and the SDK retries there.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc

import raftkube
from raftkube import apierrors
from raftkube.api.v1 import admin_pb2, admin_pb2_grpc
from raftkube.consensus import errors as store_errors
from raftkube.consensus.store import Store
from raftkube.masters import system_keys
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.node_serving_certs import ServingCertificates
from raftkube.masters.resource_service import api_errors
from raftkube.masters.secret_encryption import SecretEncryption, rotate_stored_secrets
from raftkube.objects import registry
from raftkube.objects.names import dns1123_subdomain_problems
from raftkube.security import tokens
from raftkube.security.encryption import EncryptionError
from raftkube.security.principal import BOOTSTRAPPERS_GROUP

SNAPSHOT_CHUNK_BYTES = 1 << 20
_NODE_KIND = registry.by_kind("Node")


@dataclass(frozen=True)
class AdminConfig:
    """Settings of the Admin service.

    name / api_address / raft_address: this master.
    peer_timeout: seconds to wait for another master's LocalStatus.
    """

    name: str
    api_address: str
    raft_address: str
    peer_timeout: float = 1.0


PeerStatusFetcher = Callable[[str], admin_pb2.MasterStatus]
"""Asks the master at an API address for its LocalStatus (raises on failure)."""


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """Serves the Admin gRPC service for one master."""

    def __init__(self, config: AdminConfig, store: Store, gatekeeper: Gatekeeper,
                 fetch_peer: PeerStatusFetcher, token_cache: system_keys.TokenTableCache,
                 encryption: SecretEncryption,
                 serving_certificates: ServingCertificates | None = None) -> None:
        """serving_certificates: signs joining nodes' serving certificates (None = never)."""
        self._config = config
        self._store = store
        self._gate = gatekeeper
        self._fetch_peer = fetch_peer
        self._tokens = token_cache
        self._encryption = encryption
        self._serving_certificates = serving_certificates

    def _admin(self, verb: str) -> None:
        # Cluster administration is judged like writing Nodes: cluster-admin only.
        self._gate.check(verb, _NODE_KIND, None, None)

    def local_status(self) -> admin_pb2.MasterStatus:
        """This master's status (never raises: problems go into `health`)."""
        out = admin_pb2.MasterStatus(
            name=self._config.name, api_address=self._config.api_address,
            raft_address=self._config.raft_address, pid=os.getpid(), lag=-1,
            version=raftkube.__version__)
        try:
            status = self._store.status()
        except store_errors.StoreError as e:
            out.role, out.health = "follower", f"store: {e}"
            return out
        out.role = "leader" if status.is_leader else "follower"
        out.term, out.commit_index = status.term, status.commit_index
        out.applied_index, out.revision = status.applied_index, status.revision
        out.state_hash, out.leader = status.state_hash, status.leader or ""
        if status.leader is None:
            out.health = "no leader"
        elif status.is_leader and not status.has_quorum:
            out.health = "no quorum"
        else:
            out.health = "ok"
        return out

    def LocalStatus(self, request, context):
        return self.local_status()

    @api_errors
    def ClusterStatus(self, request, context):
        self._admin("get")
        me = self.local_status()
        masters = system_keys.known_masters(self._store)
        store_status = self._store.status()
        by_raft = {m.address: m for m in store_status.members}
        response = admin_pb2.ClusterStatusResponse(
            leader=store_status.leader or "", term=store_status.term,
            members=sorted(by_raft))
        others = {name: info for name, info in masters.items() if name != self._config.name}
        with futures.ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
            fetched = {name: pool.submit(self._fetch_peer, info["apiAddress"])
                       for name, info in others.items()}
        leader_view = {m.address: m.lag for m in store_status.members if m.lag is not None}
        statuses = [me]
        for name, future in sorted(fetched.items()):
            info = others[name]
            try:
                status = future.result()
            except Exception as e:  # the peer is down or unreachable: say so
                status = admin_pb2.MasterStatus(
                    name=name, api_address=info["apiAddress"],
                    raft_address=info["raftAddress"], role="unreachable", lag=-1,
                    health=_short_error(e))
            statuses.append(status)
        leader_commit = next((s.commit_index for s in statuses if s.role == "leader"), None)
        for status in statuses:
            if status.raft_address in leader_view:
                status.lag = leader_view[status.raft_address]
            elif leader_commit is not None and status.role != "unreachable":
                status.lag = max(0, leader_commit - status.applied_index)
        for raft_address in sorted(set(by_raft) - {s.raft_address for s in statuses}):
            statuses.append(admin_pb2.MasterStatus(
                name=raft_address, raft_address=raft_address, role="unreachable", lag=-1,
                health="member without a registered API address"))
        response.masters.extend(sorted(statuses, key=lambda s: s.name))
        return response

    def _require_leader(self) -> None:
        if self._store.is_leader():
            return
        leader = self._store.leader()
        api = next((m["apiAddress"] for m in system_keys.known_masters(self._store).values()
                    if m["raftAddress"] == leader), "")
        raise apierrors.Unavailable(
            f"membership changes run on the leader ({api or leader or 'none elected'}); "
            "retry there", leader=api)

    @api_errors
    def AddMaster(self, request, context):
        self._admin("create")
        if not request.name or not request.raft_address or not request.api_address:
            raise apierrors.Invalid("name, apiAddress and raftAddress are required")
        self._require_leader()
        members = {m.address for m in self._store.status().members}
        if request.raft_address not in members:
            _membership(lambda: self._store.add_member(request.raft_address))
        system_keys.register_master(self._store, request.name, request.api_address,
                                    request.raft_address)
        return admin_pb2.MembershipResponse(
            members=sorted(m.address for m in self._store.status().members))

    @api_errors
    def RemoveMaster(self, request, context):
        self._admin("delete")
        masters = system_keys.known_masters(self._store)
        info = masters.get(request.name)
        if info is None:
            raise apierrors.NotFound(f'master "{request.name}" is not known '
                                     f"(known: {', '.join(sorted(masters)) or 'none'})")
        target = info["raftAddress"]
        if len(self._store.status().members) <= 1:
            raise apierrors.Invalid("cannot remove the last master")
        if target != self._config.raft_address:
            # Another member goes: the leader removes it, unless it is the leader itself,
            # which must leave on its own (it hands over leadership first).
            if target == self._store.leader():
                raise apierrors.Unavailable(
                    f"{request.name} leads: it removes itself; retry there",
                    leader=info["apiAddress"])
            self._require_leader()
        # Forget its addresses while this master is surely still a member (a master that
        # removes itself can no longer write); put them back if the removal fails.
        system_keys.forget_master(self._store, request.name)
        try:
            _membership(lambda: self._store.remove_member(target))
        except apierrors.ApiError:
            system_keys.register_master(self._store, request.name, info["apiAddress"],
                                        target)
            raise
        return admin_pb2.MembershipResponse(
            members=sorted(m.address for m in self._store.status().members))

    def SnapshotSave(self, request, context) -> Iterator[admin_pb2.SnapshotChunk]:
        try:
            self._admin("get")
            with tempfile.TemporaryDirectory(prefix="raftkube-snapshot-") as tmp:
                path = os.path.join(tmp, "snapshot.db")
                revision = self._store.save_snapshot(path)
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(SNAPSHOT_CHUNK_BYTES):
                        digest.update(chunk)
                        yield admin_pb2.SnapshotChunk(data=chunk, revision=revision)
                yield admin_pb2.SnapshotChunk(sha256=digest.hexdigest(), revision=revision)
        except apierrors.ApiError as e:
            e.abort(context)
        except store_errors.StoreError as e:
            apierrors.Unavailable(f"snapshot failed: {e}").abort(context)

    @api_errors
    def CreateJoinToken(self, request, context):
        self._admin("create")
        ttl = request.ttl_seconds or tokens.DEFAULT_JOIN_TTL
        if ttl <= 0:
            raise apierrors.Invalid("ttlSeconds: must be positive")
        issued: list[str] = []
        now = time.time()

        def add(table):
            new_table, token = tokens.issue_join_token(
                table, now=now, ttl=ttl, description=request.description or "join token")
            issued[:] = [token]
            return new_table

        self._tokens.update(add)
        return admin_pb2.CreateJoinTokenResponse(token=issued[0], expires_at=now + ttl)


    @api_errors
    def RotateSecrets(self, request, context):
        self._admin("update")
        ring = self._encryption.ring()
        try:
            count = rotate_stored_secrets(self._store, ring)
        except store_errors.StoreError as e:
            raise apierrors.Unavailable(f"rotation stopped: {e}; run it again") from e
        except EncryptionError as e:
            raise apierrors.Invalid(f"cannot rotate: {e}") from e
        return admin_pb2.RotateSecretsResponse(rewritten=count, key=ring.primary)


    @api_errors
    def JoinNode(self, request, context):
        principal = self._gate.principal()
        if BOOTSTRAPPERS_GROUP not in principal.groups:
            raise apierrors.Forbidden(
                f"{principal.describe()} may not join nodes: JoinNode takes a join token "
                "(raftkubectl token create)")
        errors = [str(e) for e in dns1123_subdomain_problems(request.node_name)]
        if errors:
            raise apierrors.Invalid(f"nodeName: {'; '.join(errors)}")
        # Signed (or refused) before the token is issued: a refused request changes nothing.
        serving_certificate = (
            self._serving_certificates.issue(request.node_name, request.serving_csr)
            if self._serving_certificates is not None else b"")
        issued: list[str] = []
        now = time.time()

        def add(table):
            new_table, token = tokens.issue_node_token(table, request.node_name, now=now)
            issued[:] = [token]
            return new_table

        self._tokens.update(add)
        # This master too: just after start the masters may not have registered yet, and
        # a node config without masters is unusable.
        masters = sorted({self._config.api_address} | {
            m["apiAddress"] for m in system_keys.known_masters(self._store).values()})
        return admin_pb2.JoinNodeResponse(token=issued[0], masters=masters,
                                          serving_certificate=serving_certificate)


def _membership(change: Callable[[], None]) -> None:
    try:
        change()
    except store_errors.NotLeaderError as e:
        raise apierrors.Unavailable(f"membership change: {e}") from e
    except store_errors.UnknownOutcomeError as e:
        raise apierrors.UnknownOutcome(f"membership change outcome unknown: {e}") from e
    except store_errors.StoreError as e:
        raise apierrors.Unavailable(f"membership change failed: {e}") from e


def _short_error(error: Exception) -> str:
    if isinstance(error, grpc.RpcError):
        return f"unreachable: {error.code().name}"  # type: ignore[attr-defined]
    return f"unreachable: {type(error).__name__}"
